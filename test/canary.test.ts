import { afterEach, describe, expect, it } from 'vitest';
import { canarySide, type CanarySide, type CanarySnapshot } from '../src/resilience/canary.js';
import { expectProblem } from './helpers/problem.js';
import { spawnRelayProcess } from './helpers/relay-process.js';
import { eventually, healthySim, startTestRelay, type TestRelay } from './helpers/test-relay.js';
import { startSimulator } from '../src/sim/simulator.js';

let t: TestRelay | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

/** A breaker that judges after 5 calls and stays open for the test; one attempt per request, so counts are exact. */
const deadDownstreamBreaker = (percent: string) => ({
  BREAKER_MODE: 'canary',
  BREAKER_CANARY_PERCENT: percent,
  BREAKER_MIN_CALLS: '5',
  BREAKER_OPEN_MS: '60000',
  BREAKER_OPEN_MAX_MS: '60000',
  RETRY_MAX_ATTEMPTS: '1',
});

function relay(clientRequestId?: string) {
  const req = t!.http.post('/relay').set('content-type', 'application/json');
  if (clientRequestId !== undefined) req.set('x-request-id', clientRequestId);
  return req.send('{"n":1}');
}

/** Sends `count` requests one after another; each with the side its relay-made id (echoed when the client sent none) puts it on. */
async function sendAll(count: number, salt: string, percent: number) {
  const results: Array<{ status: number; side: CanarySide; code: unknown }> = [];
  for (let i = 0; i < count; i++) {
    const res = await relay();
    const id = res.headers['x-request-id'] as string;
    results.push({ status: res.status, side: canarySide(id, percent, salt), code: (res.body as { code?: unknown }).code });
  }
  return results;
}

async function stats(): Promise<Record<string, unknown>> {
  return (await t!.http.get('/stats')).body as Record<string, unknown>;
}

async function openBreaker(): Promise<void> {
  for (let i = 0; i < 5; i++) expect((await relay()).status).toBe(502);
  const breaker = ((await stats()).breakers as Record<string, { state: string }>).primary!;
  expect(breaker.state).toBe('open');
}

