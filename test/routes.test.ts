import { afterEach, describe, expect, it } from 'vitest';
import { basicAuth, useProviderSimulators } from './helpers/providers.js';
import { rawRequest } from './helpers/raw-http.js';
import { eventually, startTestRelay, uniqueKey, type TestRelay } from './helpers/test-relay.js';

let t: TestRelay | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const APP_TOKEN = 'app-token-for-tests';
const PAY_KEY = 'sk_test_route_secret_4242';

describe('routes: any method, any body, headers', () => {
  const provider = useProviderSimulators();

  it('forwards a form body and a binary body byte for byte, with their content types, to the route target plus rest and query', async () => {
    const echo = await provider({ kind: 'echo' });
    t = await startTestRelay({ routes: { routes: [{ name: 'echo', target: `${echo.url}/base` }] } });
    const form = 'amount=4200&currency=usd&description=caf%C3%A9+%26+co';
    const res = await t.http.post('/relay/echo/v1/charges?expand=customer').type('application/x-www-form-urlencoded').send(form);
    expect(res.status).toBe(200);
    expect(echo.requests[0]).toMatchObject({ method: 'POST', path: '/base/v1/charges?expand=customer' });
    expect(echo.requests[0]!.body.toString('latin1')).toBe(form);
    expect(echo.requests[0]!.headers['content-type']).toBe('application/x-www-form-urlencoded');

    const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    await t.http.put('/relay/echo/blob').set('Content-Type', 'application/octet-stream').send(binary).expect(200);
    expect(echo.requests[1]).toMatchObject({ method: 'PUT', path: '/base/blob' });
    expect(echo.requests[1]!.body.equals(binary)).toBe(true);

    await t.http.get('/relay/echo').expect(200);
    expect(echo.requests[2]).toMatchObject({ method: 'GET', path: '/base' });
  });

  it("passes the downstream's status, headers and body back as they came, and never follows a redirect", async () => {
    const echo = await provider({ kind: 'echo' });
    t = await startTestRelay({ routes: { routes: [{ name: 'echo', target: `${echo.url}/` }] } });
    echo.answerNext(1, { status: 302, headers: { location: 'https://elsewhere.test/x', 'set-cookie': ['a=1', 'b=2'], 'x-provider': 'p' }, body: '<html>moved</html>' });
    const res = await t.http.get('/relay/echo/old').redirects(0);
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe('https://elsewhere.test/x');
    expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(res.headers['x-provider']).toBe('p');
    expect(res.text).toBe('<html>moved</html>');
    expect(echo.requests).toHaveLength(1);
  });

  it("forwards the client's Authorization, replaces it with the route's own, strips hop-by-hop and Connection-named headers", async () => {
    const echo = await provider({ kind: 'echo' });
    t = await startTestRelay({
      routes: {
        routes: [
          { name: 'open', target: `${echo.url}/` },
          { name: 'keyed', target: `${echo.url}/`, headers: { set: { Authorization: 'Bearer ${PAY_KEY}' }, remove: ['cookie'] }, clients: ['${APP_TOKEN}'] },
        ],
      },
      env: { PAY_KEY, APP_TOKEN },
    });
    await t.http
      .post('/relay/open/x')
      .set('Authorization', 'Bearer client-own')
      .set('Connection', 'x-foo')
      .set('X-Foo', 'hop')
      .set('X-Bar', 'kept')
      .set('X-Relay-Priority', 'high')
      .set('Prefer', 'respond-sync, return=minimal')
      .send('{}')
      .expect(200);
    const first = echo.requests[0]!.headers;
    expect(first.authorization).toBe('Bearer client-own');
    expect(first['x-foo']).toBeUndefined();
    expect(first['x-bar']).toBe('kept');
    expect(first['x-relay-priority']).toBeUndefined();
    expect(first['x-request-id']).toBeDefined();
    expect(first.traceparent).toMatch(/^00-[\da-f]{32}-[\da-f]{16}-0[01]$/);

    await t.http.post('/relay/keyed/x').set('X-Relay-Token', APP_TOKEN).set('Authorization', 'Bearer client-own').set('Cookie', 'sid=1').send('{}').expect(200);
    const second = echo.requests[1]!.headers;
    expect(second.authorization).toBe(`Bearer ${PAY_KEY}`);
    expect(second.cookie).toBeUndefined();
    expect(second['x-relay-token']).toBeUndefined();
  });

  it('answers 404 for an unknown route, 405 with Allow for a method the route does not list, 400 BAD_PATH for a path that could escape the target, 401 without a client token', async () => {
    const echo = await provider({ kind: 'echo' });
    t = await startTestRelay({
      routes: {
        routes: [
          { name: 'ro', target: `${echo.url}/api/`, methods: ['GET', 'HEAD'] },
          { name: 'pay', target: `${echo.url}/`, headers: { set: { Authorization: 'Bearer ${PAY_KEY}' } }, clients: ['${APP_TOKEN}'] },
        ],
      },
      env: { PAY_KEY, APP_TOKEN },
    });
    const unknown = await t.http.get('/relay/nope/x');
    expect(unknown.status).toBe(404);
    expect(unknown.body.code).toBe('NOT_FOUND');
    const wrongMethod = await t.http.post('/relay/ro/x').send('{}');
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.allow).toBe('GET, HEAD');
    for (const path of ['/relay/ro/../admin', '/relay/ro/%2e%2e/admin', '/relay/ro/a%2fb', '/relay/ro/a//b', '/relay/ro/a%5cb', '/relay/ro/%00']) {
      const res = await rawRequest(t.url, { path });
      expect(res.status, path).toBe(400);
      expect((res.json as { code: string }).code, path).toBe('BAD_PATH');
    }
    const noToken = await t.http.post('/relay/pay/v1').send('{}');
    expect(noToken.status).toBe(401);
    expect(noToken.body.code).toBe('ROUTE_CLIENT_UNAUTHORIZED');
    const badToken = await t.http.post('/relay/pay/v1').set('X-Relay-Token', 'wrong').send('{}');
    expect(badToken.status).toBe(401);
    expect(echo.requests).toHaveLength(0);
  });

  it('a too-large answer is cut off: 502 RESPONSE_TOO_LARGE, and its key is released', async () => {
    const echo = await provider({ kind: 'echo' });
    t = await startTestRelay({ routes: { routes: [{ name: 'echo', target: `${echo.url}/` }] }, env: { MAX_RESPONSE_BYTES: '1000' } });
    echo.answerNext(1, { status: 200, bodyBytes: 5000, chunked: true });
    const key = uniqueKey('big');
    const res = await t.http.post('/relay/echo/x').set('Idempotency-Key', key).send('{}');
    expect(res.status).toBe(502);
    expect(res.body.code).toBe('RESPONSE_TOO_LARGE');
    // Released, not stored: the same key runs again and this time gets the small answer.
    const again = await t.http.post('/relay/echo/x').set('Idempotency-Key', key).send('{}');
    expect(again.status).toBe(200);
    expect(again.headers['idempotent-replayed']).toBeUndefined();
  });
});

