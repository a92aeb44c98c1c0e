import type { Clock } from '../../src/clock.js';
import { AimdLimiter } from '../../src/resilience/aimd.js';
import { CircuitBreaker } from '../../src/resilience/circuit-breaker.js';
import { RateLimiter } from '../../src/resilience/rate-limiter.js';
import { RetryBudget } from '../../src/resilience/retry-budget.js';
import type { QueueSnapshot, StatsSources } from '../../src/observability/stats.js';

/**
 * Sources for stats and metrics unit tests: a fixed queue and store, and real
 * protections on `clock` (one downstream, `primary`), which a test may drive.
 */
export function testSources(clock: Clock, overrides: Partial<StatsSources> & { queue?: () => QueueSnapshot } = {}) {
  const breaker = new CircuitBreaker({ clock, minimumCalls: 2 });
  const limiter = new RateLimiter({ clock, warmupMs: 0 });
  const budget = new RetryBudget({ clock });
  const aimd = new AimdLimiter({ clock, max: 8 });
  const { queue: queueOverride, ...rest } = overrides;
  const queue =
    queueOverride ??
    (() => ({ depth: 3, capacity: 100, workers: 8, busy: 5, backingOff: 2, concurrencyLimit: aimd.limit, byPriority: { high: 1, normal: 2, low: 0 } }));
  const sources: StatsSources = {
    routes: () => ({
      default: {
        queue: queue(),
        protections: {
          breakers: { primary: { url: 'http://127.0.0.1:1/', ...breaker.snapshot() } },
          rateLimit: { primary: limiter.snapshot() },
          retryBudget: budget.snapshot(),
          aimd: aimd.snapshot(),
        },
      },
    }),
    dlqSize: async () => 2,
    jobCounts: async () => ({ queued: 4, in_flight: 1, delivered: 7, dead: 1 }),
    usage: async () => ({ jobs: { queued: 5, queuedBytes: 500 }, dlq: { count: 2, bytes: 200 } }),
    quotas: { jobQueueMax: 10, jobQueueMaxBytes: 1000, dlqMax: 20, dlqMaxBytes: 2000 },
    ...rest,
  };
  return { sources, breaker, limiter, budget, aimd };
}
