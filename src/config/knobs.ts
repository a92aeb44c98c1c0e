import { z } from 'zod';

/** The range and default of one numeric knob, shared by its variable and its routes-file field. */
export interface NumberRule {
  int?: true;
  min?: number;
  gt?: number;
  max?: number;
  lt?: number;
  /** undefined: unset unless the user sets it (RATE_LIMIT_RPS: only the provider's promise says what it is). */
  default: number | undefined;
}

/**
 * The knobs a route may override, by the variable that sets their default. One
 * table, so a variable and the route field named after it can never disagree on
 * what a valid value is.
 */
export const ROUTE_KNOBS = {
  DOWNSTREAM_TIMEOUT_MS: { int: true, min: 1, default: 5000 },
  RETRY_MAX_ATTEMPTS: { int: true, min: 1, max: 20, default: 4 },
  RETRY_BASE_DELAY_MS: { int: true, min: 0, default: 100 },
  RETRY_MAX_DELAY_MS: { int: true, min: 0, default: 2000 },
  QUEUE_CAPACITY: { int: true, min: 0, default: 100 },
  QUEUE_LOW_PRIORITY_MAX_FILL: { gt: 0, max: 1, default: 0.5 },
  WORKERS: { int: true, min: 1, max: 10_000, default: 256 },
  BREAKER_WINDOW_MS: { int: true, min: 100, default: 10_000 },
  BREAKER_MIN_CALLS: { int: true, min: 1, default: 100 },
  BREAKER_FAILURE_RATE: { gt: 0, max: 1, default: 0.5 },
  BREAKER_SLOW_CALL_MS: { int: true, min: 1, default: 2500 },
  BREAKER_SLOW_CALL_RATE: { gt: 0, max: 1, default: 0.8 },
  BREAKER_CONSECUTIVE_FAILURES: { int: true, min: 0, max: 10_000, default: 20 },
  BREAKER_OPEN_MS: { int: true, min: 1, default: 1000 },
  BREAKER_OPEN_MAX_MS: { int: true, min: 1, default: 2000 },
  BREAKER_HALF_OPEN_PROBES: { int: true, min: 1, max: 1000, default: 3 },
  RETRY_BUDGET_RATIO: { min: 0, max: 10, default: 0.5 },
  RETRY_BUDGET_MIN_PER_S: { min: 0, default: 10 },
  RETRY_BUDGET_WINDOW_MS: { int: true, min: 100, default: 10_000 },
  RATE_LIMIT_RPS: { gt: 0, default: undefined },
  RATE_LIMIT_BURST: { int: true, min: 1, default: 50 },
  RATE_LIMIT_WARMUP_MS: { int: true, min: 0, default: 10_000 },
  RATE_LIMIT_WARMUP_START_RPS: { gt: 0, default: 5 },
  AIMD_MIN_CONCURRENCY: { int: true, min: 1, max: 10_000, default: 1 },
  AIMD_LATENCY_TARGET_MS: { int: true, min: 1, default: 1000 },
  AIMD_DECREASE_FACTOR: { gt: 0, lt: 1, default: 0.9 },
  // With *_MODE=canary: the share of requests the protection enforces on (the contract's default, 10).
  BREAKER_CANARY_PERCENT: { min: 0, max: 100, default: 10 },
  RETRY_BUDGET_CANARY_PERCENT: { min: 0, max: 100, default: 10 },
  RATE_LIMIT_CANARY_PERCENT: { min: 0, max: 100, default: 10 },
  AIMD_CANARY_PERCENT: { min: 0, max: 100, default: 10 },
} as const satisfies Record<string, NumberRule>;

export type RouteKnobName = keyof typeof ROUTE_KNOBS;

/** The modes every protection takes (`BREAKER_MODE`, `rateLimit.mode`...). */
export const PROTECTION_MODES = ['enforce', 'shadow', 'canary', 'off'] as const;

interface Checks<T> {
  int(): T;
  min(value: number): T;
  gt(value: number): T;
  max(value: number): T;
  lt(value: number): T;
}

function constrain<T extends Checks<T>>(schema: T, rule: NumberRule): T {
  let s = schema;
  if (rule.int) s = s.int();
  if (rule.min !== undefined) s = s.min(rule.min);
  if (rule.gt !== undefined) s = s.gt(rule.gt);
  if (rule.max !== undefined) s = s.max(rule.max);
  if (rule.lt !== undefined) s = s.lt(rule.lt);
  return s;
}

type KnobWithDefault = { [K in RouteKnobName]: (typeof ROUTE_KNOBS)[K]['default'] extends number ? K : never }[RouteKnobName];
type KnobWithoutDefault = Exclude<RouteKnobName, KnobWithDefault>;

/** The environment variable: a string coerced to a number, with its default. */
export function envKnob(name: KnobWithDefault) {
  const rule: NumberRule = ROUTE_KNOBS[name];
  return constrain(z.coerce.number(), rule).default(rule.default!);
}

/** The environment variable of a knob with no default: unset (or empty) stays undefined. */
export function envOptionalKnob(name: KnobWithoutDefault) {
  const rule: NumberRule = ROUTE_KNOBS[name];
  return z.preprocess((v) => (typeof v === 'string' && v.trim() === '' ? undefined : v), constrain(z.coerce.number(), rule).optional());
}

/** The routes-file field: a real number (no strings), optional (unset: the variable's value). */
export function fileKnob(name: RouteKnobName) {
  const rule: NumberRule = ROUTE_KNOBS[name];
  return constrain(z.number(), rule).optional().describe(`Default: the ${name} variable.`);
}