describe('routes: safe retries by method', () => {
  const provider = useProviderSimulators();

  it('sends a POST without a key once when the attempt times out, and says delivery is unknown', async () => {
    const echo = await provider({ kind: 'echo' });
    t = await startTestRelay({ routes: { routes: [{ name: 'echo', target: `${echo.url}/`, timeoutMs: 200 }] } });
    echo.hangNext(5);
    const res = await t.http.post('/relay/echo/charge').send('amount=1');
    expect(res.status).toBe(504);
    expect(res.body).toMatchObject({ code: 'UPSTREAM_TIMEOUT', delivery: 'unknown', attempts: 1 });
    expect(echo.requests).toHaveLength(1);
    const entry = await t.http.get(`/dlq/${res.body.dlqId as string}`).expect(200);
    expect(entry.body.attempts[0]).toMatchObject({ outcome: 'timeout', sent: 'unknown' });
    expect(entry.body.delivery).toBe('unknown');
    // Its replay could run it twice: refused unless forced.
    const replay = await t.http.post(`/dlq/${res.body.dlqId as string}/replay`);
    expect(replay.status).toBe(409);
    expect(replay.body.code).toBe('DELIVERY_UNKNOWN');
  });

  it("retries a POST with the client's key, sending the same key each time", async () => {
    const echo = await provider({ kind: 'echo' });
    t = await startTestRelay({ routes: { routes: [{ name: 'echo', target: `${echo.url}/`, timeoutMs: 200 }] } });
    echo.hangNext(2);
    const key = uniqueKey('retry');
    const res = await t.http.post('/relay/echo/charge').set('Idempotency-Key', `"${key}"`).send('amount=1');
    expect(res.status).toBe(200);
    expect(res.headers['x-relay-attempts']).toBe('3');
    expect(echo.requests.map((r) => r.headers['idempotency-key'])).toEqual([key, key, key]);
  });

  it('with idempotency.generate, a POST without a key gets one made up, the same on every attempt, under the route header', async () => {
    const echo = await provider({ kind: 'echo' });
    t = await startTestRelay({
      routes: { routes: [{ name: 'echo', target: `${echo.url}/`, timeoutMs: 200, idempotency: { header: 'X-Idempotency', generate: true } }] },
    });
    echo.hangNext(1);
    await t.http.post('/relay/echo/charge').send('amount=1').expect(200);
    const keys = echo.requests.map((r) => r.headers['x-idempotency']);
    expect(keys).toHaveLength(2);
    expect(keys[0]).toMatch(/^relay-[\da-f-]{36}$/);
    expect(keys[1]).toBe(keys[0]);
    expect(echo.requests[0]!.headers['idempotency-key']).toBeUndefined();
  });

  it('retries a GET after a timeout without any key, and a POST after a 503', async () => {
    const echo = await provider({ kind: 'echo' });
    t = await startTestRelay({ routes: { routes: [{ name: 'echo', target: `${echo.url}/`, timeoutMs: 200 }] } });
    echo.hangNext(1);
    await t.http.get('/relay/echo/item').expect(200);
    expect(echo.requests).toHaveLength(2);
    echo.failNext(1, { status: 503 });
    const res = await t.http.post('/relay/echo/charge').send('amount=1').expect(200);
    expect(res.headers['x-relay-attempts']).toBe('2');
  });
});

