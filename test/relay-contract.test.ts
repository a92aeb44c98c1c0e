import { afterEach, describe, expect, it } from 'vitest';
import { startCaptureDownstream, type CaptureDownstream } from './helpers/capture-downstream.js';
import { expectProblem } from './helpers/problem.js';
import { closedPort, rawRequest, type RawResponse } from './helpers/raw-http.js';
import { eventually, startTestRelay, uniqueKey, type TestRelay } from './helpers/test-relay.js';

let t: TestRelay | undefined;
let capture: CaptureDownstream | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
  await capture?.close();
  capture = undefined;
});

const JSON_TYPE = 'application/json';

/** POST /relay through supertest with a JSON body and, optionally, a key and extra headers. */
function relay(tr: TestRelay, body: unknown, options: { key?: string; headers?: Record<string, string> } = {}) {
  let req = tr.http.post('/relay').set('Content-Type', JSON_TYPE);
  if (options.key !== undefined) req = req.set('Idempotency-Key', options.key);
  for (const [name, value] of Object.entries(options.headers ?? {})) req = req.set(name, value);
  return req.send(JSON.stringify(body));
}

/** POST /relay over a real socket to the listening relay (for concurrency and timing). */
function relayOverSocket(tr: TestRelay, body: unknown, headers: Record<string, string> = {}): Promise<RawResponse> {
  return rawRequest(tr.url, {
    method: 'POST',
    path: '/relay',
    headers: { 'content-type': JSON_TYPE, ...headers },
    body: JSON.stringify(body),
  });
}

describe('POST /relay: downstream answered 2xx', () => {
  it('passes a first-try 2xx through with X-Relay-Attempts: 1 and the downstream body', async () => {
    t = await startTestRelay();
    const res = await relay(t, { order: 42 });
    expect(res.status).toBe(200);
    expect(res.headers['x-relay-attempts']).toBe('1');
    expect(res.body).toMatchObject({ ok: true, echo: { order: 42 } });
    expect(t.sim.counters().received).toBe(1);
  });

  it('answers the downstream 200 after two 503s with X-Relay-Attempts: 3 and an X-Request-Id', async () => {
    t = await startTestRelay();
    t.sim.script([{ status: 503 }, { status: 503 }]);
    const res = await relay(t, { order: 1 });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['x-relay-attempts']).toBe('3');
    expect(res.headers['x-request-id']).toEqual(expect.any(String));
    expect(res.headers['x-request-id']!.length).toBeGreaterThan(0);
    expect(res.body).toMatchObject({ ok: true, echo: { order: 1 } });
    expect(t.sim.counters().received).toBe(3);
  });

  it("echoes the client's own X-Request-Id and forwards it to the downstream", async () => {
    t = await startTestRelay();
    const res = await relay(t, { order: 2 }, { headers: { 'X-Request-Id': 'client-req-42.a:b@c' } });
    expect(res.status).toBe(200);
    expect(res.headers['x-request-id']).toBe('client-req-42.a:b@c');
    expect(t.sim.counters().lastHeaders?.['x-request-id']).toBe('client-req-42.a:b@c');
    expect(res.body).toMatchObject({ requestId: 'client-req-42.a:b@c' });
  });
});

describe('POST /relay: downstream answered a 4xx', () => {
  it.each([
    [400, { error: 'field "amount" is required' }],
    [404, { error: 'no such account', account: 'acc-9' }],
  ])('passes a %i through unchanged, with X-Relay-Attempts: 1 and one downstream call', async (status, body) => {
    t = await startTestRelay();
    t.sim.script([{ status, body }]);
    const res = await relay(t, { order: 3 });
    expect(res.status).toBe(status);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body).toEqual(body);
    expect(res.headers['x-relay-attempts']).toBe('1');
    expect(t.sim.counters().received).toBe(1);
  });

  it.each([408, 429])('retries a %i and answers the next attempt\'s 200 (a keyed POST)', async (status) => {
    t = await startTestRelay();
    t.sim.script([{ status }]);
    const res = await relay(t, { order: 4 }, { key: uniqueKey(`r${status}`) });
    expect(res.status).toBe(200);
    expect(res.headers['x-relay-attempts']).toBe('2');
    expect(t.sim.counters().received).toBe(2);
  });
});

