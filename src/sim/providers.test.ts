import { describe, expect, it } from 'vitest';
import { request } from 'undici';
import { basicAuth, useProviderSimulators } from '../../test/helpers/providers.js';
import { PROVIDER_DEFAULTS, SimValidationError } from './providers.js';
import type { ProviderSimulator } from './providers.js';

const start = useProviderSimulators();

interface CallInit {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  signal?: AbortSignal;
}

async function call(sim: ProviderSimulator, path: string, init: CallInit = {}) {
  const res = await request(`${sim.url}${path}`, {
    method: init.method ?? 'POST',
    headers: init.headers ?? {},
    ...(init.body === undefined ? {} : { body: init.body }),
    ...(init.signal ? { signal: init.signal } : {}),
  });
  const raw = Buffer.from(await res.body.arrayBuffer());
  const json = () => JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
  return { status: res.statusCode, headers: res.headers, raw, json };
}

const form = { 'content-type': 'application/x-www-form-urlencoded' };
const payKey = { authorization: `Bearer ${PROVIDER_DEFAULTS.paymentApiKey}` };

function charge(sim: ProviderSimulator, body: string, headers: Record<string, string> = {}) {
  return call(sim, '/v1/charges', { headers: { ...payKey, ...form, ...headers }, body });
}

async function until(condition: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('payment provider', () => {
  it('creates a charge from a form body with the Bearer key', async () => {
    const sim = await start({ kind: 'payment' });
    const res = await charge(sim, 'amount=4200&currency=usd');
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ id: expect.stringMatching(/^ch_/), amount: 4200, currency: 'usd' });
    expect(sim.created).toBe(1);
  });

  it('refuses a missing or wrong key with 401 and creates nothing', async () => {
    const sim = await start({ kind: 'payment', apiKey: 'sk_test_other' });
    const none = await call(sim, '/v1/charges', { headers: form, body: 'amount=1&currency=usd' });
    const wrong = await charge(sim, 'amount=1&currency=usd');
    expect([none.status, wrong.status]).toEqual([401, 401]);
    expect(wrong.json()).toMatchObject({ error: { type: 'invalid_request_error' } });
    expect(sim.created).toBe(0);
  });

  it('answers 415 to a JSON body', async () => {
    const sim = await start({ kind: 'payment' });
    const res = await call(sim, '/v1/charges', {
      headers: { ...payKey, 'content-type': 'application/json' },
      body: '{"amount":1,"currency":"usd"}',
    });
    expect(res.status).toBe(415);
    expect(sim.created).toBe(0);
  });

  it('replays the stored answer for the same Idempotency-Key and parameters, creating one charge', async () => {
    const sim = await start({ kind: 'payment' });
    const first = await charge(sim, 'amount=4200&currency=usd', { 'idempotency-key': 'pay-dedupe-1' });
    const again = await charge(sim, 'currency=usd&amount=4200', { 'idempotency-key': 'pay-dedupe-1' });
    expect(again.status).toBe(200);
    expect(again.raw.equals(first.raw)).toBe(true);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    expect(sim.created).toBe(1);
    expect(sim.requests).toHaveLength(2);
  });

  it('answers 400 idempotency_error when a key comes back with other parameters', async () => {
    const sim = await start({ kind: 'payment' });
    await charge(sim, 'amount=4200&currency=usd', { 'idempotency-key': 'pay-reuse-1' });
    const res = await charge(sim, 'amount=9900&currency=usd', { 'idempotency-key': 'pay-reuse-1' });
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ error: { type: 'idempotency_error' } });
    expect(sim.created).toBe(1);
  });

  it('stores no answer for an injected failure or a refused body, so the retry creates exactly one charge', async () => {
    const sim = await start({ kind: 'payment' });
    sim.failNext(1, { status: 503 });
    const failed = await charge(sim, 'amount=4200&currency=usd', { 'idempotency-key': 'pay-retry-1' });
    const invalid = await charge(sim, 'amount=-1&currency=usd', { 'idempotency-key': 'pay-retry-2' });
    const retried = await charge(sim, 'amount=4200&currency=usd', { 'idempotency-key': 'pay-retry-1' });
    const fixed = await charge(sim, 'amount=100&currency=eur', { 'idempotency-key': 'pay-retry-2' });
    expect([failed.status, invalid.status, retried.status, fixed.status]).toEqual([503, 400, 200, 200]);
    expect(retried.headers['idempotent-replayed']).toBeUndefined();
    expect(sim.created).toBe(2);
  });

  it('retrieves a charge by id and answers 404 to an unknown one', async () => {
    const sim = await start({ kind: 'payment' });
    const { id } = (await charge(sim, 'amount=700&currency=gbp')).json();
    const found = await call(sim, `/v1/charges/${String(id)}`, { method: 'GET', headers: payKey });
    const missing = await call(sim, '/v1/charges/ch_nope', { method: 'GET', headers: payKey });
    expect(found.status).toBe(200);
    expect(found.json()).toMatchObject({ id, amount: 700, currency: 'gbp' });
    expect(missing.status).toBe(404);
    expect(missing.json()).toMatchObject({ error: { code: 'resource_missing' } });
  });
});

