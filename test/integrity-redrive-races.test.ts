import { describe, expect, it } from 'vitest';
import { BACKENDS, jobCounts, relayPost, settle, useRelays } from './helpers/integrity.js';
import { expectProblem } from './helpers/problem.js';
import { eventually, uniqueKey, type TestRelay } from './helpers/test-relay.js';

// Issue 15, items 1 and 6: "a redrive never opens a window for a second execution",
// and replays are exclusive. Here the redrive comes while another delivery of the
// same request is already on the wire.

const start = useRelays();
const fastJobs = { JOB_POLL_MS: '20', JOB_RETRY_BASE_DELAY_MS: '20', JOB_RETRY_MAX_DELAY_MS: '50', RETRY_MAX_ATTEMPTS: '2' };

/** A synchronous request that ends in the DLQ after two 503s (downstream calls proved not processed); returns its entry id. */
async function deadLetter(t: TestRelay, body: unknown, key?: string): Promise<string> {
  t.sim.script([{ status: 503 }, { status: 503 }]);
  const problem = expectProblem(await relayPost(t, body, key === undefined ? {} : { key }), 502);
  expect(problem.dlqId).toEqual(expect.any(String));
  return problem.dlqId as string;
}

/** POST /dlq/redrive {} and wait until its task has finished. */
async function redriveAll(t: TestRelay): Promise<Record<string, unknown>> {
  const res = await t.http.post('/dlq/redrive').set('content-type', 'application/json').send('{}');
  expect(res.status).toBe(202);
  const taskId = (res.body as { id: string }).id;
  let task: Record<string, unknown> = {};
  await eventually(async () => {
    task = (await t.http.get(`/dlq/redrive/${taskId}`)).body as Record<string, unknown>;
    return task.state !== 'running';
  }, 5_000);
  return task;
}

/** Until no job is queued or in flight, then a little longer for a (wrong) late delivery to show. */
async function quiet(t: TestRelay): Promise<void> {
  await eventually(async () => {
    const counts = await jobCounts(t);
    return (counts.queued ?? 0) + (counts.in_flight ?? 0) === 0;
  }, 8_000);
  await settle(300);
}

describe.each(BACKENDS)('a redrive racing another delivery of the same request (%s)', (backend) => {
  it("a redrive while the client's own resend of the key is in flight does not deliver the request a second time", async () => {
    const t = await start(backend, { env: fastJobs });
    const key = uniqueKey('resend-then-redrive');
    const body = { transfer: 7 };
    await deadLetter(t, body, key);
    expect(t.sim.counters().byKey[key]).toBe(2);
    t.sim.setProfile({ latencyMs: 600, jitterMs: 0 });

    // The client resends first; while its call is on the wire, an operator redrives the DLQ.
    // then(): a supertest request is only sent once something awaits it.
    const resend = relayPost(t, body, { key }).then((res) => res);
    await eventually(() => t.sim.counters().inFlight === 1, 3_000, 5);
    await redriveAll(t);
    expect((await resend).status).toBe(200);
    await quiet(t);

    expect(t.sim.counters().byKey[key], 'calls with the key: 2 failed + deliveries').toBe(3);
    const after = await relayPost(t, body, { key });
    expect(after.status).toBe(200);
    expect(after.headers['idempotent-replayed']).toBe('true');
    expect(t.sim.counters().byKey[key]).toBe(3);
  });

  it('a redrive while a replay of the same keyed entry is in flight does not deliver it a second time', async () => {
    const t = await start(backend, { env: fastJobs });
    const key = uniqueKey('replay-then-redrive');
    const id = await deadLetter(t, { transfer: 8 }, key);
    t.sim.setProfile({ latencyMs: 600, jitterMs: 0 });

    const replay = fetch(`${t.url}/dlq/${id}/replay`, { method: 'POST' });
    await eventually(() => t.sim.counters().inFlight === 1, 3_000, 5);
    await redriveAll(t);
    expect((await replay).status).toBe(200);
    await quiet(t);

    expect(t.sim.counters().byKey[key], 'calls with the key: 2 failed + deliveries').toBe(3);
  });

  it('a redrive while a replay of the same unkeyed entry is in flight does not deliver it a second time', async () => {
    const t = await start(backend, { env: fastJobs });
    const id = await deadLetter(t, { anonymous: 9 });
    expect(t.sim.counters().received).toBe(2);
    t.sim.setProfile({ latencyMs: 600, jitterMs: 0 });

    const replay = fetch(`${t.url}/dlq/${id}/replay`, { method: 'POST' });
    await eventually(() => t.sim.counters().inFlight === 1, 3_000, 5);
    const task = await redriveAll(t);
    expect((await replay).status).toBe(200);
    await quiet(t);

    expect(t.sim.counters().received, `calls: 2 failed + deliveries; redrive task ${JSON.stringify(task)}`).toBe(3);
  });
});
