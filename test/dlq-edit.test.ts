import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BACKENDS, useRelays, type Backend } from './helpers/integrity.js';
import { expectProblem } from './helpers/problem.js';
import { deleteKeysWithPrefix, probeClient } from './helpers/redis.js';
import { uniqueKey, type TestRelay } from './helpers/test-relay.js';

// Issue 13, item 5: POST /dlq/:id/replay with { body | bodyText | bodyBase64, contentType, headers, idempotencyKey }.

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** A downstream that records every request byte for byte and answers 503 (`failing`) or 200 `{"ok":true}`. */
async function switchableDownstream(): Promise<{ url: string; seen: Seen[]; failing: boolean; hanging: boolean; close(): Promise<void> }> {
  const state = { failing: true, hanging: false };
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) });
      if (state.hanging) return;
      res.writeHead(state.failing ? 503 : 200, { 'content-type': 'application/json' });
      res.end(state.failing ? '{"error":"down"}' : '{"ok":true}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    seen,
    get failing() {
      return state.failing;
    },
    set failing(value: boolean) {
      state.failing = value;
    },
    get hanging() {
      return state.hanging;
    },
    set hanging(value: boolean) {
      state.hanging = value;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const dir = mkdtempSync(join(tmpdir(), 'relay-dlq-edit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const start = useRelays();
const downstreams: Array<{ close(): Promise<void> }> = [];
const prefixes: string[] = [];
afterEach(async () => {
  for (const down of downstreams.splice(0)) await down.close();
  for (const prefix of prefixes.splice(0)) await deleteKeysWithPrefix(prefix);
});

const SECRET_KEY = randomBytes(32).toString('base64');
const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');

/**
 * A relay on `backend` in front of a switchable downstream: one attempt per
 * request, no breaker, secrets kept (RELAY_SECRET_KEY), `X-Partner-Signature` a
 * route secret. Its store's raw data is readable through `rawStore` (a file
 * SQLite database, or every Redis key under its own prefix).
 */
async function setUp(backend: Backend, options: { secretKey?: boolean } = {}) {
  const down = await switchableDownstream();
  downstreams.push(down);
  const sqlitePath = join(dir, `${randomUUID()}.db`);
  const prefix = `relay-test:dlq-edit:${randomUUID()}:`;
  prefixes.push(prefix);
  const t = await start(backend, {
    env: { ...(options.secretKey === false ? {} : { RELAY_SECRET_KEY: SECRET_KEY }), BREAKER_MODE: 'off', ...(backend === 'redis' ? { REDIS_PREFIX: prefix } : { SQLITE_PATH: sqlitePath }) },
    routes: {
      routes: [
        { name: 'default', target: down.url, retry: { maxAttempts: 1 }, timeoutMs: 300, headers: { secret: ['X-Partner-Signature'] } },
        { name: 'gen', target: down.url, retry: { maxAttempts: 1 }, idempotency: { generate: true } },
      ],
    },
  });

  /** Every byte the store holds, as text (SQLite: a dump of the dlq table; Redis: every field under the prefix). */
  async function rawStore(): Promise<string> {
    if (backend === 'sqlite') {
      const db = new Database(sqlitePath, { readonly: true });
      try {
        return JSON.stringify(db.prepare('SELECT * FROM dlq').all(), (_key, value: unknown) => (Buffer.isBuffer(value) ? value.toString('latin1') : value));
      } finally {
        db.close();
      }
    }
    const redis = probeClient();
    await redis.connect();
    try {
      const parts: string[] = [];
      for (const key of await redis.keys(`${prefix}*`)) {
        const type = await redis.type(key);
        if (type === 'hash') parts.push(JSON.stringify(await redis.hgetall(key)));
        else if (type === 'string') parts.push((await redis.get(key)) ?? '');
      }
      return parts.join('\n');
    } finally {
      redis.disconnect();
    }
  }

  return { t, down, rawStore };
}

/** Sends a request while the downstream fails; returns its DLQ entry's id. */
async function deadLetter(t: TestRelay, body: string, options: { key?: string; contentType?: string; route?: string; headers?: Record<string, string>; status?: number } = {}): Promise<string> {
  const req = t.http.post(options.route ? `/relay/${options.route}` : '/relay').set('content-type', options.contentType ?? 'application/json');
  if (options.key !== undefined) req.set('Idempotency-Key', options.key);
  for (const [name, value] of Object.entries(options.headers ?? {})) req.set(name, value);
  const problem = expectProblem(await req.send(body), options.status ?? 502);
  expect(problem.dlqId).toEqual(expect.any(String));
  return problem.dlqId as string;
}

function replay(t: TestRelay, id: string, body?: unknown) {
  const req = t.http.post(`/dlq/${id}/replay`);
  if (body === undefined) return req;
  return req.set('content-type', 'application/json').send(typeof body === 'string' ? body : JSON.stringify(body));
}

async function entry(t: TestRelay, id: string): Promise<Record<string, any>> {
  const res = await t.http.get(`/dlq/${id}`);
  expect(res.status).toBe(200);
  return res.body as Record<string, any>;
}

describe.each(BACKENDS)('edited DLQ replays (%s)', (backend) => {
  it('a changed body under a new key goes out with that body and key; the entry keeps the original and records the edit until it is delivered', async () => {
    const { t, down } = await setUp(backend);
    const oldKey = uniqueKey('edit-old');
    const newKey = uniqueKey('edit-new');
    const id = await deadLetter(t, '{"amount":100}', { key: oldKey });
    // Exact text: 2.50 and the big integer must arrive as written, not re-serialised.
    const edited = '{"amount":2.50,"ref":9007199254740993}';
    const edit = `{"body":${edited},"idempotencyKey":${JSON.stringify(newKey)}}`;

    // Still failing: the entry stays, with the original request and the edit in its history.
    const failed = await replay(t, id, edit);
    expect(expectProblem(failed, 502).dlqId).toBe(id);
    expect(down.seen).toHaveLength(2);
    expect(down.seen[1]!.body.toString()).toBe(edited);
    expect(down.seen[1]!.headers['idempotency-key']).toBe(newKey);
    const kept = await entry(t, id);
    expect(kept).toMatchObject({ idempotencyKey: oldKey, body: { amount: 100 }, bodyBytes: 14, replays: 1 });
    expect(kept.attempts).toHaveLength(2);
    expect(kept.edits).toEqual([
      {
        at: expect.any(String),
        requestId: expect.any(String),
        changed: ['body', 'idempotencyKey'],
        body: { bytes: Buffer.byteLength(edited), sha256: sha256(edited) },
        idempotencyKey: newKey,
        firstAttempt: 1,
      },
    ]);

    // Recovered: delivered with the new body and key, and the entry leaves the DLQ.
    down.failing = false;
    const delivered = await replay(t, id, edit);
    expect(delivered.status).toBe(200);
    expect(delivered.body).toMatchObject({ outcome: 'delivered', status: 200, body: { ok: true }, edit: { changed: ['body', 'idempotencyKey'], firstAttempt: 2 } });
    expect(down.seen).toHaveLength(3);
    expect(down.seen[2]!.body.toString()).toBe(edited);
    expect(down.seen[2]!.headers['idempotency-key']).toBe(newKey);
    expect((await t.http.get(`/dlq/${id}`)).status).toBe(404);

    // The new key now answers for the edited request, from the store; the downstream is not called again.
    const resend = await t.http.post('/relay').set('content-type', 'application/json').set('Idempotency-Key', newKey).send(edited);
    expect(resend.status).toBe(200);
    expect(resend.headers['idempotent-replayed']).toBe('true');
    expect(down.seen).toHaveLength(3);
  });

  it('a changed body or content type under the old key is refused 422 EDIT_NEEDS_NEW_KEY: nothing is sent and the entry is unchanged', async () => {
    const { t, down } = await setUp(backend);
    const key = uniqueKey('edit-same');
    const id = await deadLetter(t, '{"amount":100}', { key });
    down.failing = false;
    const before = await entry(t, id);
    for (const edit of [
      { body: { amount: 2 } },
      { bodyText: 'other' },
      { body: { amount: 2 }, idempotencyKey: key },
      { contentType: 'application/vnd.other+json' },
      { body: { amount: 2 }, headers: { 'x-note': 'fix' } },
    ]) {
      expect(expectProblem(await replay(t, id, edit), 422).code).toBe('EDIT_NEEDS_NEW_KEY');
    }
    expect(down.seen).toHaveLength(1);
    expect(await entry(t, id)).toEqual(before);
    // The same bytes are no change: a plain replay under the old key.
    const same = await replay(t, id, { body: { amount: 100 } });
    expect(same.status).toBe(200);
    expect(same.body.edit).toBeUndefined();
    expect(down.seen[1]!.headers['idempotency-key']).toBe(key);
  });

  it('a header-only edit keeps the old key and body and is delivered; the key then answers from the store', async () => {
    const { t, down } = await setUp(backend);
    const key = uniqueKey('edit-headers');
    const id = await deadLetter(t, '{"amount":100}', { key, headers: { 'x-tenant': 'a' } });
    down.failing = false;
    const res = await replay(t, id, { headers: { 'X-Tenant': 'b', 'x-note': 'retried by ops' } });
    expect(res.status).toBe(200);
    expect(res.body.edit).toMatchObject({ changed: ['headers'], headers: { 'x-tenant': 'b', 'x-note': 'retried by ops' } });
    const sent = down.seen[1]!;
    expect(sent.headers).toMatchObject({ 'idempotency-key': key, 'x-tenant': 'b', 'x-note': 'retried by ops', 'content-type': 'application/json' });
    expect(sent.body.toString()).toBe('{"amount":100}');

    const resend = await t.http.post('/relay').set('content-type', 'application/json').set('Idempotency-Key', key).send('{"amount":100}');
    expect(resend.headers['idempotent-replayed']).toBe('true');
    expect(down.seen).toHaveLength(2);
  });

  it('secret headers in an edit are sent, but neither GET /dlq/:id nor the store ever holds their values', async () => {
    const { t, down, rawStore } = await setUp(backend);
    const id = await deadLetter(t, '{"amount":100}', { key: uniqueKey('edit-secret') });
    const secrets = { authorization: 'Bearer sekrit-auth-4711', 'x-api-key': 'sekrit-apikey-4712', 'x-partner-signature': 'sekrit-sig-4713' };
    const edit = { headers: { ...secrets, 'x-visible': 'shown' } };

    expectProblem(await replay(t, id, edit), 502);
    expect(down.seen[1]!.headers).toMatchObject({ ...secrets, 'x-visible': 'shown' });
    const res = await t.http.get(`/dlq/${id}`);
    expect(res.body.edits[0].headers).toEqual({
      authorization: '[redacted]',
      'x-api-key': '[redacted]',
      'x-partner-signature': '[redacted]',
      'x-visible': 'shown',
    });
    const raw = await rawStore();
    expect(raw).toContain('x-visible');
    for (const text of [res.text, raw]) expect(text).not.toMatch(/sekrit/);

    down.failing = false;
    const delivered = await replay(t, id, edit);
    expect(delivered.status).toBe(200);
    expect(delivered.text).not.toMatch(/sekrit/);
    expect(down.seen[2]!.headers).toMatchObject(secrets);
  });

  it('an edit under a key already bound to another request is refused 422 IDEMPOTENCY_KEY_REUSED, like any request, and nothing is sent', async () => {
    const { t, down } = await setUp(backend);
    const id = await deadLetter(t, '{"amount":100}', { key: uniqueKey('edit-entry') });
    down.failing = false;
    const taken = uniqueKey('edit-taken');
    expect((await t.http.post('/relay').set('content-type', 'application/json').set('Idempotency-Key', taken).send('{"other":1}')).status).toBe(200);
    const before = await entry(t, id);

    expect(expectProblem(await replay(t, id, { body: { amount: 2 }, idempotencyKey: taken }), 422).code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(down.seen).toHaveLength(2);
    expect(await entry(t, id)).toEqual(before);
  });

  it('bad replay bodies are refused 400 naming the member, and nothing changes', async () => {
    const { t, down } = await setUp(backend);
    const id = await deadLetter(t, '{"amount":100}', { key: uniqueKey('edit-bad') });
    down.failing = false;
    const before = await entry(t, id);
    const bad: Array<[unknown, RegExp]> = [
      ['{"body":', /not valid JSON/],
      [[1, 2], /Invalid replay body/],
      [{ method: 'GET' }, /method/],
      [{ body: 'a', bodyText: 'b' }, /at most one of body, bodyText and bodyBase64/],
      [{ bodyBase64: 'not base64!' }, /bodyBase64/],
      [{ contentType: 'json' }, /contentType/],
      [{ headers: ['x'] }, /headers/],
      [{ headers: { 'bad name': 'x' } }, /headers/],
      [{ headers: { 'x-note': 'a\r\nx-injected: 1' } }, /headers/],
      [{ headers: { connection: 'close' } }, /hop-by-hop/],
      [{ headers: { 'Transfer-Encoding': 'chunked' } }, /hop-by-hop/],
      [{ headers: { 'content-length': '3' } }, /content-length/],
      [{ headers: { 'content-type': 'text/plain' } }, /contentType/],
      [{ headers: { 'idempotency-key': 'k' } }, /idempotencyKey/],
      [{ headers: { 'x-relay-priority': 'high' } }, /relay control/],
      [{ headers: { 'x-a': '1', 'X-A': '2' } }, /twice/],
      [{ idempotencyKey: '' }, /Idempotency-Key/],
      [{ idempotencyKey: 'é' }, /Idempotency-Key/],
      [{ idempotencyKey: 42 }, /idempotencyKey/],
      [{ force: 'yes' }, /force/],
    ];
    for (const [body, detail] of bad) {
      const problem = expectProblem(await replay(t, id, body), 400);
      expect(problem.detail, JSON.stringify(body)).toMatch(detail);
    }
    expect((await t.http.post(`/dlq/${id}/replay`).set('content-type', 'text/plain').send('{}')).status).toBe(415);
    expect(down.seen).toHaveLength(1);
    expect(await entry(t, id)).toEqual(before);
  });

  it('a string body under a text type is sent as the text; bodyBase64 as its bytes; idempotencyKey null sends none, or a fresh one where the route makes them up', async () => {
    const { t, down } = await setUp(backend);
    const textId = await deadLetter(t, 'hello', { key: uniqueKey('edit-text'), contentType: 'text/plain' });
    expect((await entry(t, textId)).body).toBe('hello');
    const genId = await deadLetter(t, '', { route: 'gen', contentType: 'application/octet-stream' });
    const genEntry = await entry(t, genId);
    expect(genEntry.idempotencyKey).toMatch(/^relay-/);
    expect(genEntry.body).toBeNull();
    down.failing = false;

    const text = await replay(t, textId, { body: 'hello, world', idempotencyKey: null });
    expect(text.status).toBe(200);
    expect(text.body.edit).toMatchObject({ changed: ['body', 'idempotencyKey'], idempotencyKey: null });
    expect(down.seen[2]!.body.toString()).toBe('hello, world');
    expect(down.seen[2]!.headers['content-type']).toBe('text/plain');
    expect(down.seen[2]!.headers['idempotency-key']).toBeUndefined();

    // An entry stored without a body gets one; the route's made-up key is a key like any other: a new one goes with the new body.
    const bytes = Buffer.from([0x00, 0xff, 0x10, 0x80]);
    const base64 = await replay(t, genId, { bodyBase64: bytes.toString('base64'), idempotencyKey: null });
    expect(base64.status).toBe(200);
    expect(down.seen[3]!.body.equals(bytes)).toBe(true);
    expect(down.seen[3]!.headers['idempotency-key']).toMatch(/^relay-/);
    expect(down.seen[3]!.headers['idempotency-key']).not.toBe(genEntry.idempotencyKey);
  });

  it('an edit under another key than the entry\'s, whose first delivery may have been processed, needs force', async () => {
    const { t, down } = await setUp(backend);
    down.hanging = true;
    const key = uniqueKey('edit-unknown');
    const id = await deadLetter(t, '{"amount":100}', { key, status: 504 });
    expect((await entry(t, id)).delivery).toBe('unknown');
    down.hanging = false;
    down.failing = false;
    const edit = { body: { amount: 2 }, idempotencyKey: uniqueKey('edit-unknown-new') };
    expect(expectProblem(await replay(t, id, edit), 409).code).toBe('DELIVERY_UNKNOWN');
    expect(down.seen).toHaveLength(1);
    expect((await entry(t, id)).edits).toEqual([]);
    expect((await replay(t, id, { ...edit, force: true })).status).toBe(200);
    expect(down.seen[1]!.body.toString()).toBe('{"amount":2}');
  });

  it('an entry whose secret was not kept (no RELAY_SECRET_KEY) is replayed when the edit gives the secret again', async () => {
    const { t, down } = await setUp(backend, { secretKey: false });
    const id = await deadLetter(t, '{"amount":100}', { key: uniqueKey('edit-dropped'), headers: { authorization: 'Bearer first-sekrit' } });
    down.failing = false;
    expect(expectProblem(await replay(t, id), 422).code).toBe('SECRET_KEY_REQUIRED');
    const res = await replay(t, id, { headers: { authorization: 'Bearer second-sekrit' } });
    expect(res.status).toBe(200);
    expect(res.body.edit).toMatchObject({ changed: ['headers'], headers: { authorization: '[redacted]' } });
    expect(down.seen).toHaveLength(2);
    expect(down.seen[1]!.headers.authorization).toBe('Bearer second-sekrit');
  });
});