describe('sms provider', () => {
  const messages = `/2010-04-01/Accounts/${PROVIDER_DEFAULTS.smsAccountSid}/Messages.json`;
  const smsAuth = { authorization: basicAuth(PROVIDER_DEFAULTS.smsAccountSid, PROVIDER_DEFAULTS.smsAuthToken) };
  const send = (sim: ProviderSimulator, headers: Record<string, string> = smsAuth) =>
    call(sim, messages, { headers: { ...form, ...headers }, body: 'To=%2B15550001111&Body=Hello' });

  it('queues a message with Basic auth and answers 201', async () => {
    const sim = await start({ kind: 'sms' });
    const res = await send(sim);
    expect(res.status).toBe(201);
    expect(res.json()).toMatchObject({ sid: expect.stringMatching(/^SM/), to: '+15550001111', body: 'Hello', status: 'queued' });
    expect(sim.created).toBe(1);
  });

  it('refuses a missing or wrong password with 401', async () => {
    const sim = await start({ kind: 'sms' });
    const none = await send(sim, {});
    const wrong = await send(sim, { authorization: basicAuth(PROVIDER_DEFAULTS.smsAccountSid, 'guess') });
    expect([none.status, wrong.status]).toEqual([401, 401]);
    expect(wrong.json()).toMatchObject({ code: 20003 });
    expect(sim.created).toBe(0);
  });

  it('answers 429 with Retry-After: 1 past ratePerSecond in one second, and admits again the next second', async () => {
    let now = 1_700_000_000_000;
    const sim = await start({ kind: 'sms', ratePerSecond: 2, clock: { now: () => now } });
    const statuses = [];
    for (let i = 0; i < 3; i += 1) statuses.push(await send(sim));
    expect(statuses.map((r) => r.status)).toEqual([201, 201, 429]);
    expect(statuses[2]?.headers['retry-after']).toBe('1');
    now += 1_000;
    expect((await send(sim)).status).toBe(201);
    expect(sim.created).toBe(3);
  });

  it('answers 400 when To is missing', async () => {
    const sim = await start({ kind: 'sms' });
    const res = await call(sim, messages, { headers: { ...form, ...smsAuth }, body: 'Body=Hello' });
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ code: 21604 });
  });
});

