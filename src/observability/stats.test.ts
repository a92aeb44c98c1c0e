import { describe, it, expect } from 'vitest';
import type { Clock } from '../clock.js';
import { RelayEvents, type RelayEventMap } from '../relay-events.js';
import { StatsCollector, type StatsSources } from './stats.js';
import { testSources } from '../../test/helpers/protection-sources.js';

type RequestEvent = RelayEventMap['request'];

function setup(sourceOverrides: Partial<StatsSources> = {}): {
  events: RelayEvents;
  stats: StatsCollector;
  advance: (ms: number) => void;
  request: (event: Partial<RequestEvent>) => void;
} {
  let t = 1_700_000_000_000;
  const clock: Clock = { now: () => t };
  const events = new RelayEvents();
  const { sources } = testSources(clock, sourceOverrides);
  const stats = new StatsCollector({ events, clock, sources });
  const request = (event: Partial<RequestEvent>): void =>
    events.emit('request', { route: 'default', outcome: 'delivered', status: 200, durationMs: 10, attempts: 1, admitted: true, ...event });
  return { events, stats, advance: (ms) => void (t += ms), request };
}

describe('StatsCollector', () => {
  it('reports rps over the elapsed time while the window is half filled', async () => {
    const { stats, advance, request } = setup();
    for (let second = 0; second < 30; second++) {
      for (let i = 0; i < 10; i++) request({});
      advance(1_000);
    }
    const snapshot = await stats.snapshot();
    expect(snapshot.windowSeconds).toBe(60);
    expect(snapshot.rate.rps).toBe(10);
  });

  it('does not report a single early request as a thousand rps', async () => {
    const { stats, advance, request } = setup();
    advance(1);
    request({});
    expect((await stats.snapshot()).rate.rps).toBe(1);
  });

  it('forgets window stats after the window but keeps lifetime totals', async () => {
    const { stats, advance, request } = setup();
    request({ outcome: 'failed', status: 502, durationMs: 4_000 });
    advance(61_000);
    const snapshot = await stats.snapshot();
    expect(snapshot.rate.rps).toBe(0);
    expect(snapshot.errors).toEqual({ rate: 0, count: 0 });
    expect(snapshot.duration).toEqual({ p50Ms: 0, p90Ms: 0, p99Ms: 0, maxMs: 0 });
    expect(snapshot.totals).toEqual({ requests: 1, delivered: 0, failed: 1, rejected: 0, replayed: 0, accepted: 0 });
  });

  it('counts only failed requests as errors', async () => {
    const { stats, request } = setup();
    request({ outcome: 'failed', status: 502 });
    request({ outcome: 'rejected', status: 429, admitted: false, attempts: 0 });
    request({ outcome: 'delivered', status: 400 });
    request({ outcome: 'replayed', status: 200, admitted: false, attempts: 0 });
    const snapshot = await stats.snapshot();
    expect(snapshot.errors).toEqual({ rate: 0.25, count: 1 });
    expect(snapshot.totals).toEqual({ requests: 4, delivered: 1, failed: 1, rejected: 1, replayed: 1, accepted: 0 });
  });

  it('leaves rejected requests out of the duration percentiles', async () => {
    const { stats, request } = setup();
    for (let i = 0; i < 50; i++) request({ outcome: 'rejected', status: 429, durationMs: 0.2, admitted: false });
    request({ durationMs: 250 });
    const { duration } = await stats.snapshot();
    expect(duration.maxMs).toBe(250);
    expect(duration.p50Ms).toBe(250);
  });

  it('computes amplification as downstream attempts per admitted request', async () => {
    const { events, stats, request } = setup();
    request({ admitted: true });
    request({ admitted: true });
    request({ admitted: true });
    request({ outcome: 'rejected', status: 429, admitted: false, attempts: 0 });
    for (let i = 0; i < 7; i++) events.emit('attempt', { route: 'default', outcome: i < 4 ? 'timeout' : 'success', durationMs: 5 });
    for (let i = 0; i < 4; i++) events.emit('retry', { route: 'default', retryNumber: i + 1, delayMs: 100, reason: 'timeout' });
    expect((await stats.snapshot()).downstream).toEqual({ attempts: 7, retries: 4, amplification: 2.333 });
  });

  it('reports amplification 0 before any request is admitted', async () => {
    const { events, stats } = setup();
    events.emit('attempt', { route: 'default', outcome: 'success', durationMs: 5 });
    expect((await stats.snapshot()).downstream.amplification).toBe(0);
  });

  it('counts idempotency hits, conflicts and mismatches but not misses', async () => {
    const { events, stats } = setup();
    for (const result of ['miss', 'hit', 'hit', 'conflict', 'mismatch', 'mismatch', 'mismatch'] as const) {
      events.emit('idempotency', { result });
    }
    expect((await stats.snapshot()).idempotency).toEqual({ hits: 2, conflicts: 1, mismatches: 3, outcomeUnknown: 0 });
  });

  it('passes the queue, dlq size and job counts through', async () => {
    const { stats } = setup();
    const snapshot = await stats.snapshot();
    expect(snapshot.queue).toEqual({ depth: 3, capacity: 100, workers: 8, busy: 5, backingOff: 2, concurrencyLimit: 8, byPriority: { high: 1, normal: 2, low: 0 } });
    expect(snapshot.dlq.size).toBe(2);
    expect(snapshot.jobs.states).toEqual({ queued: 4, in_flight: 1, delivered: 7, dead: 1 });
  });

  it('shows each protection: breaker state per downstream, retry budget, rate limit and AIMD limit', async () => {
    const { stats } = setup();
    const snapshot = await stats.snapshot();
    expect(snapshot.breakers.primary).toMatchObject({ state: 'closed', url: 'http://127.0.0.1:1/' });
    expect(snapshot.retryBudget).toMatchObject({ mode: 'enforce', denied: 0 });
    expect(snapshot.rateLimit.primary).toMatchObject({ mode: 'enforce', warmingUp: false });
    expect(snapshot.aimd).toMatchObject({ limit: 8, max: 8 });
  });

  it('counts shed requests by priority and job events', async () => {
    const { stats, events } = setup();
    events.emit('shed', { route: 'default', priority: 'low', reason: 'low_priority_fill' });
    events.emit('shed', { route: 'default', priority: 'low', reason: 'evicted' });
    events.emit('job', { action: 'accepted' });
    events.emit('job', { action: 'delivered' });
    const snapshot = await stats.snapshot();
    expect(snapshot.shed).toEqual({ high: 0, normal: 0, low: 2 });
    expect(snapshot.jobs.events).toMatchObject({ accepted: 1, delivered: 1, dead: 0 });
  });

  it('shows null job counts when the store cannot be asked', async () => {
    const { stats } = setup({ jobCounts: () => Promise.reject(new Error('down')) });
    expect((await stats.snapshot()).jobs.states).toBeNull();
  });

  it('reports a null dlq size instead of failing when the store rejects', async () => {
    const { stats } = setup({ dlqSize: () => Promise.reject(new Error('store down')) });
    const snapshot = await stats.snapshot();
    expect(snapshot.dlq.size).toBeNull();
    expect(snapshot.queue.depth).toBe(3);
  });

  it('stops counting after close', async () => {
    const { stats, request } = setup();
    request({});
    stats.close();
    stats.close();
    request({});
    expect((await stats.snapshot()).totals.requests).toBe(1);
  });

  it('reports what is stored against the quotas: queued jobs and DLQ in count and bytes, beside their caps', async () => {
    const { stats } = setup();
    const snapshot = await stats.snapshot();
    expect(snapshot.jobs.queue).toEqual({ count: 5, bytes: 500, max: 10, maxBytes: 1000 });
    expect(snapshot.dlq).toEqual({ size: 2, bytes: 200, max: 20, maxBytes: 2000 });
  });
});
