import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { expectProblem } from './helpers/problem.js';
import { rawRequest, rawSocketExchange, type RawRequestOptions, type RawResponse } from './helpers/raw-http.js';
import { eventually, startTestRelay, uniqueKey, type TestRelay } from './helpers/test-relay.js';

let t: TestRelay | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const JSON_HEADERS = { 'content-type': 'application/json' };

function postRelay(tr: TestRelay, body: string, extra: Partial<RawRequestOptions> = {}): Promise<RawResponse> {
  return rawRequest(tr.url, { method: 'POST', path: '/relay', headers: JSON_HEADERS, body, ...extra });
}

async function queueDepth(tr: TestRelay): Promise<number> {
  const stats = await tr.http.get('/stats');
  return (stats.body as { queue: { depth: number } }).queue.depth;
}

describe('timeouts and deadlines', () => {
  it('a timed-out attempt really aborts the downstream request', async () => {
    t = await startTestRelay({ env: { DOWNSTREAM_TIMEOUT_MS: '200', RETRY_MAX_ATTEMPTS: '1' } });
    t.sim.script([{ hang: true }]);
    const started = Date.now();
    const res = await t.http.post('/relay').set('Content-Type', 'application/json').send('{"n":1}');
    expect(Date.now() - started).toBeLessThan(1000);
    const problem = expectProblem(res, 504);
    expect(problem).toMatchObject({ code: 'UPSTREAM_TIMEOUT', attempts: 1, dlqId: expect.any(String) });
    await eventually(() => t!.sim.counters().aborted === 1);
    expect(t.sim.counters().inFlight).toBe(0);
  });

  it('a client that disconnects while queued frees its slot and causes no downstream call', async () => {
    t = await startTestRelay({ env: { WORKERS: '1', QUEUE_CAPACITY: '1' } });
    t.sim.script([{ delayMs: 800 }]);
    const first = postRelay(t, '{"n":1}');
    await eventually(() => t!.sim.counters().received === 1);

    const controller = new AbortController();
    const second = postRelay(t, '{"n":2}', { signal: controller.signal });
    await eventually(async () => (await queueDepth(t!)) === 1);
    setTimeout(() => controller.abort(), 100);
    await expect(second).rejects.toThrow();

    // The only queue place is free again while the first still holds the worker: a third waits instead of getting 429.
    await eventually(async () => (await queueDepth(t!)) === 0);
    const third = postRelay(t, '{"n":3}');

    expect((await first).status).toBe(200);
    const thirdRes = await third;
    expect(thirdRes.status).toBe(200);
    expect(thirdRes.json).toMatchObject({ echo: { n: 3 } });
    expect(t.sim.counters().received).toBe(2);
    expect(await queueDepth(t)).toBe(0);
  });

  it('a request whose deadline passes in the queue is answered 504 without calling the downstream', async () => {
    t = await startTestRelay({ env: { WORKERS: '1', REQUEST_DEADLINE_MS: '400' } });
    t.sim.script([{ delayMs: 1000 }]);
    // The deadline counts from arrival and the worker is freed at the holder's own deadline, so a
    // request can only expire in the queue if it arrived before the holder: a slow uploader whose
    // headers come first and whose body (hence its place in the queue) comes 200 ms later.
    const started = Date.now();
    const queued = postRelay(t, '{"n":"queued"}', { headers: { ...JSON_HEADERS, 'content-length': '14' }, bodyDelayMs: 200 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const holder = postRelay(t, '{"n":"holder"}');
    await eventually(() => t!.sim.counters().received === 1);

    const res = await queued;
    expect(Date.now() - started).toBeLessThan(900);
    const problem = expectProblem(res, 504);
    expect(problem.code).toBe('DEADLINE_EXCEEDED');
    expect(t.sim.counters().received).toBe(1);

    expect((await holder).status).toBe(504);
    expect(t.sim.counters().received).toBe(1);
  });

  it('a request left less time than the downstream takes to answer gets 504 without a call: a backlog cannot keep the downstream busy with calls cut off', async () => {
    t = await startTestRelay({
      env: { WORKERS: '1', AIMD_MODE: 'off', REQUEST_DEADLINE_MS: '1000', RETRY_MAX_ATTEMPTS: '1' },
      sim: { latencyMs: 400, jitterMs: 0 },
    });
    // The relay learns that the downstream answers in about 400 ms.
    expect((await postRelay(t, '{"n":0}')).status).toBe(200);
    // One worker, 400 ms a call, 1 s to live: two fit (the second with 200 ms to spare); the others
    // come to the worker with about 200 ms left, half of what a call takes.
    const answers = await Promise.all([1, 2, 3, 4].map((n) => postRelay(t!, `{"n":${n}}`)));
    const ok = answers.filter((a) => a.status === 200).length;
    const refused = answers.filter((a) => a.status === 504);
    expect(ok).toBeGreaterThanOrEqual(1);
    expect(refused.length).toBeGreaterThanOrEqual(2);
    expect(ok + refused.length).toBe(4);
    for (const res of refused) expect(expectProblem(res, 504).code).toBe('DEADLINE_EXCEEDED');
    // Every call the downstream received was answered: none was started only to be cut off by the deadline.
    expect(t.sim.counters().received).toBe(1 + ok);
    expect(t.sim.counters().aborted).toBe(0);
  });
});

describe('robustness', () => {
  it('no input crashes the relay or produces a 500', async () => {
    // Short attempts keep the loop bounded if the downstream never answers some input.
    t = await startTestRelay({ env: { DOWNSTREAM_TIMEOUT_MS: '1000', RETRY_MAX_ATTEMPTS: '2' } });
    const relayUrl = t.url;
    // The embedded simulator runs in the relay's process (DOWNSTREAM_URL unset), as here: its crash is the relay's crash.
    const uncaught: string[] = [];
    const onUncaught = (error: Error) => uncaught.push(`${error.name}: ${error.message}`);
    process.on('uncaughtException', onUncaught);
    const deepArray = '['.repeat(10_000) + ']'.repeat(10_000);
    const deepObject = '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000);
    type Case = [label: string, options: RawRequestOptions];
    const post = (label: string, body: RawRequestOptions['body'], headers: RawRequestOptions['headers'] = JSON_HEADERS): Case => [
      label,
      { method: 'POST', path: '/relay', headers, ...(body === undefined ? {} : { body }) },
    ];
    const cases: Case[] = [
      post('random bytes as body', randomBytes(512)),
      post('huge header', '{}', { ...JSON_HEADERS, 'x-big': 'a'.repeat(20_000) }),
      post('invalid JSON', '{"a": '),
      post('JSON null', 'null'),
      post('deeply nested array (10 000)', deepArray),
      post('deeply nested object (10 000)', deepObject),
      post('charset=latin1', '{"a":"b"}', { 'content-type': 'application/json; charset=latin1' }),
      post('chunked JSON body', ['{"a":', '[1,2', ']}']),
      post('chunked invalid body', ['{"a":', '[1,2']),
      post('gzip content-encoding with garbage', 'not gzip', { ...JSON_HEADERS, 'content-encoding': 'gzip' }),
      post('unknown content-encoding', '{}', { ...JSON_HEADERS, 'content-encoding': 'x-unknown' }),
      post('empty body with JSON content type', '', { ...JSON_HEADERS, 'content-length': '0' }),
      post('no body, no content type', undefined, {}),
      post('multipart content type', '--x--', { 'content-type': 'multipart/form-data; boundary=x' }),
      post('content type with bad parameters', '{}', { 'content-type': 'application/json;;;=;charset' }),
      post('two Idempotency-Key headers', '{}', { ...JSON_HEADERS, 'idempotency-key': [uniqueKey('a'), uniqueKey('b')] }),
      post('unterminated quoted key', '{}', { ...JSON_HEADERS, 'idempotency-key': '"abc' }),
      post('quoted key with a bad escape', '{}', { ...JSON_HEADERS, 'idempotency-key': '"a\\qb"' }),
      post('key of only quotes', '{}', { ...JSON_HEADERS, 'idempotency-key': '""' }),
      post('absurd X-Request-Id', '{}', { ...JSON_HEADERS, 'x-request-id': '../../' + 'x'.repeat(500) }),
      post('garbage traceparent', '{}', { ...JSON_HEADERS, traceparent: 'zz-not-a-trace' }),
      ['long query string', { method: 'POST', path: `/relay?${'q'.repeat(5000)}`, headers: JSON_HEADERS, body: '{}' }],
    ];
    const wrongMethods: Array<[string, string]> = [
      ['GET', '/relay'], ['PUT', '/relay'], ['DELETE', '/relay'],
      ['POST', '/health'], ['DELETE', '/health'], ['POST', '/ready'], ['PUT', '/stats'], ['POST', '/metrics'],
      ['POST', '/dlq'], ['POST', '/dlq/abc'], ['PUT', '/dlq/abc'], ['GET', '/dlq/abc/replay'],
      ['HEAD', '/relay'], ['OPTIONS', '/relay'], ['HEAD', '/health'],
    ];
    for (const [method, path] of wrongMethods) cases.push([`${method} ${path}`, { method, path }]);
    const oddPaths = [
      '/../../etc/passwd', '/relay/../dlq', '/%2e%2e/%2e%2e/etc/passwd', '/dlq/..%2f..%2fetc%2fpasswd', '/dlq/%ZZ',
      `/dlq/${'x'.repeat(300)}`, `/dlq/${'x'.repeat(300)}/replay`, '//relay', '/relay%00', '/nope',
      '/dlq?limit=-1', '/dlq?limit=1&limit=2', '/dlq?cursor=%00', `/dlq?cursor=${'c'.repeat(600)}`,
    ];
    for (const path of oddPaths) cases.push([`GET ${path}`, { method: 'GET', path }]);
    cases.push([`DELETE /dlq/${'x'.repeat(300)}`, { method: 'DELETE', path: `/dlq/${'x'.repeat(300)}` }]);
    // With the two raw-socket payloads and the four DLQ requests below: at most 60 requests.
    expect(cases.length).toBeLessThanOrEqual(54);

    const violations: string[] = [];
    for (const [label, options] of cases) {
      let res: RawResponse;
      try {
        res = await rawRequest(relayUrl, options);
      } catch (error) {
        // Node's HTTP parser may close the socket on an oversized request before the answer is read.
        if (label === 'huge header') continue;
        violations.push(`${label}: no answer (${(error as Error).message})`);
        continue;
      }
      if (res.status >= 500 && res.status !== 502 && res.status !== 504) violations.push(`${label}: ${res.status} ${res.text.slice(0, 200)}`);
      // Answers from the relay's app carry X-Request-Id; Node's own parser rejections (431, 400) do not.
      const fromRelay = res.headers['x-request-id'] !== undefined;
      if (fromRelay && res.status >= 400 && !String(res.headers['content-type']).startsWith('application/problem+json')) {
        violations.push(`${label}: ${res.status} with content-type ${String(res.headers['content-type'])}`);
      }
    }
    for (const payload of ['GARBAGE\r\n\r\n', 'POST /relay HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n']) {
      const answer = await rawSocketExchange(relayUrl, payload);
      if (/^HTTP\/1\.1 5\d\d/.test(answer)) violations.push(`raw ${JSON.stringify(payload.slice(0, 20))}: ${answer.split('\r\n')[0]}`);
    }

    // A deep body that ends up in the DLQ must still be listable, readable and replayable.
    t.sim.script([{ status: 503 }, { status: 503 }, { status: 503 }, { status: 503 }]);
    const quarantined = await postRelay(t, deepArray);
    const dlqId = (quarantined.json as { dlqId?: string } | undefined)?.dlqId;
    if (quarantined.status !== 502 || !dlqId) violations.push(`deep body to the DLQ: ${quarantined.status}`);
    else {
      for (const [method, path] of [['GET', '/dlq'], ['GET', `/dlq/${dlqId}`], ['POST', `/dlq/${dlqId}/replay`]] as const) {
        const res = await rawRequest(relayUrl, { method, path });
        if (res.status >= 500 && res.status !== 502 && res.status !== 504) violations.push(`${method} ${path} with a deep body: ${res.status} ${res.text.slice(0, 120)}`);
      }
    }
    process.off('uncaughtException', onUncaught);
    violations.push(...uncaught.map((message) => `uncaught exception: ${message}`));

    expect(violations).toEqual([]);
    const health = await t.http.get('/health');
    expect(health.status).toBe(200);
    expect(JSON.parse(health.text)).toEqual({ status: 'pass' });
    expect((await postRelay(t, '{"still":"working"}')).status).toBe(200);
  });

  it('Authorization headers and the admin token never reach a log line', async () => {
    const adminToken = 's3cr3t-token-xyz';
    const userSecret = 'user-secret-abc';
    // With RELAY_SECRET_KEY the failed request's Authorization is kept (encrypted), so its replay can send it.
    const secretKey = Buffer.alloc(32, 7).toString('base64');
    t = await startTestRelay({ env: { ADMIN_TOKEN: adminToken, LOG_LEVEL: 'trace', RETRY_MAX_ATTEMPTS: '2', RELAY_SECRET_KEY: secretKey } });
    const userAuth = `Bearer ${userSecret}`;
    const adminAuth = `Bearer ${adminToken}`;

    const key = uniqueKey('logs');
    const ok = await postRelay(t, '{"n":1}', { headers: { ...JSON_HEADERS, authorization: userAuth, 'idempotency-key': key } });
    expect(ok.status).toBe(200);
    const replayed = await postRelay(t, '{"n":1}', { headers: { ...JSON_HEADERS, authorization: userAuth, 'idempotency-key': key } });
    expect(replayed.headers['idempotent-replayed']).toBe('true');
    const mismatch = await postRelay(t, '{"n":2}', { headers: { ...JSON_HEADERS, authorization: userAuth, 'idempotency-key': key } });
    expect(mismatch.status).toBe(422);
    t.sim.script([{ status: 503 }, { status: 503 }]);
    const failed = await postRelay(t, '{"n":3}', { headers: { ...JSON_HEADERS, authorization: userAuth } });
    expect(failed.status).toBe(502);
    const dlqId = String((failed.json as { dlqId: string }).dlqId);

    expect((await rawRequest(t.url, { path: '/dlq', headers: { authorization: adminAuth } })).status).toBe(200);
    expect((await rawRequest(t.url, { path: `/dlq/${dlqId}`, headers: { authorization: adminAuth } })).status).toBe(200);
    expect((await rawRequest(t.url, { method: 'POST', path: `/dlq/${dlqId}/replay`, headers: { authorization: adminAuth } })).status).toBe(200);
    expect((await rawRequest(t.url, { path: '/dlq', headers: { authorization: userAuth } })).status).toBe(401);

    await eventually(() => t!.logs.some((line) => JSON.stringify(line).includes('/dlq')));
    expect(t.logs.length).toBeGreaterThan(5);
    const everything = JSON.stringify(t.logs);
    expect(everything).not.toContain(userSecret);
    expect(everything).not.toContain(adminToken);
    expect(everything).not.toContain(secretKey);
  });
});