describe('email provider', () => {
  const mail = JSON.stringify({
    personalizations: [{ to: [{ email: 'a@example.com' }] }],
    from: { email: 'relay@example.com' },
    subject: 'hi',
    content: [{ type: 'text/plain', value: 'hi' }],
  });
  const emailAuth = { authorization: `Bearer ${PROVIDER_DEFAULTS.emailApiKey}`, 'content-type': 'application/json' };

  it('accepts a mail with 202, no body and an X-Message-Id', async () => {
    const sim = await start({ kind: 'email' });
    const res = await call(sim, '/v3/mail/send', { headers: emailAuth, body: mail });
    expect(res.status).toBe(202);
    expect(res.raw.length).toBe(0);
    expect(res.headers['x-message-id']).toEqual(expect.any(String));
    expect(sim.created).toBe(1);
  });

  it('refuses a missing key with 401', async () => {
    const sim = await start({ kind: 'email' });
    const res = await call(sim, '/v3/mail/send', { headers: { 'content-type': 'application/json' }, body: mail });
    expect(res.status).toBe(401);
    expect(res.json()).toMatchObject({ errors: [{ message: expect.any(String) }] });
    expect(sim.created).toBe(0);
  });

  it('answers 400 naming the field when personalizations is missing', async () => {
    const sim = await start({ kind: 'email' });
    const res = await call(sim, '/v3/mail/send', { headers: emailAuth, body: '{"from":{"email":"a@example.com"}}' });
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ errors: [{ field: 'personalizations' }] });
  });
});

describe('recording', () => {
  it('keeps a binary body byte for byte, the raw target and every header as sent', async () => {
    const sim = await start({ kind: 'echo' });
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const res = await call(sim, '/upload/a%2Fb?x=1&x=2&empty=', {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'X-Foo': 'Bar  baz', 'x-dup': ['one', 'two'] },
      body: bytes,
    });
    expect(res.json()).toMatchObject({ method: 'PUT', path: '/upload/a%2Fb?x=1&x=2&empty=', bodyBase64: bytes.toString('base64') });
    const [recorded] = sim.requests;
    expect(recorded?.body.equals(bytes)).toBe(true);
    expect(recorded?.path).toBe('/upload/a%2Fb?x=1&x=2&empty=');
    expect(recorded?.headers).toMatchObject({ 'x-foo': 'Bar  baz', 'x-dup': 'one, two', 'content-length': '256' });
    expect(recorded?.rawHeaders).toContain('X-Foo');
  });

  it('keeps every Authorization header that arrived, not only the first', async () => {
    const sim = await start({ kind: 'payment' });
    const res = await call(sim, '/v1/charges', {
      headers: { ...form, authorization: [payKey.authorization, 'Bearer sk_injected_twice'] },
      body: 'amount=1&currency=usd',
    });
    expect(res.status).toBe(401);
    expect(sim.requests[0]?.headers.authorization).toBe(`${payKey.authorization}, Bearer sk_injected_twice`);
  });

  it('reset() forgets requests, effects and keys', async () => {
    const sim = await start({ kind: 'payment' });
    await charge(sim, 'amount=1&currency=usd', { 'idempotency-key': 'pay-reset-1' });
    sim.reset();
    expect([sim.requests.length, sim.created]).toEqual([0, 0]);
    const res = await charge(sim, 'amount=2&currency=usd', { 'idempotency-key': 'pay-reset-1' });
    expect(res.status).toBe(200);
    expect(sim.created).toBe(1);
  });
});

describe('echo answers', () => {
  it('sends a fixed redirect with several Set-Cookie headers', async () => {
    const sim = await start({
      kind: 'echo',
      answer: { status: 302, headers: { location: 'https://elsewhere.example/x', 'set-cookie': ['a=1; Path=/', 'b=2; HttpOnly'] } },
    });
    const res = await call(sim, '/anything', { method: 'GET' });
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe('https://elsewhere.example/x');
    expect(res.headers['set-cookie']).toEqual(['a=1; Path=/', 'b=2; HttpOnly']);
  });

  it('streams a body of N bytes, with a content-length or chunked', async () => {
    const sim = await start({ kind: 'echo' });
    sim.answerNext(1, { bodyBytes: 1_000_000 });
    sim.answerNext(1, { bodyBytes: 200_000, chunked: true });
    const sized = await call(sim, '/big');
    const chunked = await call(sim, '/big');
    expect([sized.raw.length, sized.headers['content-length']]).toEqual([1_000_000, '1000000']);
    expect([chunked.raw.length, chunked.headers['content-length'], chunked.headers['transfer-encoding']]).toEqual([
      200_000,
      undefined,
      'chunked',
    ]);
  });
});

