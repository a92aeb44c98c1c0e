import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startSimulator } from './simulator.js';
import type { Simulator, SimulatorOptions } from './simulator.js';

const started: Simulator[] = [];

async function start(options: SimulatorOptions = {}): Promise<Simulator> {
  // Quiet by default: no failures, no tail, no jitter, so each test states the misbehaviour it wants.
  const sim = await startSimulator({
    ...options,
    profile: { failRate: 0, latencyMs: 0, jitterMs: 0, tailRate: 0, ...options.profile },
  });
  started.push(sim);
  return sim;
}

afterEach(async () => {
  await Promise.all(started.splice(0).map((sim) => sim.close()));
});

async function call(
  sim: Simulator,
  init: { path?: string; method?: 'GET' | 'POST' | 'PUT'; body?: unknown; headers?: Record<string, string>; signal?: AbortSignal } = {},
) {
  const res = await request(`${sim.url}${init.path ?? '/orders'}`, {
    method: init.method ?? 'POST',
    headers: { 'content-type': 'application/json', ...init.headers },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    ...(init.signal ? { signal: init.signal } : {}),
  });
  const text = await res.body.text();
  return {
    status: res.statusCode,
    headers: res.headers,
    body: text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>),
  };
}

function activeTimeouts(): number {
  return process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length;
}

async function until(condition: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('simulated calls', () => {
  it('answers 200 with the echo when failRate is 0', async () => {
    const sim = await start();
    const res = await call(sim, {
      body: { amount: 42 },
      headers: { 'idempotency-key': 'echo-1', 'x-request-id': 'req-1' },
    });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.body).toEqual({ ok: true, echo: { amount: 42 }, idempotencyKey: 'echo-1', requestId: 'req-1' });
  });

  it('echoes null when the body is not JSON', async () => {
    const sim = await start();
    const res = await request(`${sim.url}/raw`, { method: 'POST', body: 'not json' });
    expect(await res.body.json()).toMatchObject({ ok: true, echo: null, idempotencyKey: null, requestId: null });
  });

  it('answers 503 with Retry-After when failRate is 1 and retryAfterS set', async () => {
    const sim = await start({ profile: { failRate: 1, retryAfterS: 7 } });
    const res = await call(sim, { body: {} });
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('7');
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(res.body).toMatchObject({ status: 503, title: 'Service Unavailable' });
  });

  it('answers the configured failStatus, without Retry-After when it is not 503 or 429', async () => {
    const sim = await start({ profile: { failRate: 1, failStatus: 500, retryAfterS: 7 } });
    const res = await call(sim, { body: {} });
    expect(res.status).toBe(500);
    expect(res.headers['retry-after']).toBeUndefined();
  });

  it('waits about latencyMs before answering', async () => {
    const sim = await start({ profile: { latencyMs: 120, jitterMs: 0 } });
    const startedAt = performance.now();
    await call(sim, { body: {} });
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(110);
  });

  it('answers 405 to other methods on a simulated path', async () => {
    const sim = await start();
    const res = await call(sim, { method: 'GET' });
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('POST');
    expect(sim.counters().received).toBe(0);
  });

  it('serves scripted responses in order before the profile', async () => {
    const sim = await start({ profile: { failRate: 1, failStatus: 502 } });
    sim.script([
      { status: 503, retryAfterS: 2 },
      { status: 200 },
      { status: 201, body: { custom: true } },
    ]);
    const statuses = [];
    for (let i = 0; i < 4; i += 1) statuses.push(await call(sim, { body: { i } }));
    expect(statuses.map((r) => r.status)).toEqual([503, 200, 201, 502]);
    expect(statuses[0]?.headers['retry-after']).toBe('2');
    expect(statuses[1]?.body).toMatchObject({ ok: true, echo: { i: 1 } });
    expect(statuses[2]?.body).toEqual({ custom: true });
  });

  it('a hanging request is counted as aborted when the client gives up', async () => {
    const sim = await start({ profile: { hangRate: 1 } });
    await expect(call(sim, { body: {}, signal: AbortSignal.timeout(100) })).rejects.toThrow();
    await until(() => sim.counters().aborted === 1);
    expect(sim.counters()).toMatchObject({ received: 1, aborted: 1, inFlight: 0, answered: {} });
  });

  it('a client that gives up during the latency is counted as aborted and frees its timer', async () => {
    const sim = await start({ profile: { latencyMs: 60_000, jitterMs: 0 } });
    const before = activeTimeouts();
    const controller = new AbortController();
    const pending = call(sim, { body: {}, signal: controller.signal });
    await until(() => sim.counters().received === 1);
    controller.abort();
    await expect(pending).rejects.toThrow();
    await until(() => sim.counters().aborted === 1);
    expect(sim.counters()).toMatchObject({ aborted: 1, inFlight: 0, answered: {} });
    expect(activeTimeouts()).toBeLessThanOrEqual(before);
  });

  it('counts requests per idempotency key and keeps the last headers', async () => {
    const sim = await start();
    await call(sim, { body: {}, headers: { 'idempotency-key': 'key-a' } });
    await call(sim, { body: {}, headers: { 'idempotency-key': 'key-a' } });
    await call(sim, { body: {} });
    await call(sim, { body: {}, headers: { 'idempotency-key': 'key-b', traceparent: '00-abc-def-01' } });
    const counters = sim.counters();
    expect(counters.byKey).toEqual({ 'key-a': 2, 'key-b': 1 });
    expect(counters.received).toBe(4);
    expect(counters.answered).toEqual({ '200': 4 });
    expect(counters.lastHeaders).toMatchObject({ 'idempotency-key': 'key-b', traceparent: '00-abc-def-01' });
    sim.reset();
    expect(sim.counters()).toMatchObject({ received: 0, byKey: {}, answered: {}, lastHeaders: null });
  });

  it('over capacity it answers 503 to some of a burst', async () => {
    const sim = await start({ profile: { capacity: 2, latencyMs: 50, jitterMs: 0 } });
    const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => call(sim, { body: { i } })));
    const statuses = burst.map((r) => r.status);
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(2);
    expect(statuses.filter((s) => s === 503).length).toBeGreaterThan(0);
    expect(sim.counters().peakInFlight).toBeGreaterThan(2);
  });
});