describe('POST /relay: downstream answered a 5xx', () => {
  it.each([500, 502, 503, 504])('retries a %i and answers the next attempt\'s 200 (a keyed POST)', async (status) => {
    t = await startTestRelay();
    t.sim.script([{ status }]);
    const res = await relay(t, { order: 5 }, { key: uniqueKey(`r${status}`) });
    expect(res.status).toBe(200);
    expect(res.headers['x-relay-attempts']).toBe('2');
    expect(t.sim.counters().received).toBe(2);
  });

  it.each([408, 500, 502, 504])('does not retry a POST without a key after a %i (it may have been processed): 502 with delivery unknown', async (status) => {
    t = await startTestRelay();
    t.sim.script([{ status }]);
    const problem = expectProblem(await relay(t, { order: 6 }), 502);
    expect(problem).toMatchObject({ attempts: 1, delivery: 'unknown' });
    expect(t.sim.counters().received).toBe(1);
  });

  it('does not retry a 501 and answers 502 problem', async () => {
    t = await startTestRelay();
    t.sim.script([{ status: 501 }]);
    const res = await relay(t, { order: 6 });
    const problem = expectProblem(res, 502);
    expect(problem).toMatchObject({ attempts: 1, lastError: expect.stringContaining('501'), dlqId: expect.any(String) });
    expect(t.sim.counters().received).toBe(1);
  });
});

describe('POST /relay: idempotent replay', () => {
  it('answers the same key and body after completion with the stored answer and Idempotent-Replayed: true, without calling the downstream', async () => {
    t = await startTestRelay();
    const key = uniqueKey('replay');
    t.sim.script([{ status: 201, body: { id: 'pay-1', amount: 10 } }]);
    const first = await relay(t, { amount: 10 }, { key });
    expect(first.status).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();

    const second = await relay(t, { amount: 10 }, { key });
    expect(second.status).toBe(201);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.headers['content-type']).toBe(first.headers['content-type']);
    expect(second.text).toBe(first.text);
    expect(t.sim.counters().byKey[key]).toBe(1);
    expect(t.sim.counters().received).toBe(1);
  });

  it('replays a stored non-retryable 4xx without calling the downstream again', async () => {
    t = await startTestRelay();
    const key = uniqueKey('replay-4xx');
    t.sim.script([{ status: 404, body: { error: 'no such account' } }]);
    const first = await relay(t, { account: 'x' }, { key });
    expect(first.status).toBe(404);

    const second = await relay(t, { account: 'x' }, { key });
    expect(second.status).toBe(404);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.body).toEqual({ error: 'no such account' });
    expect(t.sim.counters().byKey[key]).toBe(1);
  });

  it('treats the quoted structured-field form "abc" as the same key as abc', async () => {
    t = await startTestRelay();
    const key = uniqueKey('quoted');
    const first = await relay(t, { n: 1 }, { key });
    expect(first.status).toBe(200);

    const quoted = await relay(t, { n: 1 }, { key: `"${key}"` });
    expect(quoted.status).toBe(200);
    expect(quoted.headers['idempotent-replayed']).toBe('true');
    expect(quoted.text).toBe(first.text);
    expect(t.sim.counters().received).toBe(1);
  });
});

describe('POST /relay: same key while the first is in flight', () => {
  it('answers 409 problem with Retry-After: 1, and replays once the first has finished', async () => {
    t = await startTestRelay();
    const key = uniqueKey('inflight');
    t.sim.script([{ delayMs: 500 }]);
    const first = relayOverSocket(t, { n: 1 }, { 'idempotency-key': key });
    await eventually(() => t!.sim.counters().received === 1);

    const second = await relay(t, { n: 1 }, { key });
    expectProblem(second, 409);
    expect(second.headers['retry-after']).toBe('1');

    expect((await first).status).toBe(200);
    const third = await relay(t, { n: 1 }, { key });
    expect(third.status).toBe(200);
    expect(third.headers['idempotent-replayed']).toBe('true');
    expect(t.sim.counters().byKey[key]).toBe(1);
  });
});