describe('canary mode', () => {
  it('a canary breaker at 50%: once open, the enforced side is refused fast and the shadow side still reaches the downstream; /stats and /metrics show both sides', async () => {
    t = await startTestRelay({ env: deadDownstreamBreaker('50'), sim: { failRate: 1 } });
    await openBreaker();
    const received = t.sim.counters().received;

    const results = await sendAll(40, 'breaker', 50);
    const enforced = results.filter((r) => r.side === 'enforced');
    const shadow = results.filter((r) => r.side === 'shadow');
    // 2 x 2^-40 that one side is empty.
    expect(enforced.length).toBeGreaterThan(0);
    expect(shadow.length).toBeGreaterThan(0);
    expect(enforced.map((r) => [r.status, r.code])).toEqual(enforced.map(() => [503, 'CIRCUIT_OPEN']));
    expect(shadow.map((r) => r.status)).toEqual(shadow.map(() => 502));
    expect(t.sim.counters().received - received).toBe(shadow.length);

    const body = await stats();
    const canary = (body.routes as Record<string, { breakers: Record<string, { canary: CanarySnapshot }> }>).default!.breakers.primary!.canary;
    expect(canary.percent).toBe(50);
    expect(canary.enforced.rejected).toBe(enforced.length);
    // The shadow side: every call would have been refused, and went on to fail.
    expect(canary.shadow.rejected).toBe(shadow.length);
    expect(canary.shadow.failures).toBe(canary.shadow.requests);
    expect(canary.enforced.requests + canary.shadow.requests).toBe(45);
    // The top level shows the default route's protections, canary included.
    expect((body.breakers as Record<string, { canary: CanarySnapshot }>).primary!.canary).toEqual(canary);

    const metrics = (await t.http.get('/metrics')).text;
    expect(metrics).toContain(`relay_canary_decisions_total{route="default",protection="breaker",side="enforced",decision="rejected"} ${enforced.length}`);
    expect(metrics).toContain(`relay_canary_decisions_total{route="default",protection="breaker",side="shadow",decision="rejected"} ${shadow.length}`);
    expect(metrics).toMatch(/relay_canary_requests_total\{route="default",protection="breaker",side="shadow"\} \d+/);
    expect(metrics).toContain(`relay_canary_failures_total{route="default",protection="breaker",side="shadow"} ${canary.shadow.failures}`);
  });

  it('at 0% a canary breaker acts as shadow, at 100% as enforce', async () => {
    t = await startTestRelay({ env: deadDownstreamBreaker('0'), sim: { failRate: 1 } });
    await openBreaker();
    expect((await sendAll(6, 'breaker', 0)).map((r) => r.status)).toEqual([502, 502, 502, 502, 502, 502]);
    await t.close();

    t = await startTestRelay({ env: deadDownstreamBreaker('100'), sim: { failRate: 1 } });
    await openBreaker();
    const received = t.sim.counters().received;
    expect((await sendAll(6, 'breaker', 100)).map((r) => r.status)).toEqual([503, 503, 503, 503, 503, 503]);
    expect(t.sim.counters().received).toBe(received);
  });

  it("a client's X-Request-Id does not choose the side: one fixed id lands on both, and each request's side follows the relay's own id", async () => {
    t = await startTestRelay({ env: deadDownstreamBreaker('50'), sim: { failRate: 1 } });
    await openBreaker();
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) {
      const res = await relay('client-picked-id');
      expect(res.headers['x-request-id']).toBe('client-picked-id');
      statuses.push(res.status);
      if (res.status === 502) {
        // The DLQ entry takes the relay's id for the request: it is on the shadow side, whatever the client sent.
        const { dlqId } = res.body as { dlqId: string };
        expect(canarySide(dlqId, 50, 'breaker')).toBe('shadow');
      } else {
        expect(expectProblem(res, 503).code).toBe('CIRCUIT_OPEN');
      }
    }
    expect(statuses).toContain(502);
    expect(statuses).toContain(503);
  });

  it("a replay of a dead-lettered request keeps the request's side: refused while open on the enforced side, sent again on the shadow side", async () => {
    t = await startTestRelay({ env: deadDownstreamBreaker('50'), sim: { failRate: 1 } });
    // Keyed, so that a replay needs no force; dead-lettered while the breaker was still closed, on either side.
    const entries: string[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await t.http.post('/relay').set('content-type', 'application/json').set('idempotency-key', `canary-replay-${i}-${Date.now()}`).send(`{"i":${i}}`);
      if (res.status === 502) entries.push((res.body as { dlqId: string }).dlqId);
    }
    expect(entries.length).toBeGreaterThanOrEqual(5);
    expect(((await stats()).breakers as Record<string, { state: string }>).primary!.state).toBe('open');
    for (const id of entries) {
      const received = t.sim.counters().received;
      const replay = await t.http.post(`/dlq/${id}/replay`);
      if (canarySide(id, 50, 'breaker') === 'enforced') {
        expect(expectProblem(replay, 503).code).toBe('CIRCUIT_OPEN');
        expect(t.sim.counters().received).toBe(received);
      } else {
        expect(replay.status).toBe(502);
        expect(t.sim.counters().received).toBe(received + 1);
      }
    }
  });

  it('a canary rate limit refuses only on the enforced side', async () => {
    t = await startTestRelay({
      // One token, then one every 10 s: longer than a request's deadline, so an enforced call is refused rather than delayed.
      env: { RATE_LIMIT_MODE: 'canary', RATE_LIMIT_CANARY_PERCENT: '50', RATE_LIMIT_RPS: '0.1', RATE_LIMIT_BURST: '1', RATE_LIMIT_WARMUP_MS: '0', REQUEST_DEADLINE_MS: '1000' },
    });
    expect((await relay()).status).toBe(200);
    const results = await sendAll(30, 'rate-limit', 50);
    const enforced = results.filter((r) => r.side === 'enforced');
    const shadow = results.filter((r) => r.side === 'shadow');
    expect(enforced.length).toBeGreaterThan(0);
    expect(shadow.length).toBeGreaterThan(0);
    expect(enforced.map((r) => [r.status, r.code])).toEqual(enforced.map(() => [503, 'RATE_LIMITED']));
    expect(shadow.map((r) => r.status)).toEqual(shadow.map(() => 200));
    expect(t.sim.counters().received).toBe(1 + shadow.length);
    const canary = ((await stats()).rateLimit as Record<string, { canary: CanarySnapshot }>).primary!.canary;
    expect(canary).toMatchObject({ percent: 50, enforced: { rejected: enforced.length }, shadow: { rejected: shadow.length, failures: 0 } });
    const metrics = (await t.http.get('/metrics')).text;
    expect(metrics).toContain(`relay_canary_decisions_total{route="default",protection="rate_limit",side="enforced",decision="rejected"} ${enforced.length}`);
  });

  it('a canary set next to its mode in the routes file: AIMD and the retry budget report both sides, and the pool runs at the ceiling', async () => {
    const sim = await startSimulator({ profile: healthySim });
    const canaries = { aimd: { mode: 'canary', canaryPercent: 50 }, retryBudget: { mode: 'canary', canaryPercent: 30 } };
    t = await startTestRelay({ simulator: sim, routes: { routes: [{ name: 'pay', target: `${sim.url}/`, ...canaries }] } });
    try {
      for (let i = 0; i < 20; i++) expect((await t.http.post('/relay/pay').set('content-type', 'application/json').send('{}')).status).toBe(200);
      const route = ((await stats()).routes as Record<string, { aimd: { canary: CanarySnapshot; limit: number; max: number }; retryBudget: { canary: CanarySnapshot } }>).pay!;
      expect(route.aimd.canary.percent).toBe(50);
      expect(route.aimd.canary.enforced.requests + route.aimd.canary.shadow.requests).toBe(20);
      expect(route.aimd.canary.enforced.requests).toBeGreaterThan(0);
      expect(route.aimd.canary.shadow.requests).toBeGreaterThan(0);
      // Only the enforced side is held to the computed limit; the pool itself is not.
      expect(route.aimd.limit).toBe(route.aimd.max);
      expect(route.retryBudget.canary.percent).toBe(30);
      expect(route.retryBudget.canary.enforced.requests + route.retryBudget.canary.shadow.requests).toBe(20);
      const metrics = (await t.http.get('/metrics')).text;
      expect(metrics).toContain(`relay_canary_requests_total{route="pay",protection="aimd",side="enforced"} ${route.aimd.canary.enforced.requests}`);
    } finally {
      await t.close();
      t = undefined;
      await sim.close();
    }
  });

  it("an async job's side comes from the job's id: with the breaker open, enforced-side jobs wait without an attempt while shadow-side jobs are tried", async () => {
    t = await startTestRelay({ env: { ...deadDownstreamBreaker('50'), JOB_POLL_MS: '20', JOB_RETRY_BASE_DELAY_MS: '10', JOB_RETRY_MAX_DELAY_MS: '50' }, sim: { failRate: 1 } });
    await openBreaker();
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      const res = await t.http.post('/relay').set('content-type', 'application/json').set('Prefer', 'respond-async').set('x-request-id', 'same-client-id').send(`{"job":${i}}`);
      expect(res.status).toBe(202);
      ids.push((res.body as { jobId: string }).jobId);
    }
    const enforced = ids.filter((id) => canarySide(id, 50, 'breaker') === 'enforced');
    const shadow = ids.filter((id) => canarySide(id, 50, 'breaker') === 'shadow');
    const attempts = async (id: string) => ((await t!.http.get(`/jobs/${id}`)).body as { attempts: unknown[] }).attempts.length;
    await eventually(async () => (await Promise.all(shadow.map(attempts))).every((n) => n >= 2), 5000);
    expect(await Promise.all(enforced.map(attempts))).toEqual(enforced.map(() => 0));
  });

  it.each([
    [{ BREAKER_MODE: 'sometimes' }, 'BREAKER_MODE', 'sometimes'],
    [{ RATE_LIMIT_CANARY_PERCENT: '150' }, 'RATE_LIMIT_CANARY_PERCENT', '150'],
  ])('a bad canary setting stops the process at start with one readable line: %j', async (env, name, value) => {
    const relay = spawnRelayProcess({ ...env, SQLITE_PATH: ':memory:' });
    const exit = await relay.exited;
    expect(exit).toEqual({ code: 1, signal: null });
    const stderr = relay.stderr();
    const lines = stderr.split('\n').filter((line) => line.trim() !== '');
    expect(lines, stderr).toHaveLength(1);
    expect(lines[0]).toContain(`Invalid ${name}="${value}"`);
    expect(stderr).not.toMatch(/^\s+at /m);
  });
});
