/**
 * How a protection runs (contract: `BREAKER_MODE`, `RETRY_BUDGET_MODE`,
 * `RATE_LIMIT_MODE`, `AIMD_MODE`):
 * - `enforce`: decide and act;
 * - `shadow`: decide and report what it would have done, never act on it
 *   (roll a new protection out this way first, as the retry-storm post-mortem did);
 * - `off`: neither decide nor report.
 */
export type ProtectionMode = 'enforce' | 'shadow' | 'off';
