import type { Clock } from '../clock.js';
import type { RelayEvents } from '../relay-events.js';
import type { AimdLimiter } from '../resilience/aimd.js';
import type { CircuitBreaker } from '../resilience/circuit-breaker.js';
import type { RateLimiter } from '../resilience/rate-limiter.js';
import type { RetryBudget } from '../resilience/retry-budget.js';
import type { JobState, Priority } from '../storage/types.js';
import type { RelayEventMap } from '../relay-events.js';
import { SlidingWindow } from './sliding-window.js';

export interface QueueSnapshot {
  depth: number;
  capacity: number;
  workers: number;
  /** Workers taken: calls to a downstream, or waiting for the rate limit. */
  busy: number;
  /** Admitted requests sleeping between attempts, their worker lent back. */
  backingOff: number;
  /** Tasks allowed in flight now: min(workers, the AIMD limit). */
  concurrencyLimit: number;
  byPriority: Record<Priority, number>;
}

/** What each protection reports of itself, per downstream where it is per downstream. */
export interface ProtectionsSnapshot {
  breakers: Record<string, { url: string } & ReturnType<CircuitBreaker['snapshot']>>;
  rateLimit: Record<string, ReturnType<RateLimiter['snapshot']>>;
  retryBudget: ReturnType<RetryBudget['snapshot']>;
  aimd: ReturnType<AimdLimiter['snapshot']>;
}

/** State that stats and metrics read on demand rather than through events. */
export interface StatsSources {
  queue: () => QueueSnapshot;
  dlqSize: () => Promise<number>;
  jobCounts: () => Promise<Record<JobState, number>>;
  protections: () => ProtectionsSnapshot;
}

/** The JSON body of GET /stats; field names are part of the contract. */
export interface StatsSnapshot {
  windowSeconds: number;
  rate: { rps: number };
  /** `failed` requests (the relay gave up) in the window; rate is 0-1 of all requests in the window. */
  errors: { rate: number; count: number };
  /** Over the window's non-rejected requests; 0 when there are none. */
  duration: { p50Ms: number; p90Ms: number; p99Ms: number; maxMs: number };
  /** Lifetime counts by outcome. */
  totals: { requests: number; delivered: number; failed: number; rejected: number; replayed: number; accepted: number };
  queue: QueueSnapshot;
  /** Lifetime; amplification = attempts / admitted requests. */
  downstream: { attempts: number; retries: number; amplification: number };
  /** `null` when the store could not be asked. */
  dlq: { size: number | null };
  idempotency: { hits: number; conflicts: number; mismatches: number };
  /** Async jobs: how many are in each state now (`null` when the store could not be asked), and lifetime events here. */
  jobs: { states: Record<JobState, number> | null; events: Record<RelayEventMap['job']['action'], number> };
  /** Requests refused or evicted by the queue, by priority (lifetime). */
  shed: Record<Priority, number>;
  /** Per downstream: state, failure and slow-call rates, next probe, transitions. */
  breakers: ProtectionsSnapshot['breakers'];
  rateLimit: ProtectionsSnapshot['rateLimit'];
  retryBudget: ProtectionsSnapshot['retryBudget'];
  aimd: ProtectionsSnapshot['aimd'];
}

export interface StatsCollectorOptions {
  events: RelayEvents;
  clock: Clock;
  sources: StatsSources;
  /**
   * Width of the sliding window behind rate, errors and duration.
   * @default 60_000
   */
  windowMs?: number;
}

function round(value: number, decimals: number): number {
  const factor = 10 ** decimals;
  return Math.round(value * factor) / factor;
}

/**
 * RED stats for GET /stats, built only from the events components emit.
 *
 * Durations leave out `rejected` requests: they are instant refusals (429, 409,
 * 422...) and a burst of them would drag the percentiles down exactly when the
 * relay is slowest. They still count towards the rate and the error rate's
 * denominator.
 */
export class StatsCollector {
  private readonly windowMs: number;
  private readonly window: SlidingWindow;
  private readonly sources: StatsSources;
  private readonly unsubscribe: (() => void)[];
  private readonly totals = { requests: 0, delivered: 0, failed: 0, rejected: 0, replayed: 0, accepted: 0 };
  private readonly downstream = { attempts: 0, retries: 0, admitted: 0 };
  private readonly idempotency = { hits: 0, conflicts: 0, mismatches: 0 };
  private readonly shed: Record<Priority, number> = { high: 0, normal: 0, low: 0 };
  private readonly jobEvents: Record<RelayEventMap['job']['action'], number> = { accepted: 0, delivered: 0, rescheduled: 0, dead: 0, redriven: 0 };

  constructor(options: StatsCollectorOptions) {
    this.windowMs = options.windowMs ?? 60_000;
    this.window = new SlidingWindow({ now: () => options.clock.now(), windowMs: this.windowMs });
    this.sources = options.sources;
    const { events } = options;
    this.unsubscribe = [
      events.on('request', (event) => {
        this.totals.requests++;
        this.totals[event.outcome]++;
        if (event.admitted) this.downstream.admitted++;
        this.window.record({
          failed: event.outcome === 'failed',
          durationMs: event.outcome === 'rejected' ? undefined : event.durationMs,
        });
      }),
      events.on('attempt', () => {
        this.downstream.attempts++;
      }),
      events.on('retry', () => {
        this.downstream.retries++;
      }),
      events.on('job', ({ action }) => {
        this.jobEvents[action]++;
      }),
      events.on('shed', ({ priority }) => {
        this.shed[priority]++;
      }),
      events.on('idempotency', ({ result }) => {
        if (result === 'hit') this.idempotency.hits++;
        else if (result === 'conflict') this.idempotency.conflicts++;
        else if (result === 'mismatch') this.idempotency.mismatches++;
      }),
    ];
  }

  async snapshot(): Promise<StatsSnapshot> {
    const reading = this.window.read();
    // A fresh relay divides by the time it has been up, not the full window,
    // and never by less than a second so one early request is not 1000 rps.
    const seconds = Math.max(1, Math.min(reading.spanMs, this.windowMs) / 1000);
    const { attempts, retries, admitted } = this.downstream;
    const queue = this.sources.queue();
    const protections = this.sources.protections();
    // A store outage should dim a field of the dashboard, not blank it.
    const [dlqSize, jobStates] = await Promise.all([
      this.sources.dlqSize().catch(() => null),
      this.sources.jobCounts().catch(() => null),
    ]);
    return {
      windowSeconds: this.windowMs / 1000,
      rate: { rps: round(reading.count / seconds, 3) },
      errors: {
        rate: reading.count === 0 ? 0 : round(reading.failed / reading.count, 4),
        count: reading.failed,
      },
      duration: {
        p50Ms: round(reading.p50Ms, 3),
        p90Ms: round(reading.p90Ms, 3),
        p99Ms: round(reading.p99Ms, 3),
        maxMs: reading.maxMs,
      },
      totals: { ...this.totals },
      queue: { ...queue, byPriority: { ...queue.byPriority } },
      downstream: { attempts, retries, amplification: admitted === 0 ? 0 : round(attempts / admitted, 3) },
      dlq: { size: dlqSize },
      idempotency: { ...this.idempotency },
      jobs: { states: jobStates, events: { ...this.jobEvents } },
      shed: { ...this.shed },
      ...protections,
    };
  }

  /** Stops listening; safe to call more than once. */
  close(): void {
    for (const off of this.unsubscribe.splice(0)) off();
  }
}
