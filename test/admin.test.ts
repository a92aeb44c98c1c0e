import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import express from 'express';
import supertest from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { refuseCrossSite, requireAdmin } from '../src/http/admin.js';
import { problemHandler } from '../src/http/problem.js';
import { createLogger } from '../src/observability/logger.js';
import { expectProblem } from './helpers/problem.js';
import { rawRequest } from './helpers/raw-http.js';
import { startTestRelay, type TestRelay } from './helpers/test-relay.js';

let t: TestRelay | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const TOKEN = 's3cret-admin-token-for-tests';
const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';

/** A non-loopback IPv4 address of this machine, if it has one. */
function externalIPv4(): string | undefined {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

describe('admin protection with ADMIN_TOKEN set', () => {
  it('answers 401 problem with WWW-Authenticate to a request without Authorization, on every DLQ route', async () => {
    t = await startTestRelay({ env: { ADMIN_TOKEN: TOKEN } });
    const calls = [
      t.http.get('/dlq'),
      t.http.get(`/dlq/${UNKNOWN_ID}`),
      t.http.delete(`/dlq/${UNKNOWN_ID}`),
      t.http.post(`/dlq/${UNKNOWN_ID}/replay`),
    ];
    for (const res of await Promise.all(calls)) {
      expectProblem(res, 401);
      expect(String(res.headers['www-authenticate'])).toMatch(/^Bearer\b/i);
    }
  });

  it('answers 401 to a wrong token, a token of another scheme, and an empty bearer', async () => {
    t = await startTestRelay({ env: { ADMIN_TOKEN: TOKEN } });
    for (const authorization of [`Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, `Basic ${TOKEN}`, 'Bearer ', TOKEN]) {
      expectProblem(await t.http.get('/dlq').set('Authorization', authorization), 401);
    }
  });

  it('lets the right bearer token through', async () => {
    t = await startTestRelay({ env: { ADMIN_TOKEN: TOKEN } });
    const list = await t.http.get('/dlq').set('Authorization', `Bearer ${TOKEN}`);
    expect(list.status).toBe(200);
    expect(list.body).toEqual({ items: [], nextCursor: null });
    expectProblem(await t.http.get(`/dlq/${UNKNOWN_ID}`).set('Authorization', `Bearer ${TOKEN}`), 404);
  });

  it('keeps /health, /ready and /metrics public, puts /stats behind the token, and /relay needs no admin token', async () => {
    t = await startTestRelay({ env: { ADMIN_TOKEN: TOKEN } });
    expect((await t.http.get('/health')).status).toBe(200);
    expect((await t.http.get('/ready')).status).toBe(200);
    expect((await t.http.get('/metrics')).status).toBe(200);
    expect((await t.http.get('/stats')).status).toBe(401);
    expect((await t.http.get('/stats').set('Authorization', `Bearer ${TOKEN}`)).status).toBe(200);
    const relay = await t.http.post('/relay').set('content-type', 'application/json').send({ x: 1 });
    expect(relay.status).toBe(200);
  });

  it('never writes the token or the Authorization header to a log line', async () => {
    t = await startTestRelay({ env: { ADMIN_TOKEN: TOKEN, LOG_LEVEL: 'trace' } });
    await t.http.get('/dlq').set('Authorization', `Bearer ${TOKEN}`);
    await t.http.get('/dlq').set('Authorization', `Bearer wrong-${TOKEN}`);
    await t.http.post('/relay').set('content-type', 'application/json').set('Authorization', `Bearer ${TOKEN}`).send({ y: 2 });
    expect(t.logs.length).toBeGreaterThan(0);
    expect(JSON.stringify(t.logs)).not.toContain(TOKEN);
  });

  it('never writes a secret query parameter to the request log line', async () => {
    t = await startTestRelay({ env: { ADMIN_TOKEN: TOKEN } });
    await t.http.post('/relay?api_key=abc-secret-1&Token=abc-secret-2&page=2').set('content-type', 'application/json').send({ z: 3 });
    await t.http.get('/dlq?access_token=abc-secret-3&limit=5');
    const lines = t.logs.filter((line) => line.msg === 'request completed');
    expect(lines.map((line) => (line.req as { url: string }).url)).toEqual([
      '/relay?api_key=[redacted]&Token=[redacted]&page=2',
      '/dlq?access_token=[redacted]&limit=5',
    ]);
    expect(JSON.stringify(t.logs)).not.toContain('abc-secret');
  });
});

describe('admin protection without ADMIN_TOKEN', () => {
  it('answers a loopback client', async () => {
    t = await startTestRelay();
    expect((await t.http.get('/dlq')).status).toBe(200);
    const res = await fetch(`${t.url}/dlq`);
    expect(res.status).toBe(200);
  });

  it('refuses a client that is not on loopback', async (ctx) => {
    const address = externalIPv4();
    if (address === undefined) ctx.skip(true, 'this machine has no non-loopback IPv4 address to connect from');
    t = await startTestRelay();
    // Listen on every interface (the relay's own config would refuse this without a token) to be reached from outside loopback.
    const server = t.relay.app.listen(0, '0.0.0.0');
    await new Promise<void>((resolve) => server.once('listening', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const res = await fetch(`http://${address}:${port}/dlq`);
      expect(res.status).toBe(403);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      // Claiming the loopback Host does not help: the client's address decides.
      const claimed = await rawRequest(`http://${address}:${port}`, { path: '/dlq', headers: { host: `127.0.0.1:${port}` } });
      expect(expectProblem(claimed, 403).code).toBe('FORBIDDEN');
      // The same relay still answers non-admin routes to that client.
      expect((await fetch(`http://${address}:${port}/health`)).status).toBe(200);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('admin configuration', () => {
  it('refuses to bind a non-loopback HOST without ADMIN_TOKEN, naming HOST', () => {
    expect(() => loadConfig({ HOST: '0.0.0.0' })).toThrow(ConfigError);
    expect(() => loadConfig({ HOST: '0.0.0.0' })).toThrow(/HOST/);
    expect(() => loadConfig({ HOST: '192.168.1.10' })).toThrow(ConfigError);
  });

  it('binds a non-loopback HOST when ADMIN_TOKEN is set', () => {
    const config = loadConfig({ HOST: '0.0.0.0', ADMIN_TOKEN: TOKEN });
    expect(config.host).toBe('0.0.0.0');
    expect(config.adminToken).toBe(TOKEN);
  });

  it('accepts loopback hosts without a token', () => {
    for (const HOST of ['127.0.0.1', 'localhost', '::1']) expect(loadConfig({ HOST }).host).toBe(HOST);
  });
});

/** A small app with one admin route and one state-changing route, listening on loopback so the test knows its port. */
async function startGuardedApp(options: { adminToken?: string; knowsItsPort?: boolean } = {}) {
  const calls = { admin: 0, state: 0 };
  let port: number | undefined;
  const loopbackHostPort = () => (options.knowsItsPort === false || port === undefined ? undefined : `127.0.0.1:${port}`);
  const app = express();
  app.get('/admin/thing', requireAdmin(options.adminToken, { loopbackHostPort }), (_req, res) => {
    calls.admin++;
    res.json({ ok: true });
  });
  app.post('/state', refuseCrossSite({ adminToken: options.adminToken, loopbackHostPort }), (_req, res) => {
    calls.state++;
    res.json({ ok: true });
  });
  app.use(problemHandler(createLogger({ level: 'silent' })));
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  port = (server.address() as AddressInfo).port;
  const guarded = {
    calls,
    port,
    http: supertest(`http://127.0.0.1:${port}`),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  closeApp = guarded.close;
  return guarded;
}

let closeApp: (() => Promise<void>) | undefined;
afterEach(async () => {
  await closeApp?.();
  closeApp = undefined;
});

function expectCrossSite(res: { status: number; headers: Record<string, string | string[] | undefined>; body?: unknown }): void {
  expect(expectProblem(res, 403).code).toBe('CROSS_SITE');
  expect(res.headers['access-control-allow-origin']).toBeUndefined();
}

describe('cross-site requests to admin and state-changing routes', () => {
  it('refuses a foreign Origin, and Origin: null, with 403 CROSS_SITE and nothing done', async () => {
    const app = await startGuardedApp();
    for (const origin of ['https://evil.test', `http://evil.test:${app.port}`, 'http://127.0.0.1:1', `https://127.0.0.1:${app.port}0`, 'null', 'not a url']) {
      expectCrossSite(await app.http.post('/state').set('Origin', origin));
      expectCrossSite(await app.http.get('/admin/thing').set('Origin', origin));
    }
    expect(app.calls).toEqual({ admin: 0, state: 0 });
  });

  it("lets the relay's own origin through (the dashboard's own requests)", async () => {
    const app = await startGuardedApp();
    expect((await app.http.post('/state').set('Origin', `http://127.0.0.1:${app.port}`)).status).toBe(200);
    expect((await app.http.get('/admin/thing').set('Origin', `http://127.0.0.1:${app.port}`)).status).toBe(200);
    expect(app.calls).toEqual({ admin: 1, state: 1 });
  });

  it('refuses Sec-Fetch-Site cross-site and same-site, and accepts same-origin and none', async () => {
    const app = await startGuardedApp();
    for (const site of ['cross-site', 'same-site']) {
      expectCrossSite(await app.http.post('/state').set('Sec-Fetch-Site', site));
      expectCrossSite(await app.http.get('/admin/thing').set('Sec-Fetch-Site', site));
    }
    for (const site of ['same-origin', 'none']) expect((await app.http.post('/state').set('Sec-Fetch-Site', site)).status).toBe(200);
    expect(app.calls.admin).toBe(0);
  });

  it('lets a client that sends neither Origin nor Sec-Fetch-Site through (curl, other services, fetch from Node)', async () => {
    const app = await startGuardedApp();
    expect((await app.http.post('/state')).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${app.port}/state`, { method: 'POST' })).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${app.port}/admin/thing`)).status).toBe(200);
  });

  it("without ADMIN_TOKEN, refuses a Host other than the relay's loopback address and port (DNS rebinding)", async () => {
    const app = await startGuardedApp();
    const other = app.port === 65535 ? 1 : app.port + 1;
    for (const host of [`rebound.attacker.test:${app.port}`, 'attacker.test', `127.0.0.1:${other}`, `localhost:${other}`, `127.0.0.1.nip.io:${app.port}`, `localhost@evil.test:${app.port}`, 'localhost']) {
      expectCrossSite(await app.http.post('/state').set('Host', host));
      expectCrossSite(await app.http.get('/admin/thing').set('Host', host));
    }
    for (const host of [`127.0.0.1:${app.port}`, `localhost:${app.port}`, `[::1]:${app.port}`, `LocalHost:${app.port}`]) {
      expect((await app.http.post('/state').set('Host', host)).status).toBe(200);
      expect((await app.http.get('/admin/thing').set('Host', host)).status).toBe(200);
    }
  });

  it('before the relay knows its port, accepts any loopback port but no other host name', async () => {
    const app = await startGuardedApp({ knowsItsPort: false });
    expect((await app.http.post('/state').set('Host', 'localhost:1')).status).toBe(200);
    expectCrossSite(await app.http.post('/state').set('Host', `rebound.attacker.test:${app.port}`));
  });

  it('with ADMIN_TOKEN, accepts any Host (the token is the guard) but still refuses a foreign Origin, even with the right token', async () => {
    const app = await startGuardedApp({ adminToken: TOKEN });
    expect((await app.http.post('/state').set('Host', 'relay.example.test')).status).toBe(200);
    const admin = await app.http.get('/admin/thing').set('Host', 'relay.example.test').set('Authorization', `Bearer ${TOKEN}`);
    expect(admin.status).toBe(200);
    expectCrossSite(await app.http.get('/admin/thing').set('Origin', 'https://evil.test').set('Authorization', `Bearer ${TOKEN}`));
    expectCrossSite(await app.http.post('/state').set('Sec-Fetch-Site', 'cross-site'));
    // The relay's own origin under its public name is not foreign.
    const own = await app.http.get('/admin/thing').set('Host', 'relay.example.test').set('Origin', 'https://relay.example.test').set('Authorization', `Bearer ${TOKEN}`);
    expect(own.status).toBe(200);
  });
});

describe('loopback behind a proxy', () => {
  it('treats a loopback request carrying Forwarded or X-Forwarded-For as not loopback', async () => {
    const app = await startGuardedApp();
    expect((await app.http.get('/admin/thing')).status).toBe(200);
    for (const [name, value] of [['X-Forwarded-For', '203.0.113.7'], ['Forwarded', 'for=203.0.113.7'], ['X-Forwarded-For', '127.0.0.1']]) {
      expect(expectProblem(await app.http.get('/admin/thing').set(name!, value!), 403).code).toBe('FORBIDDEN');
    }
    expect(app.calls.admin).toBe(1);
  });

  it('lets a proxied request with the right token through when ADMIN_TOKEN is set', async () => {
    const app = await startGuardedApp({ adminToken: TOKEN });
    const res = await app.http.get('/admin/thing').set('X-Forwarded-For', '203.0.113.7').set('Authorization', `Bearer ${TOKEN}`);
    expect(res.status).toBe(200);
    expectProblem(await app.http.get('/admin/thing').set('X-Forwarded-For', '203.0.113.7'), 401);
  });
});

describe('admin routes of a running relay', () => {
  it('refuse a page on another site, a rebound host name and a proxied client', async () => {
    t = await startTestRelay();
    expectCrossSite(await t.http.post(`/dlq/${UNKNOWN_ID}/replay`).set('Origin', 'https://evil.test'));
    expectCrossSite(await t.http.delete(`/dlq/${UNKNOWN_ID}`).set('Sec-Fetch-Site', 'cross-site'));
    expectCrossSite(await t.http.get('/dlq').set('Host', 'rebound.attacker.test'));
    expectProblem(await t.http.get('/dlq').set('X-Forwarded-For', '203.0.113.7'), 403);
    expect((await t.http.get('/dlq')).status).toBe(200);
  });

  it('refuse a page on another site even when ADMIN_TOKEN is set and the token is right', async () => {
    t = await startTestRelay({ env: { ADMIN_TOKEN: TOKEN } });
    expectCrossSite(await t.http.get('/dlq').set('Origin', 'https://evil.test').set('Authorization', `Bearer ${TOKEN}`));
    expect((await t.http.get('/dlq').set('Host', 'relay.example.test').set('Authorization', `Bearer ${TOKEN}`)).status).toBe(200);
  });
});

describe('relayed calls a browser could send behind the operator\'s back', () => {
  it('refuses a POST to /relay or /relay/batch from another site, or through a rebound DNS name, and sends nothing', async () => {
    t = await startTestRelay();
    const post = (path: string) => t!.http.post(path).set('content-type', 'application/json');
    const batch = JSON.stringify({ items: [{ body: { a: 1 } }] });
    expect(expectProblem(await post('/relay').set('Origin', 'https://evil.example').send('{}'), 403).code).toBe('CROSS_SITE');
    expect(expectProblem(await post('/relay').set('Sec-Fetch-Site', 'cross-site').send('{}'), 403).code).toBe('CROSS_SITE');
    expect(expectProblem(await post('/relay').set('Host', 'attacker.example:3000').send('{}'), 403).code).toBe('CROSS_SITE');
    expect(expectProblem(await post('/relay/batch').set('Origin', 'https://evil.example').send(batch), 403).code).toBe('CROSS_SITE');
    expect(t.sim.counters().received).toBe(0);
    // A server-side client (no Origin, loopback Host) and a safe method from anywhere still go through.
    expect((await post('/relay').send('{}')).status).toBe(200);
    // (The simulator answers a GET with its own 405: what matters is that the relay forwarded it.)
    const get = await t.http.get('/relay').set('Origin', 'https://evil.example');
    expect(get.status).not.toBe(403);
    expect(get.headers['x-relay-attempts']).toBe('1');
  });

  it('with ADMIN_TOKEN set (a non-loopback deployment), any Host is accepted but a foreign Origin still is not', async () => {
    t = await startTestRelay({ env: { ADMIN_TOKEN: TOKEN } });
    const post = () => t!.http.post('/relay').set('content-type', 'application/json');
    expect((await post().set('Host', 'relay.internal:3000').send('{}')).status).toBe(200);
    expect(expectProblem(await post().set('Origin', 'https://evil.example').send('{}'), 403).code).toBe('CROSS_SITE');
  });
});
