import { afterEach, describe, expect, it } from 'vitest';
import { expectProblem } from './helpers/problem.js';
import { eventually, startTestRelay, uniqueKey, type TestRelay } from './helpers/test-relay.js';

let t: TestRelay | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

/** Jobs are looked for every 20 ms and retried after a few ms, so tests finish quickly. */
const jobEnv = {
  JOB_POLL_MS: '20',
  JOB_RETRY_BASE_DELAY_MS: '5',
  JOB_RETRY_MAX_DELAY_MS: '20',
  JOB_MAX_ATTEMPTS: '3',
  BREAKER_MODE: 'off',
};

interface JobView {
  id: string;
  state: string;
  idempotencyKey: string;
  attempts: Array<{ status?: number }>;
  response: { status: number; contentType: string | null; body: unknown } | null;
  dlqId: string | null;
  lastError: string | null;
  redrives: number;
}

function sendAsync(body: unknown, headers: Record<string, string> = {}) {
  const req = t!.http.post('/relay').set('content-type', 'application/json').set('Prefer', 'respond-async');
  for (const [name, value] of Object.entries(headers)) req.set(name, value);
  return req.send(typeof body === 'string' ? body : JSON.stringify(body));
}

async function job(id: string): Promise<JobView> {
  const res = await t!.http.get(`/jobs/${id}`);
  expect(res.status).toBe(200);
  return res.body as JobView;
}

async function until(id: string, state: string): Promise<JobView> {
  let last: JobView | undefined;
  await eventually(async () => {
    last = await job(id);
    return last.state === state;
  }, 5_000);
  return last!;
}

describe('async relay (Prefer: respond-async)', () => {
  it('answers 202 with Location and Preference-Applied once stored, then delivers with the key forwarded', async () => {
    t = await startTestRelay({ env: jobEnv });
    const key = uniqueKey('async');
    const res = await sendAsync({ order: 1 }, { 'Idempotency-Key': key });

    expect(res.status).toBe(202);
    expect(res.headers['preference-applied']).toBe('respond-async');
    const id = (res.body as { jobId: string }).jobId;
    expect(res.headers.location).toBe(`/jobs/${id}`);

    const delivered = await until(id, 'delivered');
    expect(delivered.attempts).toHaveLength(1);
    expect(delivered.response).toMatchObject({ status: 200, body: { ok: true, echo: { order: 1 } } });
    expect(t.sim.counters().byKey[key]).toBe(1);
    expect(t.sim.counters().lastHeaders?.['idempotency-key']).toBe(key);
    const stats = (await t.http.get('/stats')).body as { totals: { accepted: number }; jobs: { states: Record<string, number> } };
    expect(stats.totals.accepted).toBe(1);
    expect(stats.jobs.states.delivered).toBe(1);
  });

  it('a job without a key gets one made up, which the downstream receives', async () => {
    t = await startTestRelay({ env: jobEnv });
    const id = ((await sendAsync({ n: 2 })).body as { jobId: string }).jobId;
    const delivered = await until(id, 'delivered');
    expect(delivered.idempotencyKey).toBe(`relay-job-${id}`);
    expect(t.sim.counters().byKey[`relay-job-${id}`]).toBe(1);
  });

  it('a duplicate key gets the same job; the same key with another body gets 422', async () => {
    t = await startTestRelay({ env: jobEnv });
    const key = uniqueKey('dup');
    const first = await sendAsync({ a: 1 }, { 'Idempotency-Key': key });
    const again = await sendAsync({ a: 1 }, { 'Idempotency-Key': key });
    expect(again.status).toBe(202);
    expect((again.body as { jobId: string }).jobId).toBe((first.body as { jobId: string }).jobId);
    expectProblem(await sendAsync({ a: 2 }, { 'Idempotency-Key': key }), 422);
    await until((first.body as { jobId: string }).jobId, 'delivered');
    expect(t.sim.counters().byKey[key]).toBe(1);
  });

  it('a transient failure is retried on the job schedule and then delivered', async () => {
    t = await startTestRelay({ env: jobEnv });
    t.sim.script([{ status: 503 }]);
    const id = ((await sendAsync({ n: 3 })).body as { jobId: string }).jobId;
    const delivered = await until(id, 'delivered');
    expect(delivered.attempts.map((a) => a.status)).toEqual([503, 200]);
  });

  it('exhausted attempts make the job dead, with a transient DLQ entry that points back at it', async () => {
    t = await startTestRelay({ env: jobEnv, sim: { failRate: 1 } });
    const id = ((await sendAsync({ n: 4 })).body as { jobId: string }).jobId;
    const dead = await until(id, 'dead');
    expect(dead.attempts).toHaveLength(3);
    expect(dead.dlqId).toEqual(expect.any(String));
    const entry = (await t.http.get(`/dlq/${dead.dlqId!}`)).body as Record<string, unknown>;
    expect(entry).toMatchObject({ jobId: id, reason: 'transient', cause: 'attempts_exhausted', status: 502, redrives: 0 });
    expect(entry.attempts).toHaveLength(3);
  });

  it('a non-retryable answer makes the job dead at once as permanent, keeping the answer', async () => {
    t = await startTestRelay({ env: jobEnv });
    t.sim.script([{ status: 400, body: { error: 'bad card' } }]);
    const id = ((await sendAsync({ n: 5 })).body as { jobId: string }).jobId;
    const dead = await until(id, 'dead');
    expect(dead.attempts).toHaveLength(1);
    expect(dead.response).toMatchObject({ status: 400 });
    const entry = (await t.http.get(`/dlq/${dead.dlqId!}`)).body as Record<string, unknown>;
    expect(entry).toMatchObject({ reason: 'permanent', cause: 'non_retryable', status: 400 });
  });

  it('while the breaker is open a job waits without spending attempts, then is delivered', async () => {
    t = await startTestRelay({
      env: { ...jobEnv, BREAKER_MODE: 'enforce', BREAKER_MIN_CALLS: '3', BREAKER_OPEN_MS: '300', RETRY_MAX_ATTEMPTS: '1' },
      sim: { failRate: 1 },
    });
    for (let i = 0; i < 3; i++) await t.http.post('/relay').set('content-type', 'application/json').send('{}');
    const id = ((await sendAsync({ n: 6 })).body as { jobId: string }).jobId;
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect((await job(id)).attempts).toHaveLength(0);
    t.sim.setProfile({ failRate: 0 });
    const delivered = await until(id, 'delivered');
    expect(delivered.attempts.map((a) => a.status)).toEqual([200]);
  });

  it('bad input is refused before anything is stored', async () => {
    t = await startTestRelay({ env: jobEnv });
    expectProblem(await sendAsync({ ok: true }, { 'X-Relay-Priority': 'asap' }), 400);
    expectProblem(await sendAsync({ ok: true }, { Authorization: 'Bearer needs-a-secret-key' }), 400);
    expectProblem(await sendAsync({ ok: true }, { 'Idempotency-Key': '' }), 400);
    const counts = (await t.http.get('/jobs')).body as { counts: Record<string, number> };
    expect(counts.counts).toEqual({ queued: 0, in_flight: 0, delivered: 0, dead: 0 });
  });

  it('an unknown job id is a 404 problem', async () => {
    t = await startTestRelay({ env: jobEnv });
    expectProblem(await t.http.get('/jobs/no-such-job'), 404);
    expectProblem(await t.http.get(`/jobs/${'x'.repeat(500)}`), 404);
  });

  it('a store that cannot be reached answers 503 and accepts nothing', async () => {
    t = await startTestRelay({ env: jobEnv });
    await t.relay.store.close();
    expectProblem(await sendAsync({ n: 7 }), 503);
  });
});