describe('control endpoints', () => {
  it('rejects an invalid profile patch with 400 naming the field', async () => {
    const sim = await start();
    const res = await call(sim, { path: '/__sim/profile', method: 'PUT', body: { failRate: 2 } });
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(res.body).toMatchObject({ field: 'failRate' });
    expect(String(res.body?.detail)).toContain('failRate');
    expect(sim.profile().failRate).toBe(0);
  });

  it('applies a valid profile patch and reports it', async () => {
    const sim = await start();
    const res = await call(sim, { path: '/__sim/profile', method: 'PUT', body: { failRate: 1, failStatus: 429 } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ failRate: 1, failStatus: 429 });
    expect((await call(sim, { body: {} })).status).toBe(429);
  });

  it('setProfile throws on a bad value and leaves the profile unchanged', async () => {
    const sim = await start();
    expect(() => sim.setProfile({ latencyMs: -1 })).toThrow(/latencyMs/);
    expect(() => sim.setProfile({ failStatus: 418 as 503 })).toThrow(/failStatus/);
    expect(sim.profile().latencyMs).toBe(0);
  });

  it('scripts, reports stats and resets over HTTP', async () => {
    const sim = await start();
    const scripted = await call(sim, { path: '/__sim/script', body: [{ status: 504 }] });
    expect(scripted).toMatchObject({ status: 200, body: { scripted: 1 } });
    expect((await call(sim, { body: {} })).status).toBe(504);
    const stats = await call(sim, { path: '/__sim/stats', method: 'GET' });
    expect(stats.body).toMatchObject({ received: 1, answered: { '504': 1 } });
    // Arrivals by 100 ms of the simulator's clock: the one call, in the bucket of its time since start.
    const arrivals = (stats.body as { arrivalsPer100ms: number[] }).arrivalsPer100ms;
    expect(arrivals.reduce((a, b) => a + b, 0)).toBe(1);
    expect(arrivals.at(-1)).toBe(1);
    expect((await call(sim, { path: '/__sim/reset' })).status).toBe(204);
    expect(sim.counters().received).toBe(0);
    expect(sim.counters().arrivalsPer100ms).toEqual([]);
  });

  it('rejects a bad script with 400 naming the entry', async () => {
    const sim = await start();
    const res = await call(sim, { path: '/__sim/script', body: [{ status: 200 }, { status: 'teapot' }] });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ field: '[1].status' });
  });

  it('control endpoints need the bearer token when one is set', async () => {
    const sim = await start({ adminToken: 's3cret' });
    const path = '/__sim/stats';
    expect((await call(sim, { path, method: 'GET' })).status).toBe(401);
    expect((await call(sim, { path, method: 'GET', headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    expect((await call(sim, { path, method: 'GET', headers: { authorization: 'Bearer s3cret' } })).status).toBe(200);
  });
});

describe('shutdown', () => {
  it('close() resolves while a request hangs', async () => {
    const sim = await start({ profile: { hangRate: 1 } });
    const hanging = call(sim, { body: {} });
    await until(() => sim.counters().received === 1);
    await sim.close();
    await expect(hanging).rejects.toThrow();
  });

  it('close() leaves no latency timer behind', async () => {
    const before = activeTimeouts();
    const sim = await start({ profile: { latencyMs: 60_000, jitterMs: 0 } });
    const pending = call(sim, { body: {} }).catch(() => undefined);
    await until(() => sim.counters().received === 1);
    await sim.close();
    await pending;
    expect(activeTimeouts()).toBeLessThanOrEqual(before);
  });
});
