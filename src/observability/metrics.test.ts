import { lintRelayFamilies, promtoolAvailable, sampleValue } from '../../test/helpers/prometheus.js';
import { describe, it, expect } from 'vitest';
import { RelayEvents } from '../relay-events.js';
import { createMetrics } from './metrics.js';
import { systemClock } from '../clock.js';
import type { StatsSources } from './stats.js';
import { testSources } from '../../test/helpers/protection-sources.js';
import { idsOn } from '../../test/helpers/canary-ids.js';
import { CircuitBreaker } from '../resilience/circuit-breaker.js';

const RELAY_FAMILIES = [
  'relay_requests_total',
  'relay_request_duration_seconds',
  'relay_downstream_attempts_total',
  'relay_downstream_attempt_duration_seconds',
  'relay_retries_total',
  'relay_idempotency_total',
  'relay_dlq_events_total',
  'relay_queue_depth',
  'relay_queue_capacity',
  'relay_workers',
  'relay_workers_busy',
  'relay_dlq_size',
  'relay_shed_total',
  'relay_circuit_transitions_total',
  'relay_circuit_state',
  'relay_circuit_shadow_rejections_total',
  'relay_rate_limit_per_second',
  'relay_rate_limit_delayed_total',
  'relay_rate_limit_shadow_delayed_total',
  'relay_retry_budget_available',
  'relay_retry_budget_denied_total',
  'relay_concurrency_limit',
  'relay_aimd_computed_limit',
  'relay_canary_requests_total',
  'relay_canary_failures_total',
  'relay_canary_decisions_total',
  'relay_jobs_queued',
  'relay_jobs_queued_bytes',
  'relay_dlq_bytes',
  'relay_quota_limit',
];

function build(dlqSize: StatsSources['dlqSize'] = async () => 4): ReturnType<typeof createMetrics> & { events: RelayEvents } {
  const events = new RelayEvents();
  const metrics = createMetrics({
    events,
    sources: testSources(systemClock, { dlqSize }).sources,
  });
  return { ...metrics, events };
}

const promtoolFound = promtoolAvailable;