describe('routes: providers', () => {
  const provider = useProviderSimulators();

  it('a payment API: form body, the route injects its Bearer key, a generated key makes the retry after a reset charge once', async () => {
    const pay = await provider({ kind: 'payment', apiKey: PAY_KEY });
    t = await startTestRelay({
      routes: {
        routes: [
          {
            name: 'payments',
            target: `${pay.url}/`,
            timeoutMs: 1000,
            idempotency: { generate: true },
            headers: { set: { Authorization: 'Bearer ${PAY_KEY}' } },
            clients: ['${APP_TOKEN}'],
          },
        ],
      },
      env: { PAY_KEY, APP_TOKEN },
    });
    pay.resetNext(1);
    const res = await t.http
      .post('/relay/payments/v1/charges')
      .set('X-Relay-Token', APP_TOKEN)
      .type('form')
      .send('amount=4200&currency=usd')
      .expect(200);
    expect(res.body).toMatchObject({ amount: 4200, currency: 'usd' });
    expect(pay.created).toBe(1);
    expect(pay.requests.every((r) => r.headers.authorization === `Bearer ${PAY_KEY}`)).toBe(true);
  });

  it("an SMS API: Basic auth from the route, its 429's Retry-After honoured before the retry", async () => {
    const sms = await provider({ kind: 'sms', accountSid: 'AC1', authToken: 'tok', ratePerSecond: 1 });
    t = await startTestRelay({
      routes: { routes: [{ name: 'sms', target: `${sms.url}/2010-04-01/Accounts/AC1`, headers: { set: { Authorization: '${SMS_AUTH}' } }, clients: ['${APP_TOKEN}'] }] },
      env: { SMS_AUTH: basicAuth('AC1', 'tok'), APP_TOKEN, REQUEST_DEADLINE_MS: '5000' },
    });
    const send = () => t!.http.post('/relay/sms/Messages.json').set('X-Relay-Token', APP_TOKEN).type('form').send('To=%2B15550100&Body=hi');
    await send().expect(201);
    const started = Date.now();
    const second = await send();
    expect(second.status).toBe(201);
    expect(second.headers['x-relay-attempts']).toBe('2');
    // The retry waited for the provider's Retry-After (1 s), not the relay's 10-50 ms backoff.
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it('an e-mail API: JSON body, Bearer key, its 202 passed through', async () => {
    const mail = await provider({ kind: 'email', apiKey: 'SG.test' });
    t = await startTestRelay({
      routes: { routes: [{ name: 'email', target: `${mail.url}/`, headers: { set: { Authorization: 'Bearer ${MAIL_KEY}' } }, clients: ['${APP_TOKEN}'] }] },
      env: { MAIL_KEY: 'SG.test', APP_TOKEN },
    });
    const res = await t.http
      .post('/relay/email/v3/mail/send')
      .set('X-Relay-Token', APP_TOKEN)
      .send({ personalizations: [{ to: [{ email: 'a@example.com' }] }], from: { email: 'b@example.com' }, subject: 's', content: [{ type: 'text/plain', value: 'x' }] })
      .expect(202);
    expect(res.headers['x-message-id']).toBeDefined();
    expect(mail.created).toBe(1);
  });

  it('a named fallback route serves while the primary route is open, with its own credentials', async () => {
    const primary = await provider({ kind: 'echo' });
    const backup = await provider({ kind: 'echo' });
    t = await startTestRelay({
      routes: {
        routes: [
          { name: 'main', target: `${primary.url}/`, fallbacks: ['backup'], breaker: { minCalls: 2, failureRate: 0.5 }, retry: { maxAttempts: 1 }, headers: { set: { Authorization: 'Bearer ${PAY_KEY}' } }, clients: ['${APP_TOKEN}'] },
          { name: 'backup', target: `${backup.url}/`, headers: { set: { Authorization: 'Bearer backup-key' } }, clients: ['${APP_TOKEN}'] },
        ],
      },
      env: { PAY_KEY, APP_TOKEN },
    });
    primary.setFailRate(1, { status: 500 });
    for (let i = 0; i < 2; i++) await t.http.get('/relay/main/x').set('X-Relay-Token', APP_TOKEN);
    const served = await t.http.get('/relay/main/x').set('X-Relay-Token', APP_TOKEN).expect(200);
    expect(served.headers['x-relay-upstream']).toBe('fallback-1');
    expect(backup.requests[0]!.headers.authorization).toBe('Bearer backup-key');
  });
});

describe('routes: observability', () => {
  const provider = useProviderSimulators();

  it('/stats has routes.{name} with the top-level fields, /metrics a route label, GET /routes the routes with secrets redacted', async () => {
    const echo = await provider({ kind: 'echo' });
    t = await startTestRelay({
      routes: {
        routes: [
          { name: 'a', target: `${echo.url}/`, rateLimit: { rps: 1000, burst: 100 } },
          { name: 'b', target: `http://user:hunter2-pw@127.0.0.1:${echo.port}/`, headers: { set: { 'X-Api-Key': '${PAY_KEY}' } }, clients: ['${APP_TOKEN}'] },
        ],
      },
      env: { PAY_KEY, APP_TOKEN },
    });
    await t.http.post('/relay/a/x').send('{}').expect(200);
    await t.http.post('/relay/b/x').set('X-Relay-Token', APP_TOKEN).send('{}').expect(200);
    await t.http.post('/relay/b/x').set('X-Relay-Token', APP_TOKEN).send('{}').expect(200);
    await eventually(async () => ((await t!.http.get('/stats')).body.routes?.b?.totals?.requests ?? 0) === 2);
    const stats = (await t.http.get('/stats').expect(200)).body;
    expect(stats.totals.requests).toBe(3);
    expect(stats.routes.a.totals.requests).toBe(1);
    expect(Object.keys(stats.routes.a)).toEqual(expect.arrayContaining(['rate', 'errors', 'duration', 'queue', 'downstream', 'breakers', 'retryBudget', 'aimd', 'rateLimit']));
    expect(stats.routes.a.rateLimit.primary).toBeDefined();
    expect(stats.routes.b.rateLimit).toEqual({});
    const metrics = (await t.http.get('/metrics')).text;
    expect(metrics).toMatch(/relay_requests_total\{route="b",outcome="delivered"\} 2/);
    const routes = (await t.http.get('/routes').expect(200)).body;
    expect(routes.routes[1]).toMatchObject({ name: 'b', headers: { set: { 'x-api-key': '[redacted]' } }, clients: ['[redacted]'] });
    const everything = JSON.stringify(stats) + metrics + JSON.stringify(routes) + JSON.stringify(t.logs);
    expect(everything).not.toContain(PAY_KEY);
    expect(everything).not.toContain('hunter2-pw');
    expect(everything).not.toContain(APP_TOKEN);
  });
});
