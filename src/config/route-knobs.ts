import type { RouteSpec } from '../routes/route-spec.js';
import type { Env } from './env.js';
import type { RouteInput } from './routes-schema.js';

/** The tunable parts of a route; rateLimit null when neither the route nor RATE_LIMIT_RPS gives a rate. */
export type RouteKnobs = Pick<RouteSpec, 'timeoutMs' | 'retry' | 'concurrency' | 'breaker' | 'retryBudget' | 'aimd' | 'queue' | 'rateLimit'>;

/**
 * A route's knobs: each field the route sets, else its variable's value. With no
 * route fields this is the environment's own settings (the `default` route and
 * the top-level Config).
 */
export function resolveKnobs(e: Env, r: Partial<RouteInput> = {}): RouteKnobs {
  const max = r.concurrency?.max ?? e.WORKERS;
  const rps = r.rateLimit?.rps ?? e.RATE_LIMIT_RPS;
  return {
    timeoutMs: r.timeoutMs ?? e.DOWNSTREAM_TIMEOUT_MS,
    retry: {
      maxAttempts: r.retry?.maxAttempts ?? e.RETRY_MAX_ATTEMPTS,
      baseDelayMs: r.retry?.baseDelayMs ?? e.RETRY_BASE_DELAY_MS,
      maxDelayMs: r.retry?.maxDelayMs ?? e.RETRY_MAX_DELAY_MS,
    },
    concurrency: { max },
    queue: {
      capacity: r.queue?.capacity ?? e.QUEUE_CAPACITY,
      lowPriorityMaxFill: r.queue?.lowPriorityMaxFill ?? e.QUEUE_LOW_PRIORITY_MAX_FILL,
    },
    breaker: {
      mode: r.breaker?.mode ?? e.BREAKER_MODE,
      canaryPercent: r.breaker?.canaryPercent ?? e.BREAKER_CANARY_PERCENT,
      windowMs: r.breaker?.windowMs ?? e.BREAKER_WINDOW_MS,
      minimumCalls: r.breaker?.minCalls ?? e.BREAKER_MIN_CALLS,
      failureRateThreshold: r.breaker?.failureRate ?? e.BREAKER_FAILURE_RATE,
      slowCallMs: r.breaker?.slowCallMs ?? e.BREAKER_SLOW_CALL_MS,
      slowCallRateThreshold: r.breaker?.slowCallRate ?? e.BREAKER_SLOW_CALL_RATE,
      consecutiveFailures: r.breaker?.consecutiveFailures ?? e.BREAKER_CONSECUTIVE_FAILURES,
      openMs: r.breaker?.openMs ?? e.BREAKER_OPEN_MS,
      openMaxMs: r.breaker?.openMaxMs ?? e.BREAKER_OPEN_MAX_MS,
      halfOpenProbes: r.breaker?.halfOpenProbes ?? e.BREAKER_HALF_OPEN_PROBES,
    },
    retryBudget: {
      mode: r.retryBudget?.mode ?? e.RETRY_BUDGET_MODE,
      canaryPercent: r.retryBudget?.canaryPercent ?? e.RETRY_BUDGET_CANARY_PERCENT,
      ratio: r.retryBudget?.ratio ?? e.RETRY_BUDGET_RATIO,
      minRetriesPerSecond: r.retryBudget?.minPerS ?? e.RETRY_BUDGET_MIN_PER_S,
      windowMs: r.retryBudget?.windowMs ?? e.RETRY_BUDGET_WINDOW_MS,
    },
    // No rate unless the user gives one: it is what the provider promised, and only the user knows it.
    rateLimit:
      rps === undefined
        ? null
        : {
            mode: r.rateLimit?.mode ?? e.RATE_LIMIT_MODE,
            canaryPercent: r.rateLimit?.canaryPercent ?? e.RATE_LIMIT_CANARY_PERCENT,
            ratePerSecond: rps,
            burst: r.rateLimit?.burst ?? e.RATE_LIMIT_BURST,
            warmupMs: r.rateLimit?.warmupMs ?? e.RATE_LIMIT_WARMUP_MS,
            // A warm-up never starts above the full rate.
            warmupStartRatePerSecond: Math.min(r.rateLimit?.warmupStartRps ?? e.RATE_LIMIT_WARMUP_START_RPS, rps),
          },
    aimd: {
      mode: r.aimd?.mode ?? e.AIMD_MODE,
      canaryPercent: r.aimd?.canaryPercent ?? e.AIMD_CANARY_PERCENT,
      // The AIMD floor never exceeds the ceiling it moves under.
      min: Math.min(r.aimd?.minConcurrency ?? e.AIMD_MIN_CONCURRENCY, max),
      latencyTargetMs: r.aimd?.latencyTargetMs ?? e.AIMD_LATENCY_TARGET_MS,
      decreaseFactor: r.aimd?.decreaseFactor ?? e.AIMD_DECREASE_FACTOR,
      cooldownMs: e.AIMD_COOLDOWN_MS,
      plateauRoundTrips: e.AIMD_PLATEAU_ROUND_TRIPS,
    },
  };
}
