import { afterEach, describe, expect, it } from 'vitest';
import { lintRelayFamilies, promtoolAvailable, sampleValue } from './helpers/prometheus.js';
import { expectProblem } from './helpers/problem.js';
import { eventually, startTestRelay, uniqueKey, type TestRelay } from './helpers/test-relay.js';

let t: TestRelay | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

type HealthCheck = { status: string; output?: string };
type HealthBody = { status: string; checks?: Record<string, HealthCheck[]> };

function failingChecks(body: HealthBody): string[] {
  return Object.entries(body.checks ?? {})
    .filter(([, results]) => results.some((r) => r.status === 'fail'))
    .map(([name]) => name);
}

/** The value of one sample; a missing series fails the test. */
function sample(text: string, series: string): number {
  const value = sampleValue(text, series);
  if (value === undefined) throw new Error(`no sample ${series} in /metrics`);
  return value;
}

describe('health and readiness', () => {
  it('/health answers 200 {"status":"pass"} as application/health+json', async () => {
    t = await startTestRelay();
    const res = await t.http.get('/health');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/health\+json/);
    expect(JSON.parse(res.text)).toEqual({ status: 'pass' });
  });

  it('/ready answers 200 pass while the store answers and the relay accepts work', async () => {
    t = await startTestRelay();
    const res = await t.http.get('/ready');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/health\+json/);
    const body = JSON.parse(res.text) as HealthBody;
    expect(body.status).toBe('pass');
    expect(failingChecks(body)).toEqual([]);
  });

  it('once shutdown begins, /ready turns 503 naming relay:accepting and /relay refuses new work with 503', async () => {
    t = await startTestRelay();
    t.relay.beginShutdown();

    const ready = await t.http.get('/ready');
    expect(ready.status).toBe(503);
    expect(ready.headers['content-type']).toMatch(/^application\/health\+json/);
    const body = JSON.parse(ready.text) as HealthBody;
    expect(body.status).toBe('fail');
    expect(failingChecks(body)).toEqual(['relay:accepting']);

    expectProblem(await t.http.post('/relay').set('content-type', 'application/json').send({ late: true }), 503);
    expect(t.sim.counters().received).toBe(0);
    // Liveness is not readiness: the process can still serve.
    expect((await t.http.get('/health')).status).toBe(200);
  });

  it('/ready turns 503 naming the store when the store is closed', async () => {
    t = await startTestRelay();
    await t.relay.store.close();

    const ready = await t.http.get('/ready');
    expect(ready.status).toBe(503);
    const body = JSON.parse(ready.text) as HealthBody;
    expect(body.status).toBe('fail');
    const failing = failingChecks(body);
    expect(failing).toHaveLength(1);
    expect(failing[0]).toMatch(/store/);
  });
});

describe('/stats', () => {
  it('has every contract field on a fresh relay', async () => {
    t = await startTestRelay();
    const res = await t.http.get('/stats');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const n = expect.any(Number);
    expect(res.body).toMatchObject({
      rate: { rps: 0 },
      errors: { rate: 0, count: 0 },
      duration: { p50Ms: n, p90Ms: n, p99Ms: n, maxMs: n },
      totals: { requests: 0, delivered: 0, failed: 0, rejected: 0, replayed: 0 },
      queue: { depth: 0, capacity: 100, workers: 256, busy: 0 },
      downstream: { attempts: 0, retries: 0, amplification: n },
      dlq: { size: 0 },
      idempotency: { hits: 0, conflicts: 0, mismatches: 0, outcomeUnknown: 0 },
    });
  });

  it('counts 3 requests (one retried once, one replayed) in totals, downstream amplification and idempotency', async () => {
    t = await startTestRelay();
    const key = uniqueKey('stats');
    t.sim.script([{ status: 503 }, { status: 200 }]);
    const post = (body: object, k?: string) => {
      const req = t!.http.post('/relay').set('content-type', 'application/json');
      if (k) req.set('Idempotency-Key', k);
      return req.send(body);
    };

    const retried = await post({ n: 1 }, key);
    expect(retried.status).toBe(200);
    expect(retried.headers['x-relay-attempts']).toBe('2');
    const replayed = await post({ n: 1 }, key);
    expect(replayed.headers['idempotent-replayed']).toBe('true');
    const plain = await post({ n: 2 });
    expect(plain.headers['x-relay-attempts']).toBe('1');
    expect(t.sim.counters().received).toBe(3);

    await eventually(async () => (await t!.http.get('/stats')).body.totals.requests === 3);
    const stats = (await t.http.get('/stats')).body;
    expect(stats.totals).toEqual({ requests: 3, delivered: 2, failed: 0, rejected: 0, replayed: 1, accepted: 0 });
    // 3 attempts for the 2 requests that reached the queue; the replay never did.
    expect(stats.downstream).toEqual({ attempts: 3, retries: 1, amplification: 1.5 });
    expect(stats.idempotency).toEqual({ hits: 1, conflicts: 0, mismatches: 0, outcomeUnknown: 0 });
    expect(stats.errors).toEqual({ rate: 0, count: 0 });
    expect(stats.rate.rps).toBeGreaterThan(0);
    expect(stats.duration.maxMs).toBeGreaterThanOrEqual(stats.duration.p99Ms);
    expect(stats.duration.p99Ms).toBeGreaterThanOrEqual(stats.duration.p90Ms);
    expect(stats.duration.p90Ms).toBeGreaterThanOrEqual(stats.duration.p50Ms);
    expect(stats.duration.p50Ms).toBeGreaterThanOrEqual(0);
    // A fresh route starts at 16 in flight and doubles per round trip while that binds (slow start); 3 calls do not.
    expect(stats.queue).toEqual({ depth: 0, capacity: 100, workers: 256, busy: 0, backingOff: 0, concurrencyLimit: 16, byPriority: { high: 0, normal: 0, low: 0 } });
    // The one 503 was an overload signal: AIMD took one worker off (5 * 0.9, rounded down).
    expect(stats.aimd).toMatchObject({ limit: 16, max: 256 });
    expect(stats.breakers.primary).toMatchObject({ state: 'closed' });
    expect(stats.retryBudget.mode).toBe('enforce');
    expect(stats.dlq).toMatchObject({ size: 0, bytes: 0 });
  });

  it('counts a request that exhausts its attempts as failed, in errors and in the DLQ size', async () => {
    t = await startTestRelay({ env: { RETRY_MAX_ATTEMPTS: '2' } });
    t.sim.script([{ status: 503 }, { status: 503 }]);
    expect((await t.http.post('/relay').set('content-type', 'application/json').send({ doomed: true })).status).toBe(502);
    expect((await t.http.post('/relay').set('content-type', 'application/json').send({ fine: true })).status).toBe(200);

    await eventually(async () => (await t!.http.get('/stats')).body.totals.requests === 2);
    const stats = (await t.http.get('/stats')).body;
    expect(stats.totals).toMatchObject({ requests: 2, delivered: 1, failed: 1 });
    expect(stats.errors).toEqual({ rate: 0.5, count: 1 });
    expect(stats.downstream).toEqual({ attempts: 3, retries: 1, amplification: 1.5 });
    expect(stats.dlq).toMatchObject({ size: 1, max: 10000 });
  });
});