describe('createMetrics', () => {
  it('exposes every relay family', async () => {
    const { registry, close } = build();
    const text = await registry.metrics();
    for (const family of RELAY_FAMILIES) expect(text).toContain(`# TYPE ${family} `);
    close();
  });

  it('exposes counter series at 0 before the first event', async () => {
    const { registry, close } = build();
    const text = await registry.metrics();
    expect(sampleValue(text, 'relay_requests_total{route="default",outcome="failed"}')).toBe(0);
    expect(sampleValue(text, 'relay_downstream_attempts_total{route="default",outcome="connection_error"}')).toBe(0);
    expect(sampleValue(text, 'relay_idempotency_total{result="mismatch"}')).toBe(0);
    expect(sampleValue(text, 'relay_dlq_events_total{action="replay_failed"}')).toBe(0);
    expect(sampleValue(text, 'relay_request_duration_seconds_count{route="default",outcome="replayed"}')).toBe(0);
    close();
  });

  it('increments counters and histograms when events arrive', async () => {
    const { registry, events, close } = build();
    events.emit('request', { route: 'default', outcome: 'delivered', status: 200, durationMs: 42, attempts: 2, admitted: true });
    events.emit('attempt', { route: 'default', outcome: 'timeout', durationMs: 1_000 });
    events.emit('attempt', { route: 'default', outcome: 'success', status: 200, durationMs: 20 });
    events.emit('retry', { route: 'default', retryNumber: 1, delayMs: 150, reason: 'timeout' });
    events.emit('idempotency', { result: 'hit' });
    events.emit('dlq', { action: 'added', id: 'd-1', route: 'default', reason: 'transient', status: 502, attempts: 4, lastError: 'HTTP 503', jobId: null });
    const text = await registry.metrics();
    expect(sampleValue(text, 'relay_requests_total{route="default",outcome="delivered"}')).toBe(1);
    expect(sampleValue(text, 'relay_request_duration_seconds_sum{route="default",outcome="delivered"}')).toBeCloseTo(0.042);
    expect(sampleValue(text, 'relay_request_duration_seconds_bucket{le="0.05",route="default",outcome="delivered"}')).toBe(1);
    expect(sampleValue(text, 'relay_downstream_attempts_total{route="default",outcome="timeout"}')).toBe(1);
    expect(sampleValue(text, 'relay_downstream_attempt_duration_seconds_count{route="default"}')).toBe(2);
    expect(sampleValue(text, 'relay_retries_total{route="default"}')).toBe(1);
    expect(sampleValue(text, 'relay_idempotency_total{result="hit"}')).toBe(1);
    expect(sampleValue(text, 'relay_dlq_events_total{action="added"}')).toBe(1);
    close();
  });

  it('reads queue and dlq gauges from the sources at scrape time', async () => {
    const { registry, close } = build();
    const text = await registry.metrics();
    expect(sampleValue(text, 'relay_queue_depth{route="default"}')).toBe(3);
    expect(sampleValue(text, 'relay_queue_capacity{route="default"}')).toBe(100);
    expect(sampleValue(text, 'relay_workers{route="default"}')).toBe(8);
    expect(sampleValue(text, 'relay_workers_busy{route="default"}')).toBe(5);
    expect(sampleValue(text, 'relay_dlq_size')).toBe(4);
    expect(sampleValue(text, 'relay_jobs_queued')).toBe(5);
    expect(sampleValue(text, 'relay_jobs_queued_bytes')).toBe(500);
    expect(sampleValue(text, 'relay_dlq_bytes')).toBe(200);
    expect(sampleValue(text, 'relay_quota_limit{quota="job_queue"}')).toBe(10);
    expect(sampleValue(text, 'relay_quota_limit{quota="dlq_bytes"}')).toBe(2000);
    close();
  });

  it('keeps the last dlq size when the store rejects', async () => {
    let fail = false;
    const { registry, close } = build(async () => {
      if (fail) throw new Error('store down');
      return 9;
    });
    expect(sampleValue(await registry.metrics(), 'relay_dlq_size')).toBe(9);
    fail = true;
    expect(sampleValue(await registry.metrics(), 'relay_dlq_size')).toBe(9);
    close();
  });

  it('includes the default process metrics in its own registry', async () => {
    const { registry, close } = build();
    expect(await registry.metrics()).toContain('process_cpu_seconds_total');
    close();
  });

  it('builds twice in one process without "already registered"', () => {
    const first = build();
    expect(() => build().close()).not.toThrow();
    first.close();
  });

  it('stops counting after close', async () => {
    const { registry, events, close } = build();
    close();
    close();
    events.emit('retry', { route: 'default', retryNumber: 1, delayMs: 1, reason: 'timeout' });
    expect(await registry.metrics()).not.toContain('relay_retries_total{route="default"}');
  });

  (promtoolFound ? it : it.skip)(
    promtoolFound
      ? 'relay families pass promtool check metrics'
      : 'relay families pass promtool check metrics (skipped: promtool not on PATH; apt-get install prometheus)',
    async () => {
      const { registry, events, close } = build();
      events.emit('request', { route: 'default', outcome: 'failed', status: 502, durationMs: 30_500, attempts: 3, admitted: true });
      events.emit('attempt', { route: 'default', outcome: 'http_error', status: 503, durationMs: 12 });
      const lint = lintRelayFamilies(await registry.metrics());
      close();
      expect(lint.output).toBe('');
      expect(lint.status).toBe(0);
    },
  );

  it("sets a canary's two sides beside each other, by a side label, summed over the route's downstreams", async () => {
    const clock = { now: () => 1_000_000 };
    const base = testSources(clock);
    const breakers = [0, 1].map(() => new CircuitBreaker({ clock, mode: 'canary', canaryPercent: 50, minimumCalls: 2 }));
    const [enforcedId] = idsOn('enforced', 50, 'breaker');
    const [shadowId] = idsOn('shadow', 50, 'breaker');
    for (const breaker of breakers) {
      for (const id of [enforcedId, enforcedId, shadowId]) {
        const permit = breaker.tryAcquire(id);
        if (permit.allowed) permit.record({ ok: false, durationMs: 1 });
      }
      // Open after 2 failures: the shadow call went through it, would have been refused.
    }
    const route = base.sources.routes().default!;
    const sources: StatsSources = {
      ...base.sources,
      routes: () => ({
        default: {
          ...route,
          protections: {
            ...route.protections,
            breakers: Object.fromEntries(breakers.map((b, i) => [i === 0 ? 'primary' : 'fallback-1', { url: 'http://127.0.0.1:1/', ...b.snapshot() }])),
          },
        },
      }),
    };
    const metrics = createMetrics({ events: new RelayEvents(), sources });
    try {
      const text = await metrics.registry.metrics();
      expect(sampleValue(text, 'relay_canary_requests_total{route="default",protection="breaker",side="enforced"}')).toBe(4);
      expect(sampleValue(text, 'relay_canary_requests_total{route="default",protection="breaker",side="shadow"}')).toBe(2);
      expect(sampleValue(text, 'relay_canary_decisions_total{route="default",protection="breaker",side="shadow",decision="rejected"}')).toBe(2);
      expect(sampleValue(text, 'relay_canary_failures_total{route="default",protection="breaker",side="shadow"}')).toBe(2);
      // Only canary protections get series: the rate limit here enforces.
      expect(text).not.toContain('protection="rate_limit"');
    } finally {
      metrics.close();
    }
  });
});
