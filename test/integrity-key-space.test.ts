import { describe, expect, it } from 'vitest';
import { BACKENDS, jobCounts, jobTotal, relayPost, settle, useRelays, waitForJobState } from './helpers/integrity.js';
import { expectProblem } from './helpers/problem.js';
import { eventually, uniqueKey } from './helpers/test-relay.js';

// Issue 15, item 1: one key space across sync, async and redrive.

const start = useRelays();
/** Jobs are looked for often, so a late (wrong) delivery would show within the settle time. */
const fastJobs = { JOB_POLL_MS: '20', JOB_RETRY_BASE_DELAY_MS: '20', JOB_RETRY_MAX_DELAY_MS: '50' };

describe.each(BACKENDS)('one key space for sync and async requests (%s)', (backend) => {
  it('a key used synchronously and then asynchronously with another body is refused 422 IDEMPOTENCY_KEY_REUSED, and the downstream is called once', async () => {
    const t = await start(backend, { env: fastJobs });
    const key = uniqueKey('mix');

    const first = await relayPost(t, { pay: 100 }, { key });
    expect(first.status).toBe(200);

    const second = await relayPost(t, { pay: 999 }, { key, async: true });
    expect(expectProblem(second, 422).code).toBe('IDEMPOTENCY_KEY_REUSED');

    await settle(300);
    expect(t.sim.counters().byKey[key]).toBe(1);
    expect(t.sim.counters().received).toBe(1);
    expect(await jobTotal(t)).toBe(0);
  });

  it('a key used synchronously and then asynchronously with the same body gets the stored answer (200, Idempotent-Replayed) and no job', async () => {
    const t = await start(backend, { env: fastJobs });
    const key = uniqueKey('mix-same');

    const first = await relayPost(t, { pay: 100 }, { key });
    expect(first.status).toBe(200);

    const second = await relayPost(t, { pay: 100 }, { key, async: true });
    expect(second.status).toBe(200);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.text).toBe(first.text);
    expect(second.headers.location).toBeUndefined();

    await settle(300);
    expect(t.sim.counters().byKey[key]).toBe(1);
    expect(await jobTotal(t)).toBe(0);
  });

  it("a key held by an unfinished job answers a synchronous resend 409 with Location: /jobs/{id}, then the job's answer once it is delivered", async () => {
    // Slow enough that the job is still in flight when the synchronous copy arrives.
    const t = await start(backend, { env: fastJobs, sim: { latencyMs: 700, jitterMs: 0 } });
    const key = uniqueKey('async-then-sync');

    const accepted = await relayPost(t, { ship: 1 }, { key, async: true });
    expect(accepted.status).toBe(202);
    const jobId = (accepted.body as { jobId: string }).jobId;

    const early = await relayPost(t, { ship: 1 }, { key });
    expectProblem(early, 409);
    expect(early.headers.location).toBe(`/jobs/${jobId}`);

    const job = await waitForJobState(t, jobId, 'delivered');
    const late = await relayPost(t, { ship: 1 }, { key });
    expect(late.status).toBe(job.response!.status);
    expect(late.headers['idempotent-replayed']).toBe('true');
    expect(late.body).toEqual(job.response!.body);

    await settle(200);
    expect(t.sim.counters().byKey[key]).toBe(1);
  });
});

