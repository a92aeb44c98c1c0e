/**
 * A bad environment or routes file: its message is what is printed at start-up,
 * one line per mistake, each naming the variable or route field, the value
 * (secrets redacted) and what was expected.
 */
export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  /** One readable line per mistake. */
  readonly lines: readonly string[];

  constructor(lines: string | readonly string[]) {
    const list = typeof lines === 'string' ? lines.split('\n') : lines;
    super(list.join('\n'));
    this.name = 'ConfigError';
    this.lines = list;
  }
}