describe('POST /relay/batch', () => {
  it('accepts up to 100 items, each with its own key, and answers per item', async () => {
    t = await startTestRelay({ env: jobEnv });
    const keys = [uniqueKey('b'), uniqueKey('b')];
    const res = await t.http
      .post('/relay/batch')
      .set('content-type', 'application/json')
      .send({ items: [{ body: { i: 0 }, idempotencyKey: keys[0] }, { body: { i: 1 }, idempotencyKey: keys[1], priority: 'high' }, { body: [1, 2] }] });
    expect(res.status).toBe(202);
    const items = (res.body as { items: Array<{ index: number; status: number; jobId: string; location: string }> }).items;
    expect(items.map((i) => [i.index, i.status])).toEqual([
      [0, 202],
      [1, 202],
      [2, 202],
    ]);
    for (const item of items) await until(item.jobId, 'delivered');
    expect(t.sim.counters().byKey[keys[0]!]).toBe(1);
    expect(t.sim.counters().byKey[keys[1]!]).toBe(1);
  });

  it('a bad item gets its own problem (207) while the others are accepted', async () => {
    t = await startTestRelay({ env: jobEnv });
    const res = await t.http
      .post('/relay/batch')
      .set('content-type', 'application/json')
      .send({ items: [{ body: { ok: 1 } }, { body: { ok: 2 }, idempotencyKey: '' }, { body: { ok: 3 }, priority: 'nope' }] });
    expect(res.status).toBe(207);
    const items = (res.body as { items: Array<{ status: number; problem?: { code: string } }> }).items;
    expect(items.map((i) => i.status)).toEqual([202, 400, 400]);
    expect(items[1]!.problem?.code).toBe('INVALID_IDEMPOTENCY_KEY');
  });

  it('refuses more than 100 items, no items, or a body that is not a batch, storing nothing', async () => {
    t = await startTestRelay({ env: jobEnv });
    const post = (body: unknown) => t!.http.post('/relay/batch').set('content-type', 'application/json').send(JSON.stringify(body));
    expectProblem(await post({ items: Array.from({ length: 101 }, (_, i) => ({ body: i })) }), 400);
    expectProblem(await post({ items: [] }), 400);
    expectProblem(await post([1, 2, 3]), 400);
    // A batch whose only item is malformed: that item's own problem, in a 207.
    const badItem = await post({ items: [{ nobody: true }] });
    expect(badItem.status).toBe(207);
    expect((badItem.body as { items: Array<{ status: number }> }).items[0]!.status).toBe(400);
    expectProblem(await t.http.post('/relay/batch').set('content-type', 'text/plain').send('x'), 415);
    const counts = (await t.http.get('/jobs')).body as { counts: Record<string, number> };
    expect(counts.counts).toMatchObject({ queued: 0, delivered: 0 });
  });
});