describe.each(BACKENDS)('a redrive and a resend of one key (%s)', (backend) => {
  /** A keyed synchronous request that ends in the DLQ after two 503s; returns its entry id. */
  async function keyedDeadLetter(t: Awaited<ReturnType<typeof start>>, key: string, body: unknown): Promise<string> {
    t.sim.script([{ status: 503 }, { status: 503 }]);
    const failed = await relayPost(t, body, { key });
    const problem = expectProblem(failed, 502);
    expect(problem.dlqId).toEqual(expect.any(String));
    expect(t.sim.counters().byKey[key]).toBe(2);
    return problem.dlqId as string;
  }

  it('a keyed synchronous DLQ entry redriven by hand and then resent by its client reaches the downstream once', async () => {
    const t = await start(backend, { env: { ...fastJobs, RETRY_MAX_ATTEMPTS: '2' } });
    const key = uniqueKey('redrive-resend');
    const body = { transfer: 42 };
    await keyedDeadLetter(t, key, body);
    // From now on each delivery takes a while, so the resend can meet the redriven job unfinished.
    t.sim.setProfile({ latencyMs: 400, jitterMs: 0 });

    const redrive = await t.http.post('/dlq/redrive').set('content-type', 'application/json').send('{}');
    expect(redrive.status).toBe(202);
    const taskId = (redrive.body as { id: string }).id;
    await eventually(async () => ((await t.http.get(`/dlq/redrive/${taskId}`)).body as { state: string }).state !== 'running', 5_000);
    expect((await t.http.get(`/dlq/redrive/${taskId}`)).body).toMatchObject({ state: 'completed', moved: 1 });

    const resend = await relayPost(t, body, { key });
    if (resend.status === 409) {
      expect(resend.headers.location).toMatch(/^\/jobs\/.+/);
    } else {
      expect(resend.status).toBe(200);
      expect(resend.headers['idempotent-replayed']).toBe('true');
    }

    await eventually(async () => (await jobCounts(t)).delivered === 1, 8_000);
    const after = await relayPost(t, body, { key });
    expect(after.status).toBe(200);
    expect(after.headers['idempotent-replayed']).toBe('true');
    await settle(300);
    // Two failed attempts before the DLQ, then exactly one delivery.
    expect(t.sim.counters().byKey[key]).toBe(3);
    expect(t.sim.counters().answered['200']).toBe(1);
  });

  it('a resend racing a redrive of its own DLQ entry still reaches the downstream once', async () => {
    const t = await start(backend, { env: { ...fastJobs, RETRY_MAX_ATTEMPTS: '2' } });
    const key = uniqueKey('redrive-race');
    const body = { transfer: 43 };
    await keyedDeadLetter(t, key, body);
    t.sim.setProfile({ latencyMs: 150, jitterMs: 0 });

    const [redrive, resend] = await Promise.all([
      t.http.post('/dlq/redrive').set('content-type', 'application/json').send('{}'),
      relayPost(t, body, { key }),
    ]);
    expect(redrive.status).toBe(202);
    expect([200, 409]).toContain(resend.status);

    const taskId = (redrive.body as { id: string }).id;
    await eventually(async () => ((await t.http.get(`/dlq/redrive/${taskId}`)).body as { state: string }).state !== 'running', 5_000);
    await eventually(async () => {
      const counts = await jobCounts(t);
      return (counts.queued ?? 0) + (counts.in_flight ?? 0) === 0;
    }, 8_000);
    await settle(300);
    const after = await relayPost(t, body, { key });
    expect(after.status).toBe(200);
    expect(after.headers['idempotent-replayed']).toBe('true');
    expect(t.sim.counters().answered['200']).toBe(1);
    expect(t.sim.counters().byKey[key]).toBe(3);
  });
});

describe.each(BACKENDS)('one key space for sync requests and /relay/batch items (%s)', (backend) => {
  it('a batch item reusing a synchronous key gets 422 with another body and the stored answer with the same body; the downstream is called once', async () => {
    const t = await start(backend, { env: fastJobs });
    const key = uniqueKey('sync-then-batch');
    expect((await relayPost(t, { pay: 100 }, { key })).status).toBe(200);

    const batch = `{"items":[{"idempotencyKey":"${key}","body":{"pay":999}},{"idempotencyKey":"${key}","body":{"pay":100}}]}`;
    const res = await t.http.post('/relay/batch').set('content-type', 'application/json').send(batch);
    expect(res.status).toBe(207);
    const [other, same] = (res.body as { items: Array<{ status: number; problem?: { code: string }; jobId?: string }> }).items;
    expect(other).toMatchObject({ status: 422, problem: { code: 'IDEMPOTENCY_KEY_REUSED' } });
    expect(same!.status).toBe(200);
    expect(same!.jobId).toBeUndefined();

    await settle(300);
    expect(t.sim.counters().byKey[key]).toBe(1);
    expect(await jobTotal(t)).toBe(0);
  });

  it('a synchronous request reusing a batch item key gets 409 with Location while its job is unfinished', async () => {
    const t = await start(backend, { env: fastJobs, sim: { latencyMs: 600, jitterMs: 0 } });
    const key = uniqueKey('batch-then-sync');
    const res = await t.http.post('/relay/batch').set('content-type', 'application/json').send(`{"items":[{"idempotencyKey":"${key}","body":{"n":1}}]}`);
    expect(res.status).toBe(202);
    const jobId = (res.body as { items: Array<{ jobId: string }> }).items[0]!.jobId;

    const sync = await relayPost(t, { n: 1 }, { key });
    expectProblem(sync, 409);
    expect(sync.headers.location).toBe(`/jobs/${jobId}`);
    expect(expectProblem(await relayPost(t, { n: 2 }, { key }), 422).code).toBe('IDEMPOTENCY_KEY_REUSED');

    await waitForJobState(t, jobId, 'delivered');
    await settle(200);
    expect(t.sim.counters().byKey[key]).toBe(1);
  });
});
