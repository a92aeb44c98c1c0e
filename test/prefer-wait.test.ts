import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { RelayOverrides } from '../src/relay.js';
import { expectProblem } from './helpers/problem.js';
import { deleteKeysWithPrefix, redisForTests, redisUrl } from './helpers/redis.js';
import { removeDb, tempDbPath } from './helpers/temp-db.js';
import { startSimulator } from '../src/sim/simulator.js';
import { eventually, startTestRelay, uniqueKey, type TestRelay } from './helpers/test-relay.js';

// Prefer: respond-async, wait=N (issue 13, item 4): synchronous up to N seconds, then a job, never sent twice.

const redisAvailable = await redisForTests();
const runPrefix = `relay-prefer-wait:${randomUUID()}:`;
afterAll(async () => {
  if (redisAvailable) await deleteKeysWithPrefix(runPrefix);
});

let t: TestRelay | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

/** Jobs looked for every 20 ms and retried after a few ms; as many attempts in all for a job as for a synchronous request. */
const jobEnv = {
  JOB_POLL_MS: '20',
  JOB_RETRY_BASE_DELAY_MS: '5',
  JOB_RETRY_MAX_DELAY_MS: '20',
  JOB_MAX_ATTEMPTS: '3',
  RETRY_MAX_ATTEMPTS: '3',
  BREAKER_MODE: 'off',
};

interface JobView {
  id: string;
  state: string;
  idempotencyKey: string;
  attempts: Array<{ status?: number; outcome: string }>;
  response: { status: number; body: unknown } | null;
  dlqId: string | null;
}

function send(body: unknown, prefer: string | null, headers: Record<string, string> = {}) {
  const req = t!.http.post('/relay').set('content-type', 'application/json');
  if (prefer !== null) req.set('Prefer', prefer);
  for (const [name, value] of Object.entries(headers)) req.set(name, value);
  return req.send(JSON.stringify(body));
}

/** The request's answer and how long it took, in ms. */
async function timed<T>(request: PromiseLike<T>): Promise<{ res: T; ms: number }> {
  const started = performance.now();
  const res = await request;
  return { res, ms: performance.now() - started };
}

async function job(id: string): Promise<JobView> {
  const res = await t!.http.get(`/jobs/${id}`);
  expect(res.status).toBe(200);
  return res.body as JobView;
}

async function until(id: string, state: string, timeoutMs = 5_000): Promise<JobView> {
  let last: JobView | undefined;
  await eventually(async () => {
    last = await job(id);
    return last.state === state;
  }, timeoutMs);
  return last!;
}

function expectJobAnswer(res: { status: number; headers: Record<string, string>; body: unknown }): string {
  expect(res.status).toBe(202);
  expect(res.headers['preference-applied']).toBe('respond-async');
  const { jobId } = res.body as { jobId: string };
  expect(res.headers.location).toBe(`/jobs/${jobId}`);
  return jobId;
}

const stores: Array<{ store: string; env: () => Record<string, string>; skip: boolean }> = [
  { store: 'sqlite', env: () => ({}), skip: false },
  { store: 'redis', env: () => ({ STORE: 'redis', REDIS_URL: redisUrl, REDIS_PREFIX: `${runPrefix}${randomUUID()}:` }), skip: !redisAvailable },
];