describe('DLQ redrive', () => {
  it('POST /dlq/redrive moves transient entries back to the queue, where they are delivered', async () => {
    t = await startTestRelay({ env: { ...jobEnv, DLQ_REDRIVE_MAX: '0' }, sim: { failRate: 1 } });
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(((await sendAsync({ i })).body as { jobId: string }).jobId);
    for (const id of ids) await until(id, 'dead');
    expect(((await t.http.get('/dlq')).body as { items: unknown[] }).items).toHaveLength(3);

    t.sim.setProfile({ failRate: 0 });
    const res = await t.http.post('/dlq/redrive').send({ reason: 'transient', ratePerSecond: 100 });
    expect(res.status).toBe(202);
    const taskId = (res.body as { id: string }).id;
    expect(res.headers.location).toBe(`/dlq/redrive/${taskId}`);
    await eventually(async () => ((await t!.http.get(`/dlq/redrive/${taskId}`)).body as { state: string }).state === 'completed');
    expect(((await t.http.get(`/dlq/redrive/${taskId}`)).body as { moved: number }).moved).toBe(3);
    for (const id of ids) expect((await until(id, 'delivered')).redrives).toBe(1);
    expect(((await t.http.get('/dlq')).body as { items: unknown[] }).items).toHaveLength(0);
  });

  it('redrive leaves permanent entries alone when asked for transient ones, and paces the move', async () => {
    t = await startTestRelay({ env: { ...jobEnv, DLQ_REDRIVE_MAX: '0' } });
    t.sim.script([{ status: 400 }]);
    const permanent = ((await sendAsync({ p: 1 })).body as { jobId: string }).jobId;
    await until(permanent, 'dead');
    const res = await t.http.post('/dlq/redrive').send({ reason: 'transient' });
    const taskId = (res.body as { id: string }).id;
    await eventually(async () => ((await t!.http.get(`/dlq/redrive/${taskId}`)).body as { state: string }).state === 'completed');
    expect(((await t.http.get(`/dlq/redrive/${taskId}`)).body as { moved: number }).moved).toBe(0);
    expect(((await t.http.get('/dlq')).body as { items: Array<{ reason: string }> }).items.map((e) => e.reason)).toEqual(['permanent']);
  });

  it('rejects a malformed redrive request with 400', async () => {
    t = await startTestRelay({ env: jobEnv });
    expectProblem(await t.http.post('/dlq/redrive').send({ reason: 'sometimes' }), 400);
    expectProblem(await t.http.post('/dlq/redrive').send({ limit: -1 }), 400);
    expectProblem(await t.http.post('/dlq/redrive').set('content-type', 'application/json').send('{"oops'), 400);
    expectProblem(await t.http.get('/dlq/redrive/unknown-task'), 404);
  });

  it('transient entries are redriven automatically after the cool-down, up to the cap', async () => {
    t = await startTestRelay({ env: { ...jobEnv, DLQ_REDRIVE_MAX: '1', DLQ_REDRIVE_COOLDOWN_S: '0' }, sim: { failRate: 1 } });
    const id = ((await sendAsync({ auto: 1 })).body as { jobId: string }).jobId;
    // Dead, redriven once automatically, dead again: the cap keeps it in the DLQ from then on.
    await eventually(async () => {
      const view = await job(id);
      return view.state === 'dead' && view.redrives === 1;
    }, 8_000);
    expect((await job(id)).attempts).toHaveLength(6);
    expect(t.sim.counters().received).toBe(6);
  });
});

