import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { expectProblem } from './helpers/problem.js';
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

  it('keeps /health, /ready, /stats and /metrics public, and /relay needs no admin token', async () => {
    t = await startTestRelay({ env: { ADMIN_TOKEN: TOKEN } });
    expect((await t.http.get('/health')).status).toBe(200);
    expect((await t.http.get('/ready')).status).toBe(200);
    expect((await t.http.get('/stats')).status).toBe(200);
    expect((await t.http.get('/metrics')).status).toBe(200);
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