describe('failure injection', () => {
  it('failNext answers the next n with the status and Retry-After, then the provider answers', async () => {
    const sim = await start({ kind: 'echo' });
    sim.failNext(2, { status: 503, retryAfterS: 3 });
    const statuses = [];
    for (let i = 0; i < 3; i += 1) statuses.push(await call(sim, '/x'));
    expect(statuses.map((r) => r.status)).toEqual([503, 503, 200]);
    expect(statuses[0]?.headers['retry-after']).toBe('3');
    expect(sim.requests).toHaveLength(3);
    expect(sim.created).toBe(1);
  });

  it('planned faults run in the order they were asked for', async () => {
    const sim = await start({ kind: 'echo' });
    sim.failNext(1, { status: 500 });
    sim.answerNext(1, { status: 201, json: { scripted: true } });
    const first = await call(sim, '/x');
    const second = await call(sim, '/x');
    expect([first.status, second.status]).toEqual([500, 201]);
    expect(second.json()).toEqual({ scripted: true });
  });

  it('hangNext records the request and never answers until the client gives up', async () => {
    const sim = await start({ kind: 'echo' });
    sim.hangNext(1);
    await expect(call(sim, '/slow', { body: 'x', signal: AbortSignal.timeout(150) })).rejects.toThrow();
    expect(sim.requests).toHaveLength(1);
    expect((await call(sim, '/slow')).status).toBe(200);
  });

  it('close() ends a hanging request and can be called twice', async () => {
    const sim = await start({ kind: 'echo' });
    sim.hangNext(1);
    const pending = call(sim, '/slow');
    await until(() => sim.requests.length === 1);
    await Promise.all([sim.close(), sim.close()]);
    await expect(pending).rejects.toThrow();
  });

  it('resetNext drops the connection after reading the request, then serves the next', async () => {
    const sim = await start({ kind: 'payment' });
    sim.resetNext(1);
    const error = await charge(sim, 'amount=4200&currency=usd', { 'idempotency-key': 'pay-reset-conn' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: expect.stringMatching(/^(UND_ERR_SOCKET|ECONNRESET)$/) });
    expect(sim.requests).toHaveLength(1);
    expect(sim.created).toBe(0);
    expect((await charge(sim, 'amount=4200&currency=usd', { 'idempotency-key': 'pay-reset-conn' })).status).toBe(200);
  });

  it('failRate fails the requests the injected random source picks', async () => {
    const draws = [0.1, 0.9, 0.49, 0.5];
    const sim = await start({ kind: 'echo', failRate: 0.5, failure: { status: 500 }, random: () => draws.shift() ?? 1 });
    const statuses = [];
    for (let i = 0; i < 4; i += 1) statuses.push((await call(sim, '/x')).status);
    expect(statuses).toEqual([500, 200, 500, 200]);
    sim.clearFaults();
    expect((await call(sim, '/x')).status).toBe(200);
  });

  it('names the bad value of a fault or an option', async () => {
    const sim = await start({ kind: 'echo' });
    expect(() => sim.failNext(0)).toThrow(new SimValidationError('count', 'count: expected a whole number from 1 up, got 0'));
    expect(() => sim.failNext(1, { status: 200 })).toThrow(/status: expected an HTTP status from 400 to 599, got 200/);
    expect(() => sim.setFailRate(2)).toThrow(/rate: expected a number from 0 to 1, got 2/);
    expect(() => sim.answerNext(1, { json: {}, bodyBytes: 3 })).toThrow(/at most one of body, json and bodyBytes/);
    await expect(start({ kind: 'sms', ratePerSecond: 0 })).rejects.toThrow(/ratePerSecond: expected a whole number/);
    await expect(start({ kind: 'payment', apiKey: '' })).rejects.toThrow(/apiKey: expected a non-empty string/);
  });
});
