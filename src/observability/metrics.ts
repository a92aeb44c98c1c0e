import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RelayEventMap, RelayEvents, RequestOutcome } from '../relay-events.js';
import type { AttemptRecord } from '../storage/types.js';
import type { StatsSources } from './stats.js';

export interface MetricsOptions {
  events: RelayEvents;
  sources: StatsSources;
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
const REQUEST_OUTCOMES: Record<RequestOutcome, true> = { delivered: true, failed: true, rejected: true, replayed: true };
const ATTEMPT_OUTCOMES: Record<AttemptRecord['outcome'], true> = {
  success: true,
  http_error: true,
  timeout: true,
  connection_error: true,
  aborted: true,
};
const IDEMPOTENCY_RESULTS: Record<RelayEventMap['idempotency']['result'], true> = {
  miss: true,
  hit: true,
  conflict: true,
  mismatch: true,
};
const DLQ_ACTIONS: Record<RelayEventMap['dlq']['action'], true> = {
  added: true,
  replayed: true,
  replay_failed: true,
  deleted: true,
};

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
    help: 'Relay requests finished, by how they ended (delivered, failed, rejected, replayed).',
    labelNames: ['outcome'] as const,
    registers,
  });
  const requestDuration = new Histogram({
    name: 'relay_request_duration_seconds',
    help: 'Time from receiving a relay request to answering it, by outcome.',
    labelNames: ['outcome'] as const,
    buckets: DURATION_BUCKETS_SECONDS,
    registers,
  });
  const attempts = new Counter({
    name: 'relay_downstream_attempts_total',
    help: 'Attempts at the downstream, by outcome; compare with relay_requests_total for amplification.',
    labelNames: ['outcome'] as const,
    registers,
  });
  const attemptDuration = new Histogram({
    name: 'relay_downstream_attempt_duration_seconds',
    help: 'Duration of one attempt at the downstream, including ones that timed out.',
    buckets: DURATION_BUCKETS_SECONDS,
    registers,
  });
  const retries = new Counter({
    name: 'relay_retries_total',
    help: 'Retries scheduled after a failed downstream attempt.',
    registers,
  });
  const idempotency = new Counter({
    name: 'relay_idempotency_total',
    help: 'Idempotency key lookups, by result (miss, hit, conflict, mismatch).',
    labelNames: ['result'] as const,
    registers,
  });
  const dlqEvents = new Counter({
    name: 'relay_dlq_events_total',
    help: 'Dead-letter queue changes, by action (added, replayed, replay_failed, deleted).',
    labelNames: ['action'] as const,
    registers,
  });

  for (const outcome of labelValues(REQUEST_OUTCOMES)) {
    requests.inc({ outcome }, 0);
    requestDuration.zero({ outcome });
  }
  for (const outcome of labelValues(ATTEMPT_OUTCOMES)) attempts.inc({ outcome }, 0);
  for (const result of labelValues(IDEMPOTENCY_RESULTS)) idempotency.inc({ result }, 0);
  for (const action of labelValues(DLQ_ACTIONS)) dlqEvents.inc({ action }, 0);

  // Gauges read the sources at scrape time: a queue that changes thousands of
  // times a second should not pay for a metric update on each change.
  new Gauge({
    name: 'relay_queue_depth',
    help: 'Requests waiting in the queue for a worker.',
    registers,
    collect() {
      this.set(sources.queue().depth);
    },
  });
  new Gauge({
    name: 'relay_queue_capacity',
    help: 'Most requests the queue holds before the relay answers 429.',
    registers,
    collect() {
      this.set(sources.queue().capacity);
    },
  });
  new Gauge({
    name: 'relay_workers',
    help: 'Workers that deliver queued requests to the downstream.',
    registers,
    collect() {
      this.set(sources.queue().workers);
    },
  });
  new Gauge({
    name: 'relay_workers_busy',
    help: 'Workers currently delivering a request.',
    registers,
    collect() {
      this.set(sources.queue().busy);
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

  // One child per label value, made once: spares every request a labels object
  // and the closure Histogram#observe(labels, value) builds on each call.
  const requestsBy = childrenBy(labelValues(REQUEST_OUTCOMES), (outcome) => requests.labels({ outcome }));
  const requestDurationBy = childrenBy(labelValues(REQUEST_OUTCOMES), (outcome) => requestDuration.labels({ outcome }));
  const attemptsBy = childrenBy(labelValues(ATTEMPT_OUTCOMES), (outcome) => attempts.labels({ outcome }));

  const unsubscribe = [
    events.on('request', (event) => {
      requestsBy[event.outcome].inc();
      requestDurationBy[event.outcome].observe(event.durationMs / 1000);
    }),
    events.on('attempt', (event) => {
      attemptsBy[event.outcome].inc();
      attemptDuration.observe(event.durationMs / 1000);
    }),
    events.on('retry', () => retries.inc()),
    events.on('idempotency', ({ result }) => idempotency.inc({ result })),
    events.on('dlq', ({ action }) => dlqEvents.inc({ action })),
  ];

  return {
    registry,
    close() {
      for (const off of unsubscribe.splice(0)) off();
      registry.clear();
    },
  };
}