describe('POST /relay: same key, different request', () => {
  it('answers 422 problem when the body differs, without calling the downstream', async () => {
    t = await startTestRelay();
    const key = uniqueKey('mismatch-body');
    expect((await relay(t, { amount: 10 }, { key })).status).toBe(200);
    const res = await relay(t, { amount: 11 }, { key });
    expectProblem(res, 422);
    expect(t.sim.counters().received).toBe(1);
  });

  it("keys are scoped per client credential: another client's same key is its own key, neither claimed nor probed", async () => {
    t = await startTestRelay();
    const key = uniqueKey('scoped');
    expect((await relay(t, { amount: 10 }, { key, headers: { Authorization: 'Bearer alice' } })).status).toBe(200);
    const mallory = await relay(t, { amount: 99 }, { key, headers: { Authorization: 'Bearer mallory' } });
    expect(mallory.status).toBe(200);
    expect(mallory.headers['idempotent-replayed']).toBeUndefined();
    expect(t.sim.counters().received).toBe(2);
    // Alice's key still replays her own answer.
    const alice = await relay(t, { amount: 10 }, { key, headers: { Authorization: 'Bearer alice' } });
    expect(alice.headers['idempotent-replayed']).toBe('true');
  });
});

describe('POST /relay: malformed Idempotency-Key', () => {
  const malformed: Array<[string, () => string]> = [
    ['empty', () => ''],
    ['256 characters', () => 'k'.repeat(256)],
    ['non-ASCII sent as latin1 (kéy)', () => 'k\u00e9y'],
    // The UTF-8 bytes of "é" (C3 A9) as node:http sends them: one latin1 character per byte.
    ['non-ASCII sent as UTF-8 bytes', () => Buffer.from('kéy', 'utf8').toString('latin1')],
    ['only spaces', () => '   '],
  ];

  it.each(malformed)('answers 400 problem for a key that is %s, calls no downstream and stores nothing', async (_label, makeKey) => {
    t = await startTestRelay();
    const res = await rawRequest(t.url, {
      method: 'POST',
      path: '/relay',
      headers: { 'content-type': JSON_TYPE, 'idempotency-key': makeKey() },
      body: '{"n":1}',
    });
    expectProblem(res, 400);
    expect(t.sim.counters().received).toBe(0);
    const dlq = await t.http.get('/dlq');
    expect(dlq.body.items).toEqual([]);
  });

  it('after a malformed key, a valid key with the same body is processed normally (nothing was stored)', async () => {
    t = await startTestRelay();
    const key = uniqueKey('after-bad');
    expectProblem(await relay(t, { n: 1 }, { key: `${key}${'x'.repeat(256)}` }), 400);
    const ok = await relay(t, { n: 1 }, { key });
    expect(ok.status).toBe(200);
    expect(ok.headers['idempotent-replayed']).toBeUndefined();
    expect(ok.headers['x-relay-attempts']).toBe('1');
    expect(t.sim.counters().byKey[key]).toBe(1);
  });

  it('accepts a key of exactly 255 printable characters', async () => {
    t = await startTestRelay();
    const key = uniqueKey('k255').padEnd(255, '~');
    const res = await relay(t, { n: 1 }, { key });
    expect(res.status).toBe(200);
    expect(t.sim.counters().byKey[key]).toBe(1);
  });
});

describe("POST /relay: the relay's own failures are not stored", () => {
  it('processes the same key again after a 502, and the retry can succeed', async () => {
    t = await startTestRelay({ env: { RETRY_MAX_ATTEMPTS: '2' } });
    const key = uniqueKey('after-502');
    t.sim.script([{ status: 503 }, { status: 503 }]);
    expectProblem(await relay(t, { n: 1 }, { key }), 502);
    expect(t.sim.counters().byKey[key]).toBe(2);

    const again = await relay(t, { n: 1 }, { key });
    expect(again.status).toBe(200);
    expect(again.headers['idempotent-replayed']).toBeUndefined();
    expect(again.headers['x-relay-attempts']).toBe('1');
    expect(t.sim.counters().byKey[key]).toBe(3);
  });
});

