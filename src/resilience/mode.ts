/**
 * How a protection runs (contract: `BREAKER_MODE`, `RETRY_BUDGET_MODE`,
 * `RATE_LIMIT_MODE`, `AIMD_MODE`):
 * - `enforce`: decide and act;
 * - `shadow`: decide and report what it would have done, never act on it
 *   (roll a new protection out this way first, as the retry-storm post-mortem did);
 * - `off`: neither decide nor report.
 */
export type ProtectionMode = 'enforce' | 'shadow' | 'off';

const MODES: readonly ProtectionMode[] = ['enforce', 'shadow', 'off'];

/**
 * A policy's `mode` option, defaulted and checked in one place for every policy.
 * @default 'enforce'
 * @throws TypeError naming the value when it is not a ProtectionMode.
 */
export function protectionMode(mode: ProtectionMode | undefined): ProtectionMode {
  const value = mode ?? 'enforce';
  if (!MODES.includes(value)) throw new TypeError(`Expected \`mode\` to be one of ${MODES.join(', ')}, got \`${String(value)}\``);
  return value;
}