describe('/metrics', () => {
  it('exposes relay_ families as Prometheus text whose counts match what happened', async () => {
    t = await startTestRelay();
    const key = uniqueKey('metrics');
    t.sim.script([{ status: 503 }, { status: 200 }]);
    const post = (k?: string) => {
      const req = t!.http.post('/relay').set('content-type', 'application/json');
      if (k) req.set('Idempotency-Key', k);
      return req.send({ m: 1 });
    };
    expect((await post(key)).status).toBe(200);
    expect((await post(key)).headers['idempotent-replayed']).toBe('true');
    expect((await post()).status).toBe(200);
    await eventually(async () => (await t!.http.get('/stats')).body.totals.requests === 3);

    const res = await t.http.get('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    const text = res.text;
    expect(text).toContain('# TYPE relay_requests_total counter');
    expect(sample(text, 'relay_requests_total{route="default",outcome="delivered"}')).toBe(2);
    expect(sample(text, 'relay_requests_total{route="default",outcome="replayed"}')).toBe(1);
    expect(sample(text, 'relay_requests_total{route="default",outcome="failed"}')).toBe(0);
    expect(sample(text, 'relay_requests_total{route="default",outcome="rejected"}')).toBe(0);
    expect(sample(text, 'relay_downstream_attempts_total{route="default",outcome="success"}')).toBe(2);
    expect(sample(text, 'relay_downstream_attempts_total{route="default",outcome="http_error"}')).toBe(1);
    expect(sample(text, 'relay_retries_total{route="default"}')).toBe(1);
    expect(sample(text, 'relay_idempotency_total{result="hit"}')).toBe(1);
    expect(sample(text, 'relay_request_duration_seconds_count{route="default",outcome="delivered"}')).toBe(2);
    expect(sample(text, 'relay_dlq_size')).toBe(0);
    // Label values stay bounded: no key or request id ever becomes a label.
    expect(text).not.toContain(key);
  });

  it('relay_ families pass `promtool check metrics`', async (ctx) => {
    if (!promtoolAvailable) ctx.skip('promtool is not on PATH (Debian package `prometheus`); the lint was not run');
    t = await startTestRelay({ env: { RETRY_MAX_ATTEMPTS: '2' } });
    t.sim.script([{ status: 503 }, { status: 503 }, { status: 503 }]);
    await t.http.post('/relay').set('content-type', 'application/json').send({ a: 1 });
    await t.http.post('/relay').set('content-type', 'application/json').set('Idempotency-Key', uniqueKey()).send({ b: 1 });
    const text = (await t.http.get('/metrics')).text;

    const lint = lintRelayFamilies(text);
    expect(lint.relayLines).toContain('relay_requests_total');
    expect(lint.output).toBe('');
    expect(lint.status).toBe(0);
  });
});