describe('POST /relay: invalid requests are refused before anything is enqueued', () => {
  it('forwards a body that is not JSON as it is: judging it is the downstream\'s business', async () => {
    capture = await startCaptureDownstream();
    t = await startTestRelay({ env: { DOWNSTREAM_URL: capture.url } });
    const res = await t.http.post('/relay').set('Content-Type', JSON_TYPE).send('{"unterminated": ');
    expect(res.status).toBe(200);
    expect(capture.requests[0]!.body.toString()).toBe('{"unterminated": ');
  });

  it('forwards any content type, and a body without one, byte for byte', async () => {
    capture = await startCaptureDownstream();
    t = await startTestRelay({ env: { DOWNSTREAM_URL: capture.url } });
    expect((await t.http.post('/relay').set('Content-Type', 'text/plain').send('{"n":1}')).status).toBe(200);
    expect(capture.requests[0]!.headers['content-type']).toBe('text/plain');
    const res = await rawRequest(t.url, { method: 'POST', path: '/relay', headers: { 'content-length': '7' }, body: '{"n":1}' });
    expect(res.status).toBe(200);
    expect(capture.requests[1]!.headers['content-type']).toBeUndefined();
    expect(capture.requests[1]!.body.toString()).toBe('{"n":1}');
  });

  it('answers 413 problem to a body larger than MAX_BODY_BYTES and stores nothing under its key', async () => {
    t = await startTestRelay({ env: { MAX_BODY_BYTES: '1024' } });
    const key = uniqueKey('too-large');
    const big = { pad: 'x'.repeat(2000) };
    expectProblem(await relay(t, big, { key }), 413);
    expect(t.sim.counters().received).toBe(0);

    const small = await relay(t, { pad: 'x' }, { key });
    expect(small.status).toBe(200);
    expect(small.headers['idempotent-replayed']).toBeUndefined();
  });
});

describe('POST /relay: queue full', () => {
  it('answers 429 problem with a whole-second Retry-After to requests beyond the queue, and never calls the downstream for them', async () => {
    t = await startTestRelay({ env: { WORKERS: '1', QUEUE_CAPACITY: '1' } });
    t.sim.script([{ delayMs: 300 }, { delayMs: 300 }]);
    const answers = await Promise.all([1, 2, 3, 4].map((n) => relayOverSocket(t!, { n })));

    const statuses = answers.map((a) => a.status).sort();
    expect(statuses).toEqual([200, 200, 429, 429]);
    for (const rejected of answers.filter((a) => a.status === 429)) {
      expectProblem(rejected, 429);
      const retryAfter = String(rejected.headers['retry-after']);
      expect(retryAfter).toMatch(/^\d+$/);
      expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    }
    expect(t.sim.counters().received).toBe(2);
  });
});

describe('POST /relay: all attempts failed', () => {
  it('answers 504 problem with attempts and dlqId when the last attempt timed out, and the DLQ has the entry', async () => {
    t = await startTestRelay({ env: { DOWNSTREAM_TIMEOUT_MS: '200', RETRY_MAX_ATTEMPTS: '2' } });
    const key = uniqueKey('timeout');
    t.sim.script([{ hang: true }, { hang: true }]);
    const res = await relay(t, { n: 1 }, { key });
    const problem = expectProblem(res, 504);
    expect(problem).toMatchObject({ attempts: 2, dlqId: expect.any(String) });

    const entry = await t.http.get(`/dlq/${String(problem.dlqId)}`);
    expect(entry.status).toBe(200);
    expect(entry.body).toMatchObject({ id: problem.dlqId, idempotencyKey: key, body: { n: 1 } });
    expect(entry.body.attempts).toHaveLength(2);
    expect(entry.body.attempts.map((a: { outcome: string }) => a.outcome)).toEqual(['timeout', 'timeout']);
  });

  it('answers 502 problem with attempts, lastError and dlqId when every attempt got a 5xx', async () => {
    t = await startTestRelay({ env: { RETRY_MAX_ATTEMPTS: '2' } });
    t.sim.script([{ status: 503 }, { status: 500 }]);
    const res = await relay(t, { n: 1 });
    const problem = expectProblem(res, 502);
    expect(problem).toMatchObject({ attempts: 2, lastError: expect.stringContaining('500'), dlqId: expect.any(String) });
    expect((await t.http.get(`/dlq/${String(problem.dlqId)}`)).status).toBe(200);
    expect(t.sim.counters().received).toBe(2);
  });

  it('retries a connection error and answers 502 problem whose lastError names the connection', async () => {
    const port = await closedPort();
    t = await startTestRelay({ env: { DOWNSTREAM_URL: `http://127.0.0.1:${port}/`, RETRY_MAX_ATTEMPTS: '3' } });
    const res = await relay(t, { n: 1 });
    const problem = expectProblem(res, 502);
    expect(problem).toMatchObject({ attempts: 3, dlqId: expect.any(String) });
    expect(String(problem.lastError)).toMatch(/connect|ECONNREFUSED/i);
  });
});

