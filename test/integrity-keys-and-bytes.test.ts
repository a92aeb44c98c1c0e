import { afterEach, describe, expect, it } from 'vitest';
import { startCaptureDownstream, type CaptureDownstream } from './helpers/capture-downstream.js';
import { BACKENDS, relayPost, useRelays } from './helpers/integrity.js';
import { expectProblem } from './helpers/problem.js';
import { rawRequest } from './helpers/raw-http.js';
import { eventually, uniqueKey } from './helpers/test-relay.js';

// Issue 15, items 8 (keys scoped per credential), 9 (batch forwards exact bytes)
// and 11 (duplicate key headers, quoted keys, secret query parameters in logs).

const start = useRelays();
const captures: CaptureDownstream[] = [];
afterEach(async () => {
  for (const capture of captures.splice(0)) await capture.close();
});

describe.each(BACKENDS)('idempotency keys are scoped per client credential (%s)', (backend) => {
  it("the same key with another Authorization is processed as a new key: no 422, no replay of the other client's answer", async () => {
    const t = await start(backend);
    const key = uniqueKey('scoped');

    const alice = await relayPost(t, { pay: 100 }, { key, headers: { Authorization: 'Bearer alice-token' } });
    expect(alice.status).toBe(200);

    // Another body under another credential: not "reused with a different request".
    const bob = await relayPost(t, { pay: 999 }, { key, headers: { Authorization: 'Bearer bob-token' } });
    expect(bob.status).toBe(200);
    expect(bob.headers['idempotent-replayed']).toBeUndefined();

    // The same body under another credential: not a replay of alice's answer.
    const carol = await relayPost(t, { pay: 100 }, { key, headers: { Authorization: 'Bearer carol-token' } });
    expect(carol.status).toBe(200);
    expect(carol.headers['idempotent-replayed']).toBeUndefined();
    expect(t.sim.counters().byKey[key]).toBe(3);

    // Within one credential the key still means what it meant.
    const aliceAgain = await relayPost(t, { pay: 100 }, { key, headers: { Authorization: 'Bearer alice-token' } });
    expect(aliceAgain.status).toBe(200);
    expect(aliceAgain.headers['idempotent-replayed']).toBe('true');
    expect(aliceAgain.text).toBe(alice.text);
    expect(expectProblem(await relayPost(t, { pay: 1 }, { key, headers: { Authorization: 'Bearer alice-token' } }), 422).code).toBe(
      'IDEMPOTENCY_KEY_REUSED',
    );
    expect(t.sim.counters().byKey[key]).toBe(3);
  });

  it('a key taken by one X-Api-Key is new to another X-Api-Key and to an async request of a third client', async () => {
    const t = await start(backend, { env: { RELAY_SECRET_KEY: Buffer.alloc(32, 7).toString('base64'), JOB_POLL_MS: '20' } });
    const key = uniqueKey('scoped-api-key');

    expect((await relayPost(t, { n: 1 }, { key, headers: { 'X-Api-Key': 'key-of-one' } })).status).toBe(200);
    const two = await relayPost(t, { n: 2 }, { key, headers: { 'X-Api-Key': 'key-of-two' } });
    expect(two.status).toBe(200);
    expect(two.headers['idempotent-replayed']).toBeUndefined();
    const three = await relayPost(t, { n: 3 }, { key, async: true, headers: { Authorization: 'Bearer three' } });
    expect(three.status).toBe(202);
    await eventually(() => t.sim.counters().byKey[key] === 3, 5_000);
  });
});

