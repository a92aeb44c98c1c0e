import { afterEach, describe, expect, it } from 'vitest';
import { expectProblem } from './helpers/problem.js';
import { startTestRelay, uniqueKey, type TestRelay } from './helpers/test-relay.js';

let t: TestRelay | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

/** Two attempts per request, so "exhausted" means two 503s. */
const env = { RETRY_MAX_ATTEMPTS: '2' };

async function relay(body: unknown, key?: string) {
  const req = t!.http.post('/relay').set('content-type', 'application/json');
  if (key !== undefined) req.set('Idempotency-Key', key);
  return req.send(JSON.stringify(body));
}

/** Sends a request that fails twice and returns the id of its DLQ entry. */
async function deadLetter(body: unknown, key?: string): Promise<string> {
  t!.sim.script([{ status: 503 }, { status: 503 }]);
  const res = await relay(body, key);
  const problem = expectProblem(res, 502);
  expect(problem.dlqId).toEqual(expect.any(String));
  return problem.dlqId as string;
}

describe('dead-letter queue', () => {
  it('a request that exhausts its attempts is listed (without its body) with its key, route, every attempt and the last error; GET /dlq/:id has the body', async () => {
    t = await startTestRelay({ env });
    const key = uniqueKey('dlq');
    t.sim.script([{ status: 503 }, { status: 503 }]);

    const res = await relay({ order: 7, items: ['a', 'b'] }, key);

    const problem = expectProblem(res, 502);
    expect(problem).toMatchObject({ attempts: 2, lastError: expect.any(String), dlqId: expect.any(String) });
    expect(t.sim.counters().received).toBe(2);

    const list = await t.http.get('/dlq');
    expect(list.status).toBe(200);
    expect(list.body.nextCursor).toBeNull();
    expect(list.body.items).toHaveLength(1);
    const entry = list.body.items[0];
    expect(entry).toMatchObject({
      id: problem.dlqId,
      idempotencyKey: key,
      route: 'default',
      method: 'POST',
      path: '',
      contentType: 'application/json',
      delivery: 'failed',
      bodyBytes: JSON.stringify({ order: 7, items: ['a', 'b'] }).length,
      lastError: expect.any(String),
    });
    expect(entry.body).toBeUndefined();
    expect(Number.isNaN(Date.parse(entry.createdAt))).toBe(false);
    expect(entry.attempts).toHaveLength(2);
    for (const attempt of entry.attempts) {
      expect(attempt).toMatchObject({ outcome: expect.any(String), status: 503, durationMs: expect.any(Number), sent: 'yes' });
      expect(Number.isNaN(Date.parse(attempt.at))).toBe(false);
    }

    const single = await t.http.get(`/dlq/${entry.id}`);
    expect(single.status).toBe(200);
    expect(single.body).toMatchObject({ id: entry.id, idempotencyKey: key, body: { order: 7, items: ['a', 'b'] } });
  });

  it('a request without a key is quarantined with idempotencyKey null', async () => {
    t = await startTestRelay({ env });
    const id = await deadLetter({ anonymous: true });
    const res = await t.http.get(`/dlq/${id}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ idempotencyKey: null, body: { anonymous: true } });
  });

  it('pages through 5 entries oldest first, 2 at a time, with nextCursor chaining to null', async () => {
    t = await startTestRelay({ env });
    const ids: string[] = [];
    for (let n = 0; n < 5; n++) ids.push(await deadLetter({ n }));

    const pages: Array<Array<{ id: string }>> = [];
    let cursor: string | null = null;
    const cursors: Array<string | null> = [];
    do {
      const res = await t.http.get('/dlq').query(cursor === null ? { limit: 2 } : { limit: 2, cursor });
      expect(res.status).toBe(200);
      pages.push(res.body.items);
      cursor = res.body.nextCursor;
      cursors.push(cursor);
    } while (cursor !== null && pages.length < 10);

    expect(pages.map((page) => page.length)).toEqual([2, 2, 1]);
    expect(cursors.slice(0, 2)).toEqual([expect.any(String), expect.any(String)]);
    expect(cursors[2]).toBeNull();
    expect(pages.flat().map((entry) => entry.id)).toEqual(ids);
    const bodies = await Promise.all(ids.map(async (id) => ((await t!.http.get(`/dlq/${id}`)).body as { body: { n: number } }).body.n));
    expect(bodies).toEqual([0, 1, 2, 3, 4]);
  });

  it.each([['abc'], ['2.5']])('answers 400 problem naming the field for limit=%s', async (limit) => {
    t = await startTestRelay({ env });
    expect(expectProblem(await t.http.get('/dlq').query({ limit }), 400).detail).toMatch(/limit/);
  });

  it('clamps limit to 1-100: a page is never larger than 100 summaries', async () => {
    t = await startTestRelay({ env });
    for (let n = 0; n < 2; n++) await deadLetter({ n });
    expect((await t.http.get('/dlq').query({ limit: 0 })).body.items).toHaveLength(1);
    const big = await t.http.get('/dlq').query({ limit: 501 });
    expect(big.status).toBe(200);
    expect(big.body.items).toHaveLength(2);
  });

  it('answers 400 problem for a cursor it never handed out', async () => {
    t = await startTestRelay({ env });
    await deadLetter({ n: 1 });
    expectProblem(await t.http.get('/dlq').query({ cursor: 'not-a-cursor!' }), 400);
    expectProblem(await t.http.get('/dlq').query({ cursor: 'AAAA' }), 400);
  });

  it('answers 404 problem for an unknown id', async () => {
    t = await startTestRelay({ env });
    expectProblem(await t.http.get('/dlq/00000000-0000-4000-8000-000000000000'), 404);
    expectProblem(await t.http.post('/dlq/00000000-0000-4000-8000-000000000000/replay'), 404);
    expectProblem(await t.http.delete('/dlq/00000000-0000-4000-8000-000000000000'), 404);
  });

  it('a replay after the downstream recovers delivers, empties the entry, and the key then replays that answer', async () => {
    t = await startTestRelay({ env });
    const key = uniqueKey('replay');
    const body = { pay: 100 };
    const id = await deadLetter(body, key);
    // The script is used up: the downstream now answers 200.

    const replay = await t.http.post(`/dlq/${id}/replay`);
    expect(replay.status).toBe(200);
    expect(replay.body).toMatchObject({ outcome: 'delivered', status: 200, body: { ok: true, echo: body } });
    expect(t.sim.counters().received).toBe(3);

    expectProblem(await t.http.get(`/dlq/${id}`), 404);
    expect((await t.http.get('/dlq')).body.items).toEqual([]);

    const again = await relay(body, key);
    expect(again.status).toBe(200);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body).toMatchObject({ ok: true, echo: body });
    expect(t.sim.counters().received).toBe(3);
  });

  it('a replay while the downstream still fails answers 502 and keeps the entry with the new attempts appended', async () => {
    t = await startTestRelay({ env });
    const id = await deadLetter({ still: 'failing' }, uniqueKey('fail'));
    t.sim.setProfile({ failRate: 1 });

    const replay = await t.http.post(`/dlq/${id}/replay`);
    const problem = expectProblem(replay, 502);
    expect(problem.dlqId).toBe(id);
    expect(t.sim.counters().received).toBe(4);

    const entry = await t.http.get(`/dlq/${id}`);
    expect(entry.status).toBe(200);
    expect(entry.body.attempts).toHaveLength(4);
    expect(entry.body.body).toEqual({ still: 'failing' });
    const list = await t.http.get('/dlq');
    expect(list.body.items.map((e: { id: string }) => e.id)).toEqual([id]);
  });

  it('DELETE removes an entry: 204, then 404', async () => {
    t = await startTestRelay({ env });
    const id = await deadLetter({ drop: true });

    const first = await t.http.delete(`/dlq/${id}`);
    expect(first.status).toBe(204);
    expect(first.text).toBe('');
    expectProblem(await t.http.get(`/dlq/${id}`), 404);
    expectProblem(await t.http.delete(`/dlq/${id}`), 404);
  });

  it('answers 405 with Allow for a wrong method on each DLQ route', async () => {
    t = await startTestRelay({ env });
    const id = await deadLetter({ m: 1 });

    const list = await t.http.put('/dlq');
    expectProblem(list, 405);
    expect(list.headers.allow).toBe('GET');

    const entry = await t.http.post(`/dlq/${id}`);
    expectProblem(entry, 405);
    expect(entry.headers.allow).toBe('GET, DELETE');

    const replay = await t.http.get(`/dlq/${id}/replay`);
    expectProblem(replay, 405);
    expect(replay.headers.allow).toBe('POST');

    // None of that touched the entry.
    expect((await t.http.get(`/dlq/${id}`)).status).toBe(200);
  });
});