for (const { store, env, skip } of stores) {
  describe.skipIf(skip)(`Prefer: respond-async, wait=N (${store})`, () => {
    const start = (extra: Record<string, string> = {}, overrides?: RelayOverrides) =>
      startTestRelay({ env: { ...jobEnv, ...env(), ...extra }, ...(overrides ? { overrides } : {}) });

    it('a fast downstream answers as a synchronous request would: 200, no Preference-Applied, and the key replays it', async () => {
      t = await start();
      const key = uniqueKey('wait-fast');
      const res = await send({ order: 1 }, 'respond-async, wait=5', { 'Idempotency-Key': key });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ ok: true, echo: { order: 1 } });
      expect(res.headers['x-relay-attempts']).toBe('1');
      expect(res.headers['preference-applied']).toBeUndefined();
      expect(res.headers.location).toBeUndefined();

      const again = await send({ order: 1 }, null, { 'Idempotency-Key': key });
      expect(again.status).toBe(200);
      expect(again.headers['idempotent-replayed']).toBe('true');
      expect(t.sim.counters().byKey[key]).toBe(1);
    });

    it('a downstream slower than N: 202 at N, and the attempt in flight becomes the job, delivered without a second call', async () => {
      t = await start();
      t.sim.script([{ status: 200, delayMs: 1_500 }]);
      const key = uniqueKey('wait-slow');
      const { res, ms } = await timed(send({ order: 2 }, 'respond-async, wait=1', { 'Idempotency-Key': key }));
      const id = expectJobAnswer(res);
      expect(ms).toBeGreaterThanOrEqual(900);
      expect(ms).toBeLessThan(1_400);
      expect((res.body as { state: string }).state).toBe('in_flight');

      // The same key while the attempt still runs: the same job, and no call of its own.
      const resent = await send({ order: 2 }, 'respond-async, wait=1', { 'Idempotency-Key': key });
      expect(expectJobAnswer(resent)).toBe(id);
      const sync = await send({ order: 2 }, null, { 'Idempotency-Key': key });
      expect(expectProblem(sync, 409).code).toBe('IDEMPOTENCY_KEY_HELD_BY_JOB');
      expect(sync.headers.location).toBe(`/jobs/${id}`);

      const delivered = await until(id, 'delivered');
      expect(delivered.attempts).toHaveLength(1);
      expect(delivered.response).toMatchObject({ status: 200, body: { ok: true, echo: { order: 2 } } });
      // Once delivered, the key answers with the job's answer.
      const after = await send({ order: 2 }, null, { 'Idempotency-Key': key });
      expect(after.status).toBe(200);
      expect(after.headers['idempotent-replayed']).toBe('true');
      expect(t.sim.counters().received).toBe(1);
      expect(t.sim.counters().byKey[key]).toBe(1);
    });

    it('failures with retries still pending at N: 202, the job goes on, and all attempts together stay within the limit', async () => {
      // Jitter at its top: the first backoff (~2 s) outlasts N, so the request is sleeping when N comes.
      t = await start({ RETRY_BASE_DELAY_MS: '2000', RETRY_MAX_DELAY_MS: '2000' }, { random: () => 0.99 });
      t.sim.setProfile({ failRate: 1 });
      const { res, ms } = await timed(send({ order: 3 }, 'respond-async, wait=1'));
      const id = expectJobAnswer(res);
      expect(ms).toBeLessThan(1_400);
      expect(t.sim.counters().received).toBe(1);

      const dead = await until(id, 'dead');
      expect(dead.attempts.map((a) => a.status)).toEqual([503, 503, 503]);
      expect(t.sim.counters().received).toBe(3);
      const entry = (await t.http.get(`/dlq/${dead.dlqId!}`)).body as Record<string, unknown>;
      expect(entry).toMatchObject({ jobId: id, reason: 'transient' });
      // The synchronous attempt went out under the job's key too: the downstream can tell redeliveries.
      expect(t.sim.counters().byKey[`relay-job-${id}`]).toBe(3);
    });

    it('credentials without RELAY_SECRET_KEY are refused before any attempt, as plain respond-async refuses them', async () => {
      t = await start();
      const res = await send({ order: 4 }, 'respond-async, wait=5', { Authorization: 'Bearer needs-a-secret-key' });
      expect(expectProblem(res, 400).code).toBe('SECRET_KEY_REQUIRED');
      expect(JSON.stringify(res.body)).not.toContain('needs-a-secret-key');
      expect(t.sim.counters().received).toBe(0);
      const stats = (await t.http.get('/stats')).body as { jobs: { states: Record<string, number> } };
      expect(Object.values(stats.jobs.states).reduce((a, b) => a + b, 0)).toBe(0);
    });

    it('an invalid wait is ignored: plain respond-async, 202 before the downstream answers', async () => {
      t = await start();
      for (const prefer of ['respond-async, wait=soon', 'respond-async, wait=1.5', 'respond-async, wait=-2']) {
        t.sim.script([{ status: 200, delayMs: 1_000 }]);
        const { res, ms } = await timed(send({ prefer }, prefer));
        const id = expectJobAnswer(res);
        expect(ms).toBeLessThan(800);
        await until(id, 'delivered');
      }
      expect(t.sim.counters().received).toBe(3);
    });
  });
}

