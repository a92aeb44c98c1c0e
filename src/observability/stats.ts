import type { Clock } from '../clock.js';
import type { RelayEvents } from '../relay-events.js';
import { SlidingWindow } from './sliding-window.js';

export interface QueueSnapshot {
  depth: number;
  capacity: number;
  workers: number;
  busy: number;
}

/** State that stats and metrics read on demand rather than through events. */
export interface StatsSources {
  queue: () => QueueSnapshot;
  dlqSize: () => Promise<number>;
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
  totals: { requests: number; delivered: number; failed: number; rejected: number; replayed: number };
  queue: QueueSnapshot;
  /** Lifetime; amplification = attempts / admitted requests. */
  downstream: { attempts: number; retries: number; amplification: number };
  /** `null` when the store could not be asked. */
  dlq: { size: number | null };
  idempotency: { hits: number; conflicts: number; mismatches: number };
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
  private readonly totals = { requests: 0, delivered: 0, failed: 0, rejected: 0, replayed: 0 };
  private readonly downstream = { attempts: 0, retries: 0, admitted: 0 };
  private readonly idempotency = { hits: 0, conflicts: 0, mismatches: 0 };

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
    const { depth, capacity, workers, busy } = this.sources.queue();
    let dlqSize: number | null;
    try {
      dlqSize = await this.sources.dlqSize();
    } catch {
      // A store outage should dim one field of the dashboard, not blank it.
      dlqSize = null;
    }
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
      queue: { depth, capacity, workers, busy },
      downstream: { attempts, retries, amplification: admitted === 0 ? 0 : round(attempts / admitted, 3) },
      dlq: { size: dlqSize },
      idempotency: { ...this.idempotency },
    };
  }

  /** Stops listening; safe to call more than once. */
  close(): void {
    for (const off of this.unsubscribe.splice(0)) off();
  }
}
