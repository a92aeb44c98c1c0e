import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { useProcessTestScope } from './helpers/process-test-scope.js';
import { startRelayProcess } from './helpers/relay-process.js';
import { eventually, startTestRelay, uniqueKey, type TestRelay } from './helpers/test-relay.js';

const { defer, tempDb, simulator } = useProcessTestScope('relay-durability');

function relayTo(url: string, body: unknown, key?: string): Promise<Response> {
  return fetch(`${url}/relay`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key === undefined ? {} : { 'idempotency-key': key }) },
    body: JSON.stringify(body),
  });
}

describe('durability', () => {
  it('DLQ entries and idempotency records survive a restart', async () => {
    const SQLITE_PATH = tempDb();
    const env = { SQLITE_PATH, RETRY_MAX_ATTEMPTS: '2' };
    const key = uniqueKey('restart');

    let t: TestRelay | undefined = await startTestRelay({ env });
    defer(() => t?.close());
    t.sim.script([{ status: 503 }, { status: 503 }]);
    const failed = await t.http.post('/relay').set('content-type', 'application/json').send({ lost: 'for now' });
    expect(failed.status).toBe(502);
    const dlqId = JSON.parse(failed.text).dlqId as string;
    const delivered = await t.http.post('/relay').set('content-type', 'application/json').set('Idempotency-Key', key).send({ pay: 5 });
    expect(delivered.status).toBe(200);
    await t.close();

    t = await startTestRelay({ env });
    const list = await t.http.get('/dlq');
    expect(list.status).toBe(200);
    expect(list.body.items).toHaveLength(1);
    expect(list.body.items[0]).toMatchObject({ id: dlqId });
    expect((await t.http.get(`/dlq/${String(dlqId)}`)).body).toMatchObject({ id: dlqId, body: { lost: 'for now' } });
    expect(list.body.items[0].attempts).toHaveLength(2);

    const replayed = await t.http.post('/relay').set('content-type', 'application/json').set('Idempotency-Key', key).send({ pay: 5 });
    expect(replayed.status).toBe(200);
    expect(replayed.headers['idempotent-replayed']).toBe('true');
    expect(replayed.text).toBe(delivered.text);
    expect(t.sim.counters().received).toBe(0);
  });

  it('an accepted DLQ entry survives kill -9', async () => {
    const SQLITE_PATH = tempDb();
    const sim = await simulator({ failRate: 1 });
    const env = { DOWNSTREAM_URL: `${sim.url}/`, RETRY_MAX_ATTEMPTS: '1', SQLITE_PATH };

    const first = await startRelayProcess(env);
    const res = await relayTo(first.url, { must: 'survive' });
    expect(res.status).toBe(502);
    const { dlqId } = (await res.json()) as { dlqId: string };
    expect(dlqId).toEqual(expect.any(String));
    expect(await first.kill('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });

    const second = await startRelayProcess(env);
    const entry = await fetch(`${second.url}/dlq/${dlqId}`);
    expect(entry.status).toBe(200);
    expect(await entry.json()).toMatchObject({ id: dlqId, body: { must: 'survive' } });
  });

  it('a key whose holder crashed mid-request is held while its lease lasts, then answered as outcome unknown, never run twice', async () => {
    // The lease is stamped by the holder at reservation: REQUEST_DEADLINE_MS + 5 s. A 1.5 s
    // deadline gives a 6.5 s lease, and leaves the test ~1.5 s to kill the holder while the
    // downstream still holds its request (the attempt would time out after that).
    const deadlineMs = 1_500;
    const leaseMs = deadlineMs + 5_000;
    const SQLITE_PATH = tempDb();
    const sim = await simulator();
    const env = { DOWNSTREAM_URL: `${sim.url}/`, SQLITE_PATH, REQUEST_DEADLINE_MS: String(deadlineMs), RETRY_MAX_ATTEMPTS: '1' };
    const key = uniqueKey('crash');
    const body = { charge: 42 };

    const holder = await startRelayProcess(env);
    sim.script([{ delayMs: 5_000 }]);
    const sentAt = Date.now();
    const pending = relayTo(holder.url, body, key).catch((error: unknown) => error);
    await eventually(() => sim.counters().inFlight === 1, deadlineMs - 100, 2);
    await holder.kill('SIGKILL');
    expect(await pending).toBeInstanceOf(Error); // the client of the crashed relay got no answer
    await eventually(() => sim.counters().inFlight === 0);
    expect(sim.counters().received).toBe(1);

    const successor = await startRelayProcess(env);
    const blocked = await relayTo(successor.url, body, key);
    expect(Date.now()).toBeLessThan(sentAt + leaseMs); // still inside the crashed holder's lease
    expect(blocked.status).toBe(409);
    expect(blocked.headers.get('retry-after')).toBe('1');
    expect(sim.counters().received).toBe(1);

    // Past the lease the relay cannot know whether the downstream acted: it says so instead of sending again.
    while (Date.now() < sentAt + leaseMs + 200) await sleep(250);
    const after = await relayTo(successor.url, body, key);
    expect(after.status).toBe(409);
    expect(await after.json()).toMatchObject({ code: 'IDEMPOTENCY_OUTCOME_UNKNOWN' });
    expect(sim.counters().received).toBe(1);
  });
});
