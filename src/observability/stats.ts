import type { Clock } from '../clock.js';
import type { RelayEvents } from '../relay-events.js';
import type { AimdLimiter } from '../resilience/aimd.js';
import type { CircuitBreaker } from '../resilience/circuit-breaker.js';
import type { RateLimiter } from '../resilience/rate-limiter.js';
import type { RetryBudget } from '../resilience/retry-budget.js';
import type { Priority } from '../domain.js';
import type { JobState } from '../storage/types.js';
import type { FleetSnapshot } from '../fleet/fleet.js';
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

/** An operator's hold on a route (POST /admin/routes/{name}/breaker, /pause). */
export interface RouteControlSnapshot {
  breaker: 'auto' | 'open' | 'closed';
  paused: boolean;
}

/** What one route reports of its queue and protections, read on demand. */
export interface RouteSources {
  queue: QueueSnapshot;
  protections: ProtectionsSnapshot;
  control?: RouteControlSnapshot;
}

/** State that stats and metrics read on demand rather than through events. */
export interface StatsSources {
  /** Every route by name (the `default` route first when there is one). */
  routes: () => Record<string, RouteSources>;
  dlqSize: () => Promise<number>;
  jobCounts: () => Promise<Record<JobState, number>>;
  /** What is stored against the quotas: jobs waiting or in flight, and the DLQ, in count and bytes. */
  usage?: () => Promise<StoredUsage>;
  /** JOB_QUEUE_MAX(_BYTES), DLQ_MAX(_BYTES). */
  quotas?: Quotas;
  /** STORE=redis: the fleet's size and whether its state is shared (issue 14). */
  fleet?: () => FleetSnapshot;
}

export interface StoredUsage {
  jobs: { queued: number; queuedBytes: number };
  dlq: { count: number; bytes: number };
}

export interface Quotas {
  jobQueueMax: number;
  jobQueueMaxBytes: number;
  dlqMax: number;
  dlqMaxBytes: number;
}

/** The top level's protections: the `default` route's, else the first route's. */
export function mainRoute(routes: Record<string, RouteSources>): RouteSources {
  return routes.default ?? Object.values(routes)[0]!;
}

/** Queues of every route added up. */
export function totalQueue(routes: Record<string, RouteSources>): QueueSnapshot {
  const total: QueueSnapshot = { depth: 0, capacity: 0, workers: 0, busy: 0, backingOff: 0, concurrencyLimit: 0, byPriority: { high: 0, normal: 0, low: 0 } };
  for (const { queue } of Object.values(routes)) {
    total.depth += queue.depth;
    total.capacity += queue.capacity;
    total.workers += queue.workers;
    total.busy += queue.busy;
    total.backingOff += queue.backingOff;
    total.concurrencyLimit += queue.concurrencyLimit;
    for (const priority of Object.keys(total.byPriority) as Priority[]) total.byPriority[priority] += queue.byPriority[priority];
  }
  return total;
}

/** Per route: the top level's request, queue and protection fields, for that route alone. */
export interface RouteStatsSnapshot {
  rate: { rps: number };
  errors: { rate: number; count: number };
  duration: { p50Ms: number; p90Ms: number; p99Ms: number; maxMs: number };
  totals: { requests: number; delivered: number; failed: number; rejected: number; replayed: number; accepted: number };
  queue: QueueSnapshot;
  downstream: { attempts: number; retries: number; amplification: number };
  shed: Record<Priority, number>;
  breakers: ProtectionsSnapshot['breakers'];
  rateLimit: ProtectionsSnapshot['rateLimit'];
  retryBudget: ProtectionsSnapshot['retryBudget'];
  aimd: ProtectionsSnapshot['aimd'];
  /** Per route only: what an operator forced (see RouteControlSnapshot). */
  control?: RouteControlSnapshot;
}

/**
 * The JSON body of GET /stats; field names are part of the contract. The request
 * fields are RED over the window (`errors` counts `failed` requests, the relay
 * gave up; `duration` leaves out refusals) and lifetime totals; amplification is
 * attempts per admitted request; the protections are the `default` route's.
 */
export interface StatsSnapshot extends RouteStatsSnapshot {
  windowSeconds: number;
  /** `null` when the store could not be asked; `max`/`maxBytes` the cap (DLQ_MAX, DLQ_MAX_BYTES). */
  dlq: { size: number | null; bytes: number | null; max: number | null; maxBytes: number | null };
  /** `outcomeUnknown`: resends refused because the key's first outcome was never recorded. */
  idempotency: { hits: number; conflicts: number; mismatches: number; outcomeUnknown: number };
  /** Async jobs: how many are in each state now (`null` when the store could not be asked), and lifetime events here. */
  jobs: {
    states: Record<JobState, number> | null;
    events: Record<RelayEventMap['job']['action'], number>;
    /** Jobs waiting or in flight against JOB_QUEUE_MAX, and their bytes against JOB_QUEUE_MAX_BYTES. */
    queue: { count: number | null; bytes: number | null; max: number | null; maxBytes: number | null };
  };
  /** The same fields for each route, by name. */
  routes: Record<string, RouteStatsSnapshot>;
  /** STORE=redis only: instances heartbeating, and whether protections are shared or each instance's own 1/N. */
  fleet?: FleetSnapshot;
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

/** RED and lifetime counts of one scope (the whole relay, or one route). */
class Tally {
  readonly window: SlidingWindow;
  readonly totals = { requests: 0, delivered: 0, failed: 0, rejected: 0, replayed: 0, accepted: 0 };
  readonly downstream = { attempts: 0, retries: 0, admitted: 0 };
  readonly shed: Record<Priority, number> = { high: 0, normal: 0, low: 0 };

