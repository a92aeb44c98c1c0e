import type { z } from 'zod';

/** A bad simulator setting; `field` names it (e.g. `failRate`, `[2].status`). */
export class SimValidationError extends Error {
  readonly code = 'SIM_INVALID_SETTING';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = 'SimValidationError';
  }
}

/**
 * The first issue of a zod error as one readable line that names the field,
 * what was expected and what was given: `failRate: expected a number from 0 to 1, got 2`.
 */
export function firstIssue(error: z.ZodError, input: unknown): { field: string; message: string } {
  const issue = error.issues[0];
  if (!issue) return { field: '', message: 'invalid value' };
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    const at = formatPath([...issue.path, key]);
    return { field: at, message: `${at}: unknown setting` };
  }
  const at = formatPath(issue.path);
  const given = valueAt(input, issue.path);
  const shown = given === undefined ? 'nothing' : JSON.stringify(given);
  return { field: at, message: `${at || 'value'}: ${issue.message}, got ${shown}` };
}

function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((part, i) => (typeof part === 'number' ? `[${part}]` : i === 0 ? String(part) : `.${String(part)}`))
    .join('');
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let current = input;
  for (const part of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[part];
  }
  return current;
}

/**
 * Parses `input` with `schema`.
 * @throws {SimValidationError} naming the first bad field, what was expected and what was given.
 */
export function parseOrThrow<T extends z.ZodType>(schema: T, input: unknown): z.output<T> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const { field, message } = firstIssue(parsed.error, input);
    throw new SimValidationError(field, message);
  }
  return parsed.data;
}