describe('POST /relay: downstream Retry-After', () => {
  it('waits at least the Retry-After the downstream asked for before the next attempt', async () => {
    t = await startTestRelay();
    t.sim.script([{ status: 503, retryAfterS: 1 }]);
    const started = Date.now();
    const res = await relay(t, { n: 1 });
    const elapsedMs = Date.now() - started;
    expect(res.status).toBe(200);
    expect(res.headers['x-relay-attempts']).toBe('2');
    expect(elapsedMs).toBeGreaterThanOrEqual(900);
  });

  it('a request waiting out a Retry-After holds no worker: with WORKERS=1 another request is served meanwhile', async () => {
    t = await startTestRelay({ env: { WORKERS: '1' } });
    t.sim.script([{ status: 503, retryAfterS: 1 }]);
    const started = Date.now();
    const first = relay(t, { n: 1 }).then((res) => ({ res, atMs: Date.now() - started }));
    await eventually(() => t!.sim.counters().received === 1);
    const second = await relay(t, { n: 2 });
    const secondAtMs = Date.now() - started;
    expect(second.status).toBe(200);
    // Served during the first one's backoff, not after it.
    expect(secondAtMs).toBeLessThan(800);
    const { res, atMs } = await first;
    expect(res.status).toBe(200);
    expect(res.headers['x-relay-attempts']).toBe('2');
    expect(atMs).toBeGreaterThanOrEqual(900);
  });

  it('gives up at once with 502 after one attempt when Retry-After reaches past the request deadline', async () => {
    t = await startTestRelay({ env: { REQUEST_DEADLINE_MS: '1500' } });
    t.sim.script([{ status: 503, retryAfterS: 5 }]);
    const started = Date.now();
    const res = await relay(t, { n: 1 });
    const elapsedMs = Date.now() - started;
    const problem = expectProblem(res, 502);
    expect(problem.attempts).toBe(1);
    expect(elapsedMs).toBeLessThan(1500);
    expect(t.sim.counters().received).toBe(1);
  });
});

describe('POST /relay: what reaches the downstream', () => {
  it('forwards end-to-end headers, the key, X-Request-Id and the trace, and nothing hop-by-hop', async () => {
    t = await startTestRelay();
    const key = uniqueKey('fwd');
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const res = await rawRequest(t.url, {
      method: 'POST',
      path: '/relay',
      headers: {
        'content-type': 'application/json; charset=utf-8',
        'idempotency-key': key,
        'x-request-id': 'fwd-req-1',
        traceparent,
        authorization: 'Bearer user-secret',
        cookie: 'session=abc',
        connection: 'keep-alive, x-custom',
        'x-custom': 'hop-by-hop because Connection names it',
        'keep-alive': 'timeout=5',
        te: 'trailers',
        'proxy-authorization': 'Basic cHJveHk6cHc=',
      },
      body: '{"n":1}',
    });
    expect(res.status).toBe(200);
    const seen = t.sim.counters().lastHeaders!;
    expect(seen['content-type']).toBe('application/json; charset=utf-8');
    expect(seen['idempotency-key']).toBe(key);
    expect(seen['x-request-id']).toBe('fwd-req-1');
    // The client's trace, with a span of the relay's own.
    expect(seen.traceparent).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-(?!00f067aa0ba902b7)[\da-f]{16}-01$/);
    expect(seen.authorization).toBe('Bearer user-secret');
    expect(seen.cookie).toBe('session=abc');
    for (const name of ['x-custom', 'te']) {
      expect(seen[name], name).toBeUndefined();
    }
    expect(String(seen.connection ?? '')).not.toMatch(/x-custom/i);
    expect(String(seen['keep-alive'] ?? '')).not.toMatch(/timeout=5/);
  });

  it('forwards the body bytes unchanged: spacing, key order, escapes and unicode', async () => {
    capture = await startCaptureDownstream();
    t = await startTestRelay({ env: { DOWNSTREAM_URL: capture.url } });
    const raw = Buffer.from('{ "z" :1,\n\t"a": [ 1 ,2.50, 1e3 ],"\\u00fc":"ünïcødé 🚀 \\"q\\"" ,"dup":1,"dup":2 }\n', 'utf8');
    // rawRequest, not supertest: superagent JSON-encodes a Buffer sent with a JSON content type.
    const res = await rawRequest(t.url, { method: 'POST', path: '/relay', headers: { 'content-type': JSON_TYPE }, body: raw });
    expect(res.status).toBe(200);
    expect(capture.requests).toHaveLength(1);
    expect(capture.requests[0]!.method).toBe('POST');
    expect(capture.requests[0]!.body.equals(raw)).toBe(true);
  });
});