  constructor(
    now: () => number,
    private readonly windowMs: number,
  ) {
    this.window = new SlidingWindow({ now, windowMs });
  }

  request(event: RelayEventMap['request']): void {
    this.totals.requests++;
    this.totals[event.outcome]++;
    if (event.admitted) this.downstream.admitted++;
    this.window.record({
      failed: event.outcome === 'failed',
      durationMs: event.outcome === 'rejected' ? undefined : event.durationMs,
    });
  }

  read(): Pick<RouteStatsSnapshot, 'rate' | 'errors' | 'duration' | 'totals' | 'downstream' | 'shed'> {
    const reading = this.window.read();
    // A fresh relay divides by the time it has been up, not the full window,
    // and never by less than a second so one early request is not 1000 rps.
    const seconds = Math.max(1, Math.min(reading.spanMs, this.windowMs) / 1000);
    const { attempts, retries, admitted } = this.downstream;
    return {
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
      downstream: { attempts, retries, amplification: admitted === 0 ? 0 : round(attempts / admitted, 3) },
      shed: { ...this.shed },
    };
  }
}

/**
 * RED stats for GET /stats, built only from the events components emit, for
 * the whole relay and for each route.
 *
 * Durations leave out `rejected` requests: they are instant refusals (429, 409,
 * 422...) and a burst of them would drag the percentiles down exactly when the
 * relay is slowest. They still count towards the rate and the error rate's
 * denominator.
 */
export class StatsCollector {
  private readonly windowMs: number;
  private readonly now: () => number;
  private readonly all: Tally;
  private readonly byRoute = new Map<string, Tally>();
  private readonly sources: StatsSources;
  private readonly unsubscribe: (() => void)[];
  private readonly idempotency = { hits: 0, conflicts: 0, mismatches: 0, outcomeUnknown: 0 };
  private readonly jobEvents: Record<RelayEventMap['job']['action'], number> = { accepted: 0, delivered: 0, rescheduled: 0, dead: 0, redriven: 0 };

  constructor(options: StatsCollectorOptions) {
    this.windowMs = options.windowMs ?? 60_000;
    this.now = () => options.clock.now();
    this.all = new Tally(this.now, this.windowMs);
    this.sources = options.sources;
    const { events } = options;
    this.unsubscribe = [
      events.on('request', (event) => {
        this.all.request(event);
        this.route(event.route).request(event);
      }),
      events.on('attempt', ({ route }) => {
        this.all.downstream.attempts++;
        this.route(route).downstream.attempts++;
      }),
      events.on('retry', ({ route }) => {
        this.all.downstream.retries++;
        this.route(route).downstream.retries++;
      }),
      events.on('job', ({ action }) => {
        this.jobEvents[action]++;
      }),
      events.on('shed', ({ route, priority }) => {
        this.all.shed[priority]++;
        this.route(route).shed[priority]++;
      }),
      events.on('idempotency', ({ result }) => {
        if (result === 'hit') this.idempotency.hits++;
        else if (result === 'conflict') this.idempotency.conflicts++;
        else if (result === 'mismatch') this.idempotency.mismatches++;
        else if (result === 'unknown') this.idempotency.outcomeUnknown++;
      }),
    ];
  }

  /** Route names come from the routes file only, so this map stays as small as the file. */
  private route(name: string): Tally {
    let tally = this.byRoute.get(name);
    if (!tally) {
      tally = new Tally(this.now, this.windowMs);
      this.byRoute.set(name, tally);
    }
    return tally;
  }

  async snapshot(): Promise<StatsSnapshot> {
    const routes = this.sources.routes();
    const main = mainRoute(routes);
    const queue = totalQueue(routes);
    // A store outage should dim a field of the dashboard, not blank it.
    const [dlqSize, jobStates, usage] = await Promise.all([
      this.sources.dlqSize().catch(() => null),
      this.sources.jobCounts().catch(() => null),
      this.sources.usage ? this.sources.usage().catch(() => null) : Promise.resolve(null),
    ]);
    const quotas = this.sources.quotas;
    const perRoute: Record<string, RouteStatsSnapshot> = {};
    for (const [name, source] of Object.entries(routes)) {
      perRoute[name] = {
        ...this.route(name).read(),
        queue: copyQueue(source.queue),
        ...source.protections,
        ...(source.control ? { control: { ...source.control } } : {}),
      };
    }
    const { shed, ...all } = this.all.read();
    return {
      windowSeconds: this.windowMs / 1000,
      ...all,
      queue: copyQueue(queue),
      dlq: { size: dlqSize, bytes: usage?.dlq.bytes ?? null, max: quotas?.dlqMax ?? null, maxBytes: quotas?.dlqMaxBytes ?? null },
      idempotency: { ...this.idempotency },
      jobs: {
        states: jobStates,
        events: { ...this.jobEvents },
        queue: {
          count: usage?.jobs.queued ?? null,
          bytes: usage?.jobs.queuedBytes ?? null,
          max: quotas?.jobQueueMax ?? null,
          maxBytes: quotas?.jobQueueMaxBytes ?? null,
        },
      },
      shed,
      ...main.protections,
      routes: perRoute,
      ...(this.sources.fleet ? { fleet: this.sources.fleet() } : {}),
    };
  }

  /** The fleet's state (STORE=redis), for /ready; null without a fleet. */
  fleet(): FleetSnapshot | null {
    return this.sources.fleet?.() ?? null;
  }

  /** Stops listening; safe to call more than once. */
  close(): void {
    for (const off of this.unsubscribe.splice(0)) off();
  }
}

function copyQueue(queue: QueueSnapshot): QueueSnapshot {
  return { ...queue, byPriority: { ...queue.byPriority } };
}
