import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RelayEventMap, RelayEvents, RequestOutcome } from '../relay-events.js';
import type { BreakerState } from '../resilience/circuit-breaker.js';
import { CANARY_SIDES, type CanarySideCounts, type CanarySnapshot } from '../resilience/canary.js';
import type { AttemptRecord, Priority } from '../domain.js';
import type { TypedEmitter } from '../events.js';
import type { AdminActionEvent } from '../routes/route-control.js';
import type { RouteSources, StatsSources, StoredUsage } from './stats.js';

export interface MetricsOptions {
  events: RelayEvents;
  sources: StatsSources;
  /** Operator actions (POST /admin/*, SIGHUP), counted in relay_admin_actions_total. */
  adminActions?: TypedEmitter<{ action: AdminActionEvent }>;
}

export interface Metrics {
  /** This relay's own registry; never prom-client's global one, so many apps can live in one process. */
  registry: Registry;
  /** Stops listening to events and empties the registry; safe to call more than once. */
  close(): void;
}

/** From 1 ms (a replay from the store) to 30 s (beyond any sensible deadline). */
const DURATION_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

// Records rather than arrays so the compiler fails here when a union gains a
// member, instead of a dashboard missing a series until the first event.
const REQUEST_OUTCOMES: Record<RequestOutcome, true> = { delivered: true, failed: true, rejected: true, replayed: true, accepted: true };
const ATTEMPT_OUTCOMES: Record<AttemptRecord['outcome'], true> = {
  success: true,
  http_error: true,
  timeout: true,
  connection_error: true,
  aborted: true,
  too_large: true,
  interrupted: true,
};
const IDEMPOTENCY_RESULTS: Record<RelayEventMap['idempotency']['result'], true> = {
  miss: true,
  hit: true,
  conflict: true,
  mismatch: true,
  unknown: true,
};
const DLQ_ACTIONS: Record<RelayEventMap['dlq']['action'], true> = {
  added: true,
  replayed: true,
  replay_failed: true,
  deleted: true,
};

const PRIORITIES: Record<Priority, true> = { high: true, normal: true, low: true };
const BREAKER_STATES: Record<BreakerState, true> = { closed: true, open: true, half_open: true };

interface RouteChildren {
  requests: Record<RequestOutcome, Counter.Internal>;
  requestDuration: Record<RequestOutcome, Histogram.Internal<'route' | 'outcome'>>;
  attempts: Record<AttemptRecord['outcome'], Counter.Internal>;
  attemptDuration: Histogram.Internal<'route'>;
  retries: Counter.Internal;
}

function labelValues<T extends string>(record: Record<T, true>): T[] {
  return Object.keys(record) as T[];
}

function childrenBy<T extends string, C>(values: T[], child: (value: T) => C): Record<T, C> {
  return Object.fromEntries(values.map((value) => [value, child(value)])) as Record<T, C>;
}

/**
 * Prometheus metrics for GET /metrics, fed by relay events and, at scrape
 * time, by the queue and DLQ sources. Label values come from closed unions only.
 */