describe('what review found', () => {
  it('a synchronous DLQ entry is not redriven automatically: its client was answered and owns the retry', async () => {
    t = await startTestRelay({ env: { ...jobEnv, DLQ_REDRIVE_MAX: '3', DLQ_REDRIVE_COOLDOWN_S: '0', RETRY_MAX_ATTEMPTS: '1' } });
    t.sim.script([{ status: 503 }]);
    const failed = await t.http.post('/relay').set('content-type', 'application/json').set('Idempotency-Key', uniqueKey('sync')).send('{"s":1}');
    expectProblem(failed, 502);
    // The automatic redrive runs every second here; give it two chances.
    await new Promise((resolve) => setTimeout(resolve, 2_300));
    expect(t.sim.counters().received).toBe(1);
    expect(((await t.http.get('/dlq')).body as { items: unknown[] }).items).toHaveLength(1);
  });

  it('redriving by hand a keyed entry whose client already resent it successfully deletes it instead of sending it again', async () => {
    t = await startTestRelay({ env: { ...jobEnv, DLQ_REDRIVE_MAX: '0', RETRY_MAX_ATTEMPTS: '1' } });
    const key = uniqueKey('resent');
    const send = () => t!.http.post('/relay').set('content-type', 'application/json').set('Idempotency-Key', key).send('{"pay":42}');
    t.sim.script([{ status: 503 }]);
    expectProblem(await send(), 502);
    expect((await send()).status).toBe(200);
    const task = (await t.http.post('/dlq/redrive').send({})).body as { id: string };
    await eventually(async () => ((await t!.http.get(`/dlq/redrive/${task.id}`)).body as { state: string }).state === 'completed');
    expect(((await t.http.get(`/dlq/redrive/${task.id}`)).body as { moved: number; skipped: number })).toMatchObject({ moved: 0, skipped: 1 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(t.sim.counters().byKey[key]).toBe(2);
    expect(((await t.http.get('/dlq')).body as { items: unknown[] }).items).toHaveLength(0);
  });

  it('a keyless synchronous entry redriven by hand reaches the downstream with the job key', async () => {
    t = await startTestRelay({ env: { ...jobEnv, DLQ_REDRIVE_MAX: '0', RETRY_MAX_ATTEMPTS: '1' } });
    t.sim.script([{ status: 503 }]);
    expectProblem(await t.http.post('/relay').set('content-type', 'application/json').send('{"k":0}'), 502);
    await t.http.post('/dlq/redrive').send({});
    await eventually(() => t!.sim.counters().received === 2);
    expect(String(t.sim.counters().lastHeaders?.['idempotency-key'])).toMatch(/^relay-job-/);
  });

  it('a redrive body that is not JSON is refused (it would otherwise read as "no filter" and move everything)', async () => {
    t = await startTestRelay({ env: jobEnv });
    expectProblem(await t.http.post('/dlq/redrive').type('form').send('reason=permanent'), 415);
    expectProblem(await t.http.post('/dlq/redrive').send({ ratePerSecond: 1e-7 }), 400);
  });

  it('a batch item nested thousands deep is answered, never a 500', async () => {
    t = await startTestRelay({ env: jobEnv });
    const deep = `${'['.repeat(5_000)}${']'.repeat(5_000)}`;
    const res = await t.http.post('/relay/batch').set('content-type', 'application/json').send(`{"items":[{"body":${deep}}]}`);
    expect(res.status).toBeLessThan(500);
  });

  it('a Retry-After of a day parks a job for an hour at most, and the job stays readable', async () => {
    t = await startTestRelay({ env: jobEnv, sim: { failRate: 1, retryAfterS: 86_400 } });
    const id = ((await sendAsync({ n: 8 })).body as { jobId: string }).jobId;
    await eventually(async () => (await job(id)).attempts.length === 1);
    const res = await t.http.get(`/jobs/${id}`);
    expect(res.status).toBe(200);
    const next = Date.parse((res.body as { nextAttemptAt: string }).nextAttemptAt);
    expect(next - Date.now()).toBeLessThanOrEqual(3_600_000);
    expect(next - Date.now()).toBeGreaterThan(3_000_000);
  });

  it('replaying the DLQ entry of a dead job by hand delivers the job too', async () => {
    t = await startTestRelay({ env: { ...jobEnv, DLQ_REDRIVE_MAX: '0' }, sim: { failRate: 1 } });
    const id = ((await sendAsync({ r: 1 })).body as { jobId: string }).jobId;
    const dead = await until(id, 'dead');
    t.sim.setProfile({ failRate: 0 });
    expect((await t.http.post(`/dlq/${dead.dlqId!}/replay`)).status).toBe(200);
    const delivered = await job(id);
    expect(delivered).toMatchObject({ state: 'delivered', dlqId: null, response: { status: 200 } });
    expect(delivered.attempts.at(-1)?.status).toBe(200);
  });
});

