/**
 * How a protection runs (contract: `BREAKER_MODE`, `RETRY_BUDGET_MODE`,
 * `RATE_LIMIT_MODE`, `AIMD_MODE`):
 * - `enforce`: decide and act;
 * - `shadow`: decide and report what it would have done, never act on it
 *   (roll a new protection out this way first, as the retry-storm post-mortem did);
 * - `canary`: enforce for `*_CANARY_PERCENT` of the requests (chosen by a hash of
 *   an id the relay made, see canary.ts), shadow for the rest;
 * - `off`: neither decide nor report.
 */
export type ProtectionMode = 'enforce' | 'shadow' | 'canary' | 'off';

const MODES: readonly ProtectionMode[] = ['enforce', 'shadow', 'canary', 'off'];

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

/**
 * A policy's `canaryPercent` option (used in `canary` mode only), checked in one place.
 * @default 10
 * @throws TypeError naming the value when it is not a number from 0 to 100.
 */
export function canaryPercent(percent: number | undefined): number {
  const value = percent ?? 10;
  if (!(typeof value === 'number' && value >= 0 && value <= 100)) {
    throw new TypeError(`Expected \`canaryPercent\` to be a number from 0 to 100, got \`${String(value)}\``);
  }
  return value;
}