export function createMetrics(options: MetricsOptions): Metrics {
  const { events, sources } = options;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const requests = new Counter({
    name: 'relay_requests_total',
    help: 'Relay requests finished, by route and how they ended (delivered, failed, rejected, replayed, accepted).',
    labelNames: ['route', 'outcome'] as const,
    registers,
  });
  const requestDuration = new Histogram({
    name: 'relay_request_duration_seconds',
    help: 'Time from receiving a relay request to answering it, by route and outcome.',
    labelNames: ['route', 'outcome'] as const,
    buckets: DURATION_BUCKETS_SECONDS,
    registers,
  });
  const attempts = new Counter({
    name: 'relay_downstream_attempts_total',
    help: 'Attempts at the downstream, by route and outcome; compare with relay_requests_total for amplification.',
    labelNames: ['route', 'outcome'] as const,
    registers,
  });
  const attemptDuration = new Histogram({
    name: 'relay_downstream_attempt_duration_seconds',
    help: 'Duration of one attempt at the downstream, including ones that timed out, by route.',
    labelNames: ['route'] as const,
    buckets: DURATION_BUCKETS_SECONDS,
    registers,
  });
  const retries = new Counter({
    name: 'relay_retries_total',
    help: 'Retries scheduled after a failed downstream attempt, by route.',
    labelNames: ['route'] as const,
    registers,
  });
  const idempotency = new Counter({
    name: 'relay_idempotency_total',
    help: 'Idempotency key lookups, by result (miss, hit, conflict, mismatch, unknown).',
    labelNames: ['result'] as const,
    registers,
  });
  const dlqEvents = new Counter({
    name: 'relay_dlq_events_total',
    help: 'Dead-letter queue changes, by action (added, replayed, replay_failed, deleted).',
    labelNames: ['action'] as const,
    registers,
  });
  const adminActions = new Counter({
    name: 'relay_admin_actions_total',
    help: 'Operator actions, by action (breaker_open, breaker_closed, breaker_auto, pause, resume, reload, reload_refused) and route ("" for a reload).',
    labelNames: ['action', 'route'] as const,
    registers,
  });

  const shed = new Counter({
    name: 'relay_shed_total',
    help: 'Requests the queue refused or evicted (429), by route and priority.',
    labelNames: ['route', 'priority'] as const,
    registers,
  });
  const breakerTransitions = new Counter({
    name: 'relay_circuit_transitions_total',
    help: 'Circuit breaker state changes, by route, upstream and the state entered (shadow breakers included).',
    labelNames: ['route', 'upstream', 'to'] as const,
    registers,
  });
  const routeNames = Object.keys(sources.routes());
  for (const [route, { protections }] of Object.entries(sources.routes())) {
    for (const upstream of Object.keys(protections.breakers)) for (const to of labelValues(BREAKER_STATES)) breakerTransitions.inc({ route, upstream, to }, 0);
  }
  registerProtectionMetrics(registry, sources);

  registerQuotaMetrics(registry, sources);

  // One child per route and label value, made once: spares every request a labels object
  // and the closure Histogram#observe(labels, value) builds on each call.
  const byRoute = new Map<string, RouteChildren>();
  const children = (route: string): RouteChildren => {
    let found = byRoute.get(route);
    if (!found) {
      found = {
        requests: childrenBy(labelValues(REQUEST_OUTCOMES), (outcome) => requests.labels({ route, outcome })),
        requestDuration: childrenBy(labelValues(REQUEST_OUTCOMES), (outcome) => requestDuration.labels({ route, outcome })),
        attempts: childrenBy(labelValues(ATTEMPT_OUTCOMES), (outcome) => attempts.labels({ route, outcome })),
        attemptDuration: attemptDuration.labels({ route }),
        retries: retries.labels({ route }),
      };
      byRoute.set(route, found);
    }
    return found;
  };
  for (const route of routeNames) {
    const child = children(route);
    for (const outcome of labelValues(REQUEST_OUTCOMES)) {
      child.requests[outcome].inc(0);
      requestDuration.zero({ route, outcome });
    }
    for (const outcome of labelValues(ATTEMPT_OUTCOMES)) child.attempts[outcome].inc(0);
    child.retries.inc(0);
    for (const priority of labelValues(PRIORITIES)) shed.inc({ route, priority }, 0);
  }
  for (const result of labelValues(IDEMPOTENCY_RESULTS)) idempotency.inc({ result }, 0);
  for (const action of labelValues(DLQ_ACTIONS)) dlqEvents.inc({ action }, 0);

  // Gauges read the sources at scrape time: a queue that changes thousands of
  // times a second should not pay for a metric update on each change.
  new Gauge({
    name: 'relay_queue_depth',
    help: 'Requests waiting in the queue for a worker, by route.',
    labelNames: ['route'] as const,
    registers,
    collect() {
      for (const [route, { queue }] of Object.entries(sources.routes())) this.set({ route }, queue.depth);
    },
  });
  new Gauge({
    name: 'relay_queue_capacity',
    help: 'Most requests the queue holds before the relay answers 429, by route.',
    labelNames: ['route'] as const,
    registers,
    collect() {
      for (const [route, { queue }] of Object.entries(sources.routes())) this.set({ route }, queue.capacity);
    },
  });
  new Gauge({
    name: 'relay_workers',
    help: 'Workers that deliver queued requests to the downstream, by route.',
    labelNames: ['route'] as const,
    registers,
    collect() {
      for (const [route, { queue }] of Object.entries(sources.routes())) this.set({ route }, queue.workers);
    },
  });
  new Gauge({
    name: 'relay_workers_busy',
    help: 'Workers currently delivering a request, by route.',
    labelNames: ['route'] as const,
    registers,
    collect() {
      for (const [route, { queue }] of Object.entries(sources.routes())) this.set({ route }, queue.busy);
    },
  });
  new Gauge({
    name: 'relay_dlq_size',
    help: 'Entries in the dead-letter queue, as of the last scrape the store answered.',
    registers,
    async collect() {
      try {
        this.set(await sources.dlqSize());
      } catch {
        // Keep the last known size: a gap or a false 0 would fire DLQ alerts wrongly.
      }
    },
  });
  const storeAnswers = () => answersWithin(sources.dlqSize, READY_TIMEOUT_MS);
  new Gauge({
    name: 'relay_store_up',
    help: '1 when the store (SQLite, or Redis with STORE=redis) answered a read within 1 s at this scrape, 0 when it did not.',
    registers,
    async collect() {
      this.set((await storeAnswers()) ? 1 : 0);
    },
  });
  new Gauge({
    name: 'relay_ready',
    help: "1 when GET /ready's store check passes or only warns: the store answered within 1 s, or it is Redis, shared by the fleet, whose loss /ready reports as a warning (keyed and async requests get 503 STORE_UNAVAILABLE, unkeyed ones are served). 0 when an instance's own store does not answer.",
    registers,
    async collect() {
      // Contract, "Readiness when the store is lost": Redis lost is the whole fleet's, /ready stays 200 warn.
      this.set((await storeAnswers()) || sources.fleet !== undefined ? 1 : 0);
    },
  });

  const unsubscribe = [
    events.on('request', (event) => {
      const child = children(event.route);
      child.requests[event.outcome].inc();
      child.requestDuration[event.outcome].observe(event.durationMs / 1000);
    }),
    events.on('attempt', (event) => {
      const child = children(event.route);
      child.attempts[event.outcome].inc();
      child.attemptDuration.observe(event.durationMs / 1000);
    }),
    events.on('retry', ({ route }) => children(route).retries.inc()),
    events.on('idempotency', ({ result }) => idempotency.inc({ result })),
    events.on('dlq', ({ action }) => dlqEvents.inc({ action })),
    events.on('shed', ({ route, priority }) => shed.inc({ route, priority })),
    events.on('breaker', ({ route, upstream, to }) => breakerTransitions.inc({ route, upstream, to })),
    ...(options.adminActions ? [options.adminActions.on('action', ({ action, route }) => adminActions.inc({ action, route }))] : []),
  ];

  return {
    registry,
    close() {
      for (const off of unsubscribe.splice(0)) off();
      registry.clear();
    },
  };
}