describe('Prefer: respond-async, wait=N when the synchronous part ends early', () => {
  it("the route's retries spent within N but the job's not: 202 at once, and the job finishes the attempts", async () => {
    t = await startTestRelay({ env: { ...jobEnv, RETRY_MAX_ATTEMPTS: '2' } });
    t.sim.script([{ status: 503 }, { status: 503 }]);
    const { res, ms } = await timed(send({ order: 6 }, 'respond-async, wait=5'));
    const id = expectJobAnswer(res);
    expect(ms).toBeLessThan(2_000);
    const delivered = await until(id, 'delivered');
    expect(delivered.attempts.map((a) => a.status)).toEqual([503, 503, 200]);
    expect(t.sim.counters().received).toBe(3);
  });

  it('a permanent failure within N is answered as usual, 502 with the DLQ entry of its job', async () => {
    t = await startTestRelay({ env: jobEnv });
    t.sim.script([{ status: 501 }]);
    const res = await send({ order: 7 }, 'respond-async, wait=5');
    const problem = expectProblem(res, 502);
    expect(problem).toMatchObject({ attempts: 1, dlqId: expect.any(String) });
    expect(res.headers['preference-applied']).toBeUndefined();
    const entry = (await t.http.get(`/dlq/${problem.dlqId as string}`)).body as { jobId: string; reason: string };
    expect(entry.reason).toBe('permanent');
    expect((await job(entry.jobId)).state).toBe('dead');
    expect(t.sim.counters().received).toBe(1);
  });

  it('a paused route holds the request until N, then it is a job, delivered once the route resumes', async () => {
    t = await startTestRelay({ env: jobEnv });
    expect((await t.http.post('/admin/routes/default/pause').send({})).status).toBe(200);
    const { res, ms } = await timed(send({ order: 8 }, 'respond-async, wait=1'));
    const id = expectJobAnswer(res);
    expect(ms).toBeGreaterThanOrEqual(900);
    expect(t.sim.counters().received).toBe(0);
    expect((await t.http.post('/admin/routes/default/resume').send({})).status).toBe(200);
    const delivered = await until(id, 'delivered');
    expect(delivered.attempts).toHaveLength(1);
    expect(t.sim.counters().received).toBe(1);
  });
});

describe('Prefer: respond-async, wait=N when the job queue is full', () => {
  it('is refused up front with 429 JOB_QUEUE_FULL, nothing sent, as plain respond-async would be', async () => {
    t = await startTestRelay({ env: { ...jobEnv, JOB_QUEUE_MAX: '1' } });
    t.sim.script([{ status: 200, delayMs: 1_000 }]);
    // The first holds the queue's one place while its synchronous part runs.
    // then(): supertest sends only once asked for the answer.
    const first = send({ order: 10 }, 'respond-async, wait=5').then((res) => res);
    await eventually(() => t!.sim.counters().received === 1);
    const refused = await send({ order: 11 }, 'respond-async, wait=5');
    expect(expectProblem(refused, 429).code).toBe('JOB_QUEUE_FULL');
    expect((await first).status).toBe(200);
    expect(t.sim.counters().received).toBe(1);
  });
});

describe('Prefer: respond-async, wait=N across a shutdown', () => {
  it('an attempt in flight at N during shutdown still ends on its job before the store closes', async () => {
    const path = tempDbPath('prefer-wait');
    const sim = await startSimulator({ profile: { failRate: 0, latencyMs: 0, jitterMs: 0, tailRate: 0, hangRate: 0 } });
    try {
      t = await startTestRelay({ env: { ...jobEnv, SQLITE_PATH: path }, simulator: sim });
      sim.script([{ status: 200, delayMs: 1_500 }]);
      const id = expectJobAnswer(await send({ order: 9 }, 'respond-async, wait=1'));
      await t.close();
      t = await startTestRelay({ env: { ...jobEnv, SQLITE_PATH: path }, simulator: sim });
      const delivered = await job(id);
      expect(delivered.state).toBe('delivered');
      expect(delivered.attempts.map((a) => a.outcome)).toEqual(['success']);
      expect(sim.counters().received).toBe(1);
    } finally {
      await t?.close();
      t = undefined;
      await sim.close();
      removeDb(path);
    }
  });
});

describe('Prefer: respond-async, wait=N with every breaker open', () => {
  it('becomes a job at once, nothing sent, and is delivered after the breaker closes', async () => {
    t = await startTestRelay({ env: { ...jobEnv, BREAKER_MODE: 'enforce', BREAKER_OPEN_MS: '300' } });
    expect((await t.http.post('/admin/routes/default/breaker').send({ state: 'open' })).status).toBe(200);
    const key = uniqueKey('wait-open');
    const { res, ms } = await timed(send({ order: 5 }, 'respond-async, wait=5', { 'Idempotency-Key': key }));
    const id = expectJobAnswer(res);
    expect(ms).toBeLessThan(1_000);
    expect((res.body as { state: string }).state).toBe('queued');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(t.sim.counters().received).toBe(0);
    expect((await job(id)).attempts).toHaveLength(0);

    expect((await t.http.post('/admin/routes/default/breaker').send({ state: 'auto' })).status).toBe(200);
    const delivered = await until(id, 'delivered');
    expect(delivered.attempts.map((a) => a.status)).toEqual([200]);
    expect(t.sim.counters().byKey[key]).toBe(1);
  });
});
