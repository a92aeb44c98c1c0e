import { afterEach, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../src/sim/simulator.js';
import { expectProblem } from './helpers/problem.js';
import { eventually, healthySim, startTestRelay, type TestRelay } from './helpers/test-relay.js';

let t: TestRelay | undefined;
let extraSims: Simulator[] = [];
afterEach(async () => {
  await t?.close();
  t = undefined;
  await Promise.all(extraSims.map((s) => s.close()));
  extraSims = [];
});

/** A breaker that judges after 5 calls and probes after 300 ms; one attempt per request so counts are exact. */
const breakerEnv = {
  BREAKER_MIN_CALLS: '5',
  BREAKER_OPEN_MS: '300',
  BREAKER_HALF_OPEN_PROBES: '2',
  RETRY_MAX_ATTEMPTS: '1',
};

function relay(body: unknown = { n: 1 }) {
  return t!.http.post('/relay').set('content-type', 'application/json').send(JSON.stringify(body));
}

async function sendSequentially(count: number) {
  const statuses: number[] = [];
  for (let i = 0; i < count; i++) statuses.push((await relay({ i })).status);
  return statuses;
}

interface BreakerView {
  state: string;
  nextProbeAt: number | null;
  shadowRejections: number;
}

async function breakers(): Promise<Record<string, BreakerView>> {
  return ((await t!.http.get('/stats')).body as { breakers: Record<string, BreakerView> }).breakers;
}

describe('circuit breaker', () => {
  it('an outage opens the breaker: requests fail fast with 503 and Retry-After, and the downstream receives nothing', async () => {
    t = await startTestRelay({ env: { ...breakerEnv, BREAKER_OPEN_MS: '60000' }, sim: { failRate: 1 } });

    const first = await sendSequentially(5);
    expect(first).toEqual([502, 502, 502, 502, 502]);
    expect(t.sim.counters().received).toBe(5);

    const startedAt = Date.now();
    const fast = await relay();
    const problem = expectProblem(fast, 503);
    expect(problem.code).toBe('CIRCUIT_OPEN');
    expect(Number(fast.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Date.now() - startedAt).toBeLessThan(200);
    const more = await sendSequentially(10);
    expect(new Set(more)).toEqual(new Set([503]));
    expect(t.sim.counters().received).toBe(5);

    expect((await breakers()).primary!.state).toBe('open');
    const metrics = (await t.http.get('/metrics')).text;
    expect(metrics).toMatch(/relay_circuit_state\{route="default",upstream="primary",state="open"\} 1/);
    expect(metrics).toMatch(/relay_circuit_transitions_total\{route="default",upstream="primary",to="open"\} 1/);
    const line = t.logs.find((l) => l.upstream === 'primary' && l.from === 'closed' && l.to === 'open');
    expect(line?.reason).toMatch(/failure rate/);
  });

  it('recovery closes the breaker through half-open, and traffic flows again', async () => {
    t = await startTestRelay({ env: breakerEnv, sim: { failRate: 1 } });
    await sendSequentially(5);
    expect((await breakers()).primary!.state).toBe('open');

    t.sim.setProfile({ failRate: 0 });
    await new Promise((resolve) => setTimeout(resolve, 350));
    const after = await sendSequentially(4);
    expect(after).toEqual([200, 200, 200, 200]);
    expect((await breakers()).primary!.state).toBe('closed');
    const transitions = t.logs.filter((l) => l.upstream === 'primary' && typeof l.to === 'string').map((l) => `${String(l.from)}->${String(l.to)}`);
    expect(transitions).toEqual(['closed->open', 'open->half_open', 'half_open->closed']);
  });

  it('a failed probe reopens the breaker', async () => {
    t = await startTestRelay({ env: breakerEnv, sim: { failRate: 1 } });
    await sendSequentially(5);
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect((await relay()).status).toBe(502);
    expect((await breakers()).primary!.state).toBe('open');
    expectProblem(await relay(), 503);
  });

  it('a finished Idempotency-Key still replays its stored answer while the breaker is open', async () => {
    t = await startTestRelay({ env: { ...breakerEnv, BREAKER_OPEN_MS: '60000' } });
    const key = 'paid-before-the-outage';
    const first = await t.http.post('/relay').set('content-type', 'application/json').set('Idempotency-Key', key).send('{"pay":1}');
    expect(first.status).toBe(200);
    t.sim.setProfile({ failRate: 1 });
    await sendSequentially(5);
    expect((await breakers()).primary!.state).toBe('open');
    const again = await t.http.post('/relay').set('content-type', 'application/json').set('Idempotency-Key', key).send('{"pay":1}');
    expect(again.status).toBe(200);
    expect(again.headers['idempotent-replayed']).toBe('true');
    // A new key is refused at once, and the refusal frees it for a later try.
    const fresh = await t.http.post('/relay').set('content-type', 'application/json').set('Idempotency-Key', 'new-during-outage').send('{}');
    expect(expectProblem(fresh, 503).code).toBe('CIRCUIT_OPEN');
  });

  it('a fallback serves while the primary is open, and says so in X-Relay-Upstream', async () => {
    const fallback = await startSimulator({ profile: healthySim });
    extraSims.push(fallback);
    t = await startTestRelay({ env: { ...breakerEnv, BREAKER_OPEN_MS: '60000', FALLBACK_URLS: `${fallback.url}/` }, sim: { failRate: 1 } });

    await sendSequentially(5);
    expect((await breakers()).primary!.state).toBe('open');
    const primaryBefore = t.sim.counters().received;

    const res = await relay({ via: 'fallback' });
    expect(res.status).toBe(200);
    expect(res.headers['x-relay-upstream']).toBe('fallback-1');
    expect(fallback.counters().received).toBe(1);
    expect(t.sim.counters().received).toBe(primaryBefore);
  });

  it('with every breaker open the answer is the fail-fast 503', async () => {
    const fallback = await startSimulator({ profile: { ...healthySim, failRate: 1 } });
    extraSims.push(fallback);
    t = await startTestRelay({ env: { ...breakerEnv, BREAKER_OPEN_MS: '60000', FALLBACK_URLS: `${fallback.url}/` }, sim: { failRate: 1 } });
    // Five to open the primary, then five served (and failed) by the fallback to open it too.
    await sendSequentially(10);
    const state = await breakers();
    expect([state.primary!.state, state['fallback-1']!.state]).toEqual(['open', 'open']);
    expect(expectProblem(await relay(), 503).code).toBe('CIRCUIT_OPEN');
  });

  it('the primary answers with X-Relay-Upstream: primary while it is healthy', async () => {
    t = await startTestRelay();
    const res = await relay();
    expect(res.status).toBe(200);
    expect(res.headers['x-relay-upstream']).toBe('primary');
  });

  it('a few failures never open it: the minimum number of calls protects a handful of requests', async () => {
    t = await startTestRelay({ env: { RETRY_MAX_ATTEMPTS: '1' }, sim: { failRate: 1 } });
    expect(await sendSequentially(10)).toEqual(Array(10).fill(502));
    expect((await breakers()).primary!.state).toBe('closed');
  });

  it('in shadow mode the breaker decides and reports but never refuses', async () => {
    t = await startTestRelay({ env: { ...breakerEnv, BREAKER_OPEN_MS: '60000', BREAKER_MODE: 'shadow' }, sim: { failRate: 1 } });
    const statuses = await sendSequentially(10);
    expect(new Set(statuses)).toEqual(new Set([502]));
    expect(t.sim.counters().received).toBe(10);
    const view = (await breakers()).primary!;
    expect(view.state).toBe('open');
    expect(view.shadowRejections).toBe(5);
    expect((await t.http.get('/metrics')).text).toMatch(/relay_circuit_shadow_rejections_total\{route="default",upstream="primary"\} 5/);
  });

  it('BREAKER_MODE=off never opens', async () => {
    t = await startTestRelay({ env: { ...breakerEnv, BREAKER_MODE: 'off' }, sim: { failRate: 1 } });
    await sendSequentially(10);
    expect(t.sim.counters().received).toBe(10);
    expect((await breakers()).primary!.state).toBe('closed');
  });
});

describe('retry budget', () => {
  /** A budget of one retry per 10 s and no ratio; the breaker out of the way. */
  const budgetEnv = {
    RETRY_BUDGET_RATIO: '0',
    RETRY_BUDGET_MIN_PER_S: '0.1',
    RETRY_BUDGET_WINDOW_MS: '10000',
    RETRY_MAX_ATTEMPTS: '4',
    BREAKER_MODE: 'off',
  };

  it('a spent budget stops retries: the failed attempt is final and the request goes to the DLQ', async () => {
    t = await startTestRelay({ env: budgetEnv, sim: { failRate: 1 } });
    const results = [];
    for (let i = 0; i < 3; i++) results.push(expectProblem(await relay({ i }), 502));
    // 3 first attempts + the single retry the budget allows.
    expect(t.sim.counters().received).toBe(4);
    expect(results.map((r) => r.attempts)).toEqual([2, 1, 1]);

    const dlq = (await t.http.get(`/dlq/${String(results[2]!.dlqId)}`)).body as { cause: string; reason: string };
    expect(dlq).toMatchObject({ cause: 'retry_budget', reason: 'transient' });
    const stats = (await t.http.get('/stats')).body as { retryBudget: { denied: number } };
    expect(stats.retryBudget.denied).toBe(3);
    expect((await t.http.get('/metrics')).text).toMatch(/relay_retry_budget_denied_total\{route="default",mode="enforce"\} 3/);
  });

  it('in shadow mode the budget counts what it would deny but retries go on', async () => {
    t = await startTestRelay({ env: { ...budgetEnv, RETRY_BUDGET_MODE: 'shadow' }, sim: { failRate: 1 } });
    for (let i = 0; i < 3; i++) expectProblem(await relay({ i }), 502);
    expect(t.sim.counters().received).toBe(12);
    const stats = (await t.http.get('/stats')).body as { retryBudget: { denied: number; shadowDenied: number } };
    expect(stats.retryBudget).toMatchObject({ denied: 0 });
    expect(stats.retryBudget.shadowDenied).toBeGreaterThanOrEqual(8);
  });
});

describe('rate limit', () => {
  it('spaces calls to the downstream at the configured rate', async () => {
    t = await startTestRelay({ env: { RATE_LIMIT_RPS: '20', RATE_LIMIT_BURST: '1', RATE_LIMIT_WARMUP_MS: '0', WORKERS: '10' } });
    const startedAt = Date.now();
    const all = await Promise.all(Array.from({ length: 6 }, (_, i) => relay({ i })));
    expect(all.map((r) => r.status)).toEqual(Array(6).fill(200));
    // One call at once, then five spaced 50 ms apart.
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(230);
    const stats = (await t.http.get('/stats')).body as { rateLimit: { primary: { delayed: number } } };
    expect(stats.rateLimit.primary.delayed).toBe(5);
  });

  it('answers 503 RATE_LIMITED when no call is free before the deadline, without calling the downstream', async () => {
    t = await startTestRelay({
      env: { RATE_LIMIT_RPS: '1', RATE_LIMIT_BURST: '1', RATE_LIMIT_WARMUP_MS: '0', REQUEST_DEADLINE_MS: '300', DOWNSTREAM_TIMEOUT_MS: '200' },
    });
    expect((await relay()).status).toBe(200);
    const res = await relay();
    expect(expectProblem(res, 503).code).toBe('RATE_LIMITED');
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(t.sim.counters().received).toBe(1);
  });

  it('never warms up live traffic at start-up: a fresh relay sends at the full rate', async () => {
    t = await startTestRelay({
      env: { RATE_LIMIT_RPS: '100', RATE_LIMIT_BURST: '1', RATE_LIMIT_WARMUP_MS: '60000', RATE_LIMIT_WARMUP_START_RPS: '1' },
    });
    // Ten calls at 100/s take about 90 ms; a warm-up from 1/s would make the second wait about a second.
    const started = Date.now();
    expect(await sendSequentially(10)).toEqual(Array(10).fill(200));
    expect(Date.now() - started).toBeLessThan(900);
    const stats = (await t.http.get('/stats')).body as { rateLimit: { primary: { currentRatePerSecond: number; warmingUp: boolean } } };
    expect(stats.rateLimit.primary).toMatchObject({ warmingUp: false, currentRatePerSecond: 100 });
    expect((await t.http.get('/metrics')).text).toMatch(/relay_rate_limit_per_second\{route="default",upstream="primary"\} 100\b/);
  });

  it('has no rate limit unless RATE_LIMIT_RPS is set', async () => {
    t = await startTestRelay();
    const stats = (await t.http.get('/stats')).body as { rateLimit: Record<string, unknown> };
    expect(stats.rateLimit).toEqual({});
  });
});

describe('adaptive concurrency (AIMD)', () => {
  it('cuts the concurrency limit when the downstream signals overload (429), and shows it in /stats and /metrics', async () => {
    t = await startTestRelay({ env: { WORKERS: '8', RETRY_MAX_ATTEMPTS: '1', BREAKER_MODE: 'off', AIMD_COOLDOWN_MS: '0', AIMD_DECREASE_FACTOR: '0.5' }, sim: { failRate: 1, failStatus: 429 } });
    await sendSequentially(3);
    const stats = (await t.http.get('/stats')).body as { aimd: { limit: number }; queue: { concurrencyLimit: number } };
    expect(stats.aimd.limit).toBe(1);
    expect(stats.queue.concurrencyLimit).toBe(1);
    expect((await t.http.get('/metrics')).text).toMatch(/relay_concurrency_limit\{route="default"\} 1\b/);

    // Back up again once healthy, slowly near the limit where it was overloaded (20 round trips there).
    t.sim.setProfile({ failRate: 0 });
    await sendSequentially(25);
    expect(((await t.http.get('/stats')).body as { aimd: { limit: number } }).aimd.limit).toBeGreaterThan(1);
  });

  it('a route without a rate limit restarts its concurrency low after its breaker closes, and doubles back up', async () => {
    t = await startTestRelay({ env: { ...breakerEnv, BREAKER_OPEN_MAX_MS: '300', WORKERS: '64' }, sim: { failRate: 1 } });
    await sendSequentially(5);
    expect((await breakers()).primary!.state).toBe('open');
    t.sim.setProfile({ failRate: 0 });
    await new Promise((resolve) => setTimeout(resolve, 350));
    // Two probes close it.
    expect(await sendSequentially(2)).toEqual([200, 200]);
    expect((await breakers()).primary!.state).toBe('closed');
    const after = ((await t.http.get('/stats')).body as { aimd: { limit: number; slowStart: boolean } }).aimd;
    expect(after).toMatchObject({ limit: 1, slowStart: true });
    // Ten requests at once: each healthy call at the limit adds one, so the limit doubles per round trip.
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => relay({ i })));
    expect(answers.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(((await t.http.get('/stats')).body as { aimd: { limit: number } }).aimd.limit).toBeGreaterThanOrEqual(8);
  });

  it('in shadow mode the limit it computes moves but the pool keeps every worker', async () => {
    t = await startTestRelay({ env: { WORKERS: '8', RETRY_MAX_ATTEMPTS: '1', BREAKER_MODE: 'off', AIMD_MODE: 'shadow', AIMD_COOLDOWN_MS: '0', AIMD_DECREASE_FACTOR: '0.5' }, sim: { failRate: 1, failStatus: 429 } });
    await sendSequentially(3);
    const stats = (await t.http.get('/stats')).body as { aimd: { limit: number; computedLimit: number }; queue: { concurrencyLimit: number } };
    expect(stats.aimd.computedLimit).toBe(1);
    expect(stats.queue.concurrencyLimit).toBe(8);
  });
});

describe('priorities', () => {
  it('rejects an unknown X-Relay-Priority with 400 and sends nothing', async () => {
    t = await startTestRelay();
    const res = await t.http.post('/relay').set('content-type', 'application/json').set('X-Relay-Priority', 'urgent').send('{}');
    expect(expectProblem(res, 400).detail).toMatch(/X-Relay-Priority/);
    expect(t.sim.counters().received).toBe(0);
  });

  it('serves a queued high-priority request before earlier normal and low ones', async () => {
    t = await startTestRelay({ env: { WORKERS: '1', QUEUE_CAPACITY: '10' }, sim: { latencyMs: 150, jitterMs: 0 } });
    const order: string[] = [];
    const send = (priority: string) =>
      t!.http
        .post('/relay')
        .set('content-type', 'application/json')
        .set('X-Relay-Priority', priority)
        .send(JSON.stringify({ priority }))
        .then((res) => {
          order.push(priority);
          return res.status;
        });
    const blocker = send('normal');
    await eventually(() => t!.sim.counters().inFlight === 1);
    const low = send('low');
    await eventually(() => t!.relay.main.pool.depth === 1);
    const normal = send('normal');
    await eventually(() => t!.relay.main.pool.depth === 2);
    const high = send('high');
    await eventually(() => t!.relay.main.pool.depth === 3);
    expect(await Promise.all([blocker, low, normal, high])).toEqual([200, 200, 200, 200]);
    expect(order).toEqual(['normal', 'high', 'normal', 'low']);
  });

  it('sheds low priority first as the queue fills: a low request gets 429 while normal ones still queue', async () => {
    t = await startTestRelay({ env: { WORKERS: '1', QUEUE_CAPACITY: '4' }, sim: { latencyMs: 600, jitterMs: 0 } });
    // then() starts the request now (supertest sends only when awaited).
    const send = (priority: string) =>
      t!.http
        .post('/relay')
        .set('content-type', 'application/json')
        .set('X-Relay-Priority', priority)
        .send('{}')
        .then((res) => res);
    const inflight = [send('normal')];
    await eventually(() => t!.sim.counters().inFlight === 1);
    inflight.push(send('normal'), send('normal'));
    await eventually(() => t!.relay.main.pool.depth === 2);
    const low = await send('low');
    expect(expectProblem(low, 429).code).toBe('QUEUE_FULL');
    // A normal request still queues (the lower half is not reserved for it).
    inflight.push(send('normal'));
    expect((await Promise.all(inflight)).map((r) => r.status)).toEqual([200, 200, 200, 200]);
    const stats = (await t.http.get('/stats')).body as { shed: Record<string, number> };
    expect(stats.shed).toEqual({ high: 0, normal: 0, low: 1 });
  });
});