/**
 * Gauges and counters read from the protections' own snapshots at scrape time.
 * Counters that a policy keeps as a lifetime number are turned into Prometheus
 * counters by adding what grew since the last scrape.
 */
function registerProtectionMetrics(registry: Registry, sources: StatsSources): void {
  const registers = [registry];
  const routes = () => Object.entries(sources.routes());
  const perUpstream = <T>(pick: (p: RouteSources['protections']) => Record<string, T>) =>
    routes().flatMap(([route, { protections }]) => Object.entries(pick(protections)).map(([upstream, value]) => ({ route, upstream, value })));
  new Gauge({
    name: 'relay_circuit_state',
    help: 'Circuit breaker state per route and upstream: 1 for the current state, 0 for the others.',
    labelNames: ['route', 'upstream', 'state'] as const,
    registers,
    collect() {
      for (const { route, upstream, value } of perUpstream((p) => p.breakers)) {
        for (const state of labelValues(BREAKER_STATES)) this.set({ route, upstream, state }, value.state === state ? 1 : 0);
      }
    },
  });
  monotonic(registers, 'relay_circuit_shadow_rejections_total', 'Calls a shadow-mode breaker would have refused (it let them through).', ['route', 'upstream'], () =>
    perUpstream((p) => p.breakers).map(({ route, upstream, value }) => [{ route, upstream }, value.shadowRejections]),
  );
  new Gauge({
    name: 'relay_rate_limit_per_second',
    help: 'Current refill rate of a rate-limited route (lower than configured during warm-up).',
    labelNames: ['route', 'upstream'] as const,
    registers,
    collect() {
      for (const { route, upstream, value } of perUpstream((p) => p.rateLimit)) this.set({ route, upstream }, value.currentRatePerSecond);
    },
  });
  monotonic(registers, 'relay_rate_limit_delayed_total', 'Calls the rate limit made wait for a token.', ['route', 'upstream'], () =>
    perUpstream((p) => p.rateLimit).map(({ route, upstream, value }) => [{ route, upstream }, value.delayed]),
  );
  monotonic(registers, 'relay_rate_limit_shadow_delayed_total', 'Calls a shadow-mode rate limit would have delayed.', ['route', 'upstream'], () =>
    perUpstream((p) => p.rateLimit).map(({ route, upstream, value }) => [{ route, upstream }, value.shadowDelayed]),
  );
  new Gauge({
    name: 'relay_retry_budget_available',
    help: 'Retries the budget of a route allows right now.',
    labelNames: ['route'] as const,
    registers,
    collect() {
      for (const [route, { protections }] of routes()) this.set({ route }, protections.retryBudget.available);
    },
  });
  monotonic(registers, 'relay_retry_budget_denied_total', 'Retries refused because the budget was spent (shadow: would have been refused).', ['route', 'mode'], () =>
    routes().flatMap(([route, { protections }]): Array<[{ route: string; mode: string }, number]> => [
      [{ route, mode: 'enforce' }, protections.retryBudget.denied],
      [{ route, mode: 'shadow' }, protections.retryBudget.shadowDenied],
    ]),
  );
  new Gauge({
    name: 'relay_concurrency_limit',
    help: 'Requests allowed in flight to a route now (its AIMD limit, at most its concurrency.max).',
    labelNames: ['route'] as const,
    registers,
    collect() {
      for (const [route, { queue }] of routes()) this.set({ route }, queue.concurrencyLimit);
    },
  });
  registerCanaryMetrics(registers, routes);
  new Gauge({
    name: 'relay_aimd_computed_limit',
    help: 'The limit AIMD computed for a route (differs from relay_concurrency_limit in shadow mode).',
    labelNames: ['route'] as const,
    registers,
    collect() {
      for (const [route, { protections }] of routes()) this.set({ route }, protections.aimd.computedLimit);
    },
  });
}