describe.each(BACKENDS)('/relay/batch forwards each item byte for byte (%s)', (backend) => {
  interface Item {
    key: string;
    /** The item's members after idempotencyKey, as written in the batch text. */
    fragment: string;
    bytes: Buffer;
    contentType?: string;
  }

  /** Sends the items in one batch to a capturing downstream; checks each arrived once with exactly its bytes. */
  async function expectForwardedExactly(items: Item[]): Promise<void> {
    const capture = await startCaptureDownstream();
    captures.push(capture);
    const t = await start(backend, { env: { DOWNSTREAM_URL: capture.url, JOB_POLL_MS: '20' } });
    const batch = `{"items":[${items.map((item) => `{"idempotencyKey":"${item.key}",${item.fragment}}`).join(',')}]}`;

    const res = await t.http.post('/relay/batch').set('content-type', 'application/json').send(batch);
    expect(res.status, JSON.stringify(res.body)).toBe(202);

    await eventually(() => capture.requests.length >= items.length, 8_000);
    for (const item of items) {
      const received = capture.requests.filter((r) => r.headers['idempotency-key'] === item.key);
      expect(received, item.key).toHaveLength(1);
      expect(received[0]!.body.toString('utf8'), item.key).toBe(item.bytes.toString('utf8'));
      expect(received[0]!.body.equals(item.bytes), item.key).toBe(true);
      if (item.contentType) expect(received[0]!.headers['content-type']).toBe(item.contentType);
    }
  }

  it('JSON bodies 9007199254740993, 1e400, {"a":1,"a":2} and spaced JSON arrive at the downstream byte-identical', async () => {
    await expectForwardedExactly([
      { key: uniqueKey('big-int'), fragment: '"body":9007199254740993', bytes: Buffer.from('9007199254740993') },
      { key: uniqueKey('huge-float'), fragment: '"body":1e400', bytes: Buffer.from('1e400') },
      { key: uniqueKey('dup-member'), fragment: '"body":{"a":1,"a":2}', bytes: Buffer.from('{"a":1,"a":2}') },
      { key: uniqueKey('spaced'), fragment: '"body": { "x" : [1,  2.50] }', bytes: Buffer.from('{ "x" : [1,  2.50] }') },
    ]);
  });

  it('bodyText and bodyBase64 items arrive byte-identical with their contentType', async () => {
    const binary = Buffer.from([0x00, 0x01, 0x02, 0xff, 0x80, 0x81, 0x0a]);
    await expectForwardedExactly([
      {
        key: uniqueKey('text'),
        fragment: `"bodyText":${JSON.stringify('plain ü text\n')},"contentType":"text/plain; charset=utf-8"`,
        bytes: Buffer.from('plain ü text\n'),
        contentType: 'text/plain; charset=utf-8',
      },
      {
        key: uniqueKey('binary'),
        fragment: `"bodyBase64":"${binary.toString('base64')}","contentType":"application/octet-stream"`,
        bytes: binary,
        contentType: 'application/octet-stream',
      },
    ]);
  });
});

describe.each(BACKENDS)('the Idempotency-Key header at the edge (%s)', (backend) => {
  it('two Idempotency-Key header lines are refused 400 and nothing is sent', async () => {
    const t = await start(backend);
    const res = await rawRequest(t.url, {
      method: 'POST',
      path: '/relay',
      headers: { 'content-type': 'application/json', 'idempotency-key': [uniqueKey('x1'), uniqueKey('x2')] },
      body: '{"n":1}',
    });
    expectProblem(res, 400);
    expect(t.sim.counters().received).toBe(0);
  });

  it('a quoted key "abc" reaches the downstream as abc, and abc unquoted is the same key', async () => {
    const t = await start(backend);
    const key = uniqueKey('quoted');

    const quoted = await relayPost(t, { n: 1 }, { key: `"${key}"` });
    expect(quoted.status).toBe(200);
    expect(t.sim.counters().lastHeaders?.['idempotency-key']).toBe(key);

    const bare = await relayPost(t, { n: 1 }, { key });
    expect(bare.status).toBe(200);
    expect(bare.headers['idempotent-replayed']).toBe('true');
    expect(t.sim.counters().received).toBe(1);
  });
});

describe('secret query parameters in the log', () => {
  it('?api_key=SECRET (and token, key, signature, password) in a relay URL never appears in a log line', async () => {
    const t = await start('sqlite', { env: { RETRY_MAX_ATTEMPTS: '1', LOG_LEVEL: 'debug' } });
    const secrets = ['SECRET-api-7f3a', 'SECRET-token-91bc', 'SECRET-key-22de', 'SECRET-sig-4410', 'SECRET-pw-8e8e'];
    const query = `?api_key=${secrets[0]}&token=${secrets[1]}&key=${secrets[2]}&signature=${secrets[3]}&password=${secrets[4]}&page=2`;

    expect((await relayPost(t, { n: 1 }, { tail: query })).status).toBe(200);
    t.sim.script([{ status: 503 }]);
    expectProblem(await relayPost(t, { n: 2 }, { tail: query, key: uniqueKey('logged') }), 502);
    expectProblem(await relayPost(t, { n: 3 }, { tail: `/no-such-route${query}` }), 404);

    await eventually(() => t.logs.filter((line) => JSON.stringify(line).includes('/relay')).length >= 3);
    const text = t.logs.map((line) => JSON.stringify(line)).join('\n');
    for (const secret of secrets) expect(text).not.toContain(secret);
  });
});