/** The protections' names in canary metrics (the `protection` label). */
type CanaryProtection = 'breaker' | 'rate_limit' | 'retry_budget' | 'aimd';

/** Each protection of a route running as a canary, its counts summed over the route's downstreams. */
function canariesOf(protections: RouteSources['protections']): Array<[CanaryProtection, CanarySnapshot]> {
  const found: Array<[CanaryProtection, CanarySnapshot]> = [];
  const summed = (snapshots: Array<{ canary?: CanarySnapshot }>): CanarySnapshot | undefined => {
    const canaries = snapshots.flatMap((s) => (s.canary ? [s.canary] : []));
    if (canaries.length === 0) return undefined;
    const add = (a: CanarySideCounts, b: CanarySideCounts): CanarySideCounts => ({
      requests: a.requests + b.requests,
      failures: a.failures + b.failures,
      rejected: a.rejected + b.rejected,
      delayed: a.delayed + b.delayed,
    });
    return canaries.reduce((a, b) => ({ percent: a.percent, enforced: add(a.enforced, b.enforced), shadow: add(a.shadow, b.shadow) }));
  };
  const breaker = summed(Object.values(protections.breakers));
  if (breaker) found.push(['breaker', breaker]);
  const rateLimit = summed(Object.values(protections.rateLimit));
  if (rateLimit) found.push(['rate_limit', rateLimit]);
  if (protections.retryBudget.canary) found.push(['retry_budget', protections.retryBudget.canary]);
  if (protections.aimd.canary) found.push(['aimd', protections.aimd.canary]);
  return found;
}

/**
 * A canary's two sides as labelled series (`side` = enforced | shadow), so a
 * dashboard can set one beside the other: calls, failures, and what the
 * protection decided (on the shadow side: would have decided).
 */
function registerCanaryMetrics(registers: Registry[], routes: () => Array<[string, RouteSources]>): void {
  const series = (pick: (counts: CanarySideCounts) => number) => () =>
    routes().flatMap(([route, { protections }]) =>
      canariesOf(protections).flatMap(([protection, canary]) => CANARY_SIDES.map((side): [{ route: string; protection: string; side: string }, number] => [{ route, protection, side }, pick(canary[side])])),
    );
  const labels = ['route', 'protection', 'side'] as const;
  monotonic(registers, 'relay_canary_requests_total', 'Calls (the retry budget: requests) a canary protection saw, by route, protection and side.', labels, series((c) => c.requests));
  monotonic(registers, 'relay_canary_failures_total', 'Of those, the ones that failed at the downstream, by route, protection and side.', labels, series((c) => c.failures));
  monotonic(
    registers,
    'relay_canary_decisions_total',
    'What a canary protection decided, by route, protection, side and decision (rejected, delayed); on the shadow side what it would have decided.',
    [...labels, 'decision'] as const,
    () =>
      routes().flatMap(([route, { protections }]) =>
        canariesOf(protections).flatMap(([protection, canary]) =>
          CANARY_SIDES.flatMap((side): Array<[{ route: string; protection: string; side: string; decision: string }, number]> => [
            [{ route, protection, side, decision: 'rejected' }, canary[side].rejected],
            [{ route, protection, side, decision: 'delayed' }, canary[side].delayed],
          ]),
        ),
      ),
  );
}

/** What is stored against its quotas, read at scrape time; the caps beside them, for alert rules. */
function registerQuotaMetrics(registry: Registry, sources: StatsSources): void {
  const registers = [registry];
  const { usage, quotas } = sources;
  if (!usage || !quotas) return;
  // One store read per scrape, shared by the four gauges.
  let reading: Promise<StoredUsage> | undefined;
  const read = () => (reading ??= usage().finally(() => setTimeout(() => (reading = undefined), 100).unref()));
  const gauge = (name: string, help: string, pick: (u: StoredUsage) => number) =>
    new Gauge({
      name,
      help,
      registers,
      async collect() {
        try {
          this.set(pick(await read()));
        } catch {
          // Keep the last value: a false 0 would silence a quota alert.
        }
      },
    });
  gauge('relay_jobs_queued', 'Async jobs waiting or in flight (against JOB_QUEUE_MAX).', (u) => u.jobs.queued);
  gauge('relay_jobs_queued_bytes', 'Body bytes of the async jobs waiting or in flight (against JOB_QUEUE_MAX_BYTES).', (u) => u.jobs.queuedBytes);
  gauge('relay_dlq_bytes', 'Body bytes in the dead-letter queue (against DLQ_MAX_BYTES).', (u) => u.dlq.bytes);
  new Gauge({
    name: 'relay_quota_limit',
    help: 'Configured caps on what the relay stores, by quota (job_queue, job_queue_bytes, dlq, dlq_bytes).',
    labelNames: ['quota'] as const,
    registers,
    collect() {
      this.set({ quota: 'job_queue' }, quotas.jobQueueMax);
      this.set({ quota: 'job_queue_bytes' }, quotas.jobQueueMaxBytes);
      this.set({ quota: 'dlq' }, quotas.dlqMax);
      this.set({ quota: 'dlq_bytes' }, quotas.dlqMaxBytes);
    },
  });
}

/** As GET /ready waits for the store: a scrape must not hang on a store that does not answer. */
const READY_TIMEOUT_MS = 1_000;

async function answersWithin(read: () => Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const timedOut = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    return await Promise.race([read().then(() => true), timedOut]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

function monotonic<L extends string>(
  registers: Registry[],
  name: string,
  help: string,
  labelNames: readonly L[],
  values: () => Array<[Partial<Record<L, string>>, number]>,
): void {
  const last = new Map<string, number>();
  new Counter({
    name,
    help,
    labelNames,
    registers,
    collect() {
      for (const [labels, value] of values()) {
        const key = JSON.stringify(labels);
        const previous = last.get(key) ?? 0;
        this.inc(labels, Math.max(0, value - previous));
        last.set(key, Math.max(previous, value));
      }
    },
  });
}
