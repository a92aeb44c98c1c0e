import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { expectProblem } from './helpers/problem.js';
import { killStartedRelayProcesses, startRelayProcess } from './helpers/relay-process.js';
import { eventually, startTestRelay, type TestRelay } from './helpers/test-relay.js';

/** A downstream whose answer a test sets, counting what reached it per path. */
interface Downstream {
  url: string;
  hits: string[];
  status: number;
  delayMs: number;
  close(): Promise<void>;
}

async function startDownstream(): Promise<Downstream> {
  const state = { hits: [] as string[], status: 200, delayMs: 0 };
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      state.hits.push(req.url ?? '');
      const status = state.status;
      setTimeout(() => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ path: req.url, status }));
      }, state.delayMs);
    });
  });
  server.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

type RouteEntry = Record<string, unknown> & { name: string };

const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((o) => o.close()));
  await killStartedRelayProcesses();
});

/** A relay over a routes file, whose reload reads that file again. */
async function startRelay(routes: RouteEntry[], env: Record<string, string> = {}): Promise<TestRelay & { writeRoutes(routes: RouteEntry[] | string): void }> {
  let t: TestRelay | undefined;
  // The same environment startTestRelay builds its config from, so an unchanged file reloads unchanged.
  const loadRoutes = () =>
    loadConfig({ SQLITE_PATH: ':memory:', RETRY_BASE_DELAY_MS: '10', RETRY_MAX_DELAY_MS: '50', ROUTES_FILE: t!.relay.config.routesFile!, ...env }).routes;
  t = await startTestRelay({ routes: { routes }, env, overrides: { loadRoutes } });
  open.push(t);
  const file = t.relay.config.routesFile!;
  return Object.assign(t, {
    writeRoutes: (next: RouteEntry[] | string) => writeFileSync(file, typeof next === 'string' ? next : JSON.stringify({ routes: next })),
  });
}

async function downstream(): Promise<Downstream> {
  const d = await startDownstream();
  open.push(d);
  return d;
}

/** The value of relay_admin_actions_total for these labels (0 when absent). */
async function adminActions(t: TestRelay, action: string, route: string): Promise<number> {
  const text = (await t.http.get('/metrics')).text;
  const line = text.split('\n').find((l) => l.startsWith(`relay_admin_actions_total{action="${action}",route="${route}"}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

const noRetry = { retry: { maxAttempts: 1 } };

describe('force a route breaker', () => {
  it('forced open answers 503 CIRCUIT_OPEN with Retry-After and the downstream receives nothing; auto restores traffic', async () => {
    const d = await downstream();
    const t = await startRelay([{ name: 'pay', target: d.url }]);

    const forced = await t.http.post('/admin/routes/pay/breaker').send({ state: 'open' });
    expect(forced.status).toBe(200);
    expect(forced.body).toMatchObject({ route: 'pay', control: { breaker: 'open', paused: false }, breakers: { primary: 'open' } });

    const refused = await t.http.post('/relay/pay/charge').send({ amount: 1 });
    expect(expectProblem(refused, 503).code).toBe('CIRCUIT_OPEN');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(d.hits).toEqual([]);

    const stats = (await t.http.get('/stats')).body as { routes: Record<string, { control: unknown; breakers: Record<string, { state: string; forced: unknown }> }> };
    expect(stats.routes.pay!.control).toEqual({ breaker: 'open', paused: false });
    expect(stats.routes.pay!.breakers.primary).toMatchObject({ state: 'open', forced: 'open' });

    const auto = await t.http.post('/admin/routes/pay/breaker').send({ state: 'auto' });
    expect(auto.body).toMatchObject({ control: { breaker: 'auto' }, breakers: { primary: 'closed' } });
    expect((await t.http.post('/relay/pay/charge').send({ amount: 1 })).status).toBe(200);
    expect(d.hits).toEqual(['/charge']);

    expect(await adminActions(t, 'breaker_open', 'pay')).toBe(1);
    expect(await adminActions(t, 'breaker_auto', 'pay')).toBe(1);
    expect(t.logs.some((l) => l.action === 'breaker_open' && l.route === 'pay' && l.who === 'loopback' && (l.level === 30 || l.level === 'info'))).toBe(true);
  });

  it('forced closed lets every call through a failing downstream; auto then lets the breaker open again', async () => {
    const d = await downstream();
    d.status = 503;
    const t = await startRelay([{ name: 'sms', target: d.url, ...noRetry, breaker: { minCalls: 5, consecutiveFailures: 5 } }]);
    expect((await t.http.post('/admin/routes/sms/breaker').send({ state: 'closed' })).status).toBe(200);

    for (let i = 0; i < 12; i++) expect((await t.http.get('/relay/sms/x')).status).toBe(502);
    expect(d.hits).toHaveLength(12);
    const stats = (await t.http.get('/stats')).body as { routes: Record<string, { breakers: Record<string, { state: string; calls: number }> }> };
    // Still counting while forced, but never opening.
    expect(stats.routes.sms!.breakers.primary).toMatchObject({ state: 'closed', calls: 12 });

    await t.http.post('/admin/routes/sms/breaker').send({ state: 'auto' });
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await t.http.get('/relay/sms/x')).status);
    // A clean window: five more failures before it opens, then fail-fast.
    expect(statuses.slice(0, 5)).toEqual([502, 502, 502, 502, 502]);
    expect(statuses.at(-1)).toBe(503);
    expect(await adminActions(t, 'breaker_closed', 'sms')).toBe(1);
  });

  it('answers 404 for an unknown route and 400 for a bad body, counting nothing', async () => {
    const d = await downstream();
    const t = await startRelay([{ name: 'pay', target: d.url }]);
    expect(expectProblem(await t.http.post('/admin/routes/nope/breaker').send({ state: 'open' }), 404).code).toBe('NOT_FOUND');
    expect(expectProblem(await t.http.post('/admin/routes/nope/pause'), 404).code).toBe('NOT_FOUND');
    expect(expectProblem(await t.http.post('/admin/routes/pay/breaker').send({ state: 'half_open' }), 400).code).toBe('BAD_REQUEST');
    expect(expectProblem(await t.http.post('/admin/routes/pay/breaker').set('content-type', 'application/json').send('{'), 400).code).toBe('INVALID_JSON');
    expect(expectProblem(await t.http.get('/admin/routes/pay/breaker'), 405).code).toBe('METHOD_NOT_ALLOWED');
    const metrics = (await t.http.get('/metrics')).text;
    expect(metrics).not.toMatch(/relay_admin_actions_total\{[^}]*\} [1-9]/);
  });
});

describe('pause and resume a route', () => {
  it('holds a synchronous request, then 503 ROUTE_PAUSED with Retry-After at its deadline; the downstream receives nothing', async () => {
    const d = await downstream();
    const t = await startRelay([{ name: 'mail', target: d.url }], { REQUEST_DEADLINE_MS: '700' });
    const paused = await t.http.post('/admin/routes/mail/pause');
    expect(paused.body).toMatchObject({ route: 'mail', control: { breaker: 'auto', paused: true } });

    const started = Date.now();
    const res = await t.http.post('/relay/mail/send').send({ to: 'a' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(600);
    expect(expectProblem(res, 503).code).toBe('ROUTE_PAUSED');
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(d.hits).toEqual([]);
    const stats = (await t.http.get('/stats')).body as { routes: Record<string, { control: unknown }> };
    expect(stats.routes.mail!.control).toEqual({ breaker: 'auto', paused: true });
  });

  it('a request held while paused is delivered when the route resumes before its deadline', async () => {
    const d = await downstream();
    const t = await startRelay([{ name: 'mail', target: d.url }], { REQUEST_DEADLINE_MS: '5000' });
    await t.http.post('/admin/routes/mail/pause');
    const held = t.http.post('/relay/mail/send').send({ to: 'a' }).then((r) => r);
    await eventually(async () => ((await t.http.get('/stats')).body as { routes: { mail: { queue: { depth: number } } } }).routes.mail.queue.depth === 1);
    expect(d.hits).toEqual([]);
    expect((await t.http.post('/admin/routes/mail/resume')).body).toMatchObject({ control: { paused: false } });
    expect((await held).status).toBe(200);
    expect(d.hits).toEqual(['/send']);
    expect(await adminActions(t, 'pause', 'mail')).toBe(1);
    expect(await adminActions(t, 'resume', 'mail')).toBe(1);
  });

  it('leaves a breaker that opened by itself open: pausing and resuming only hold and release the queue', async () => {
    const d = await downstream();
    d.status = 503;
    const t = await startRelay([{ name: 'sms', target: d.url, ...noRetry, breaker: { minCalls: 3, consecutiveFailures: 3, openMs: 60000 } }]);
    for (let i = 0; i < 3; i++) expect((await t.http.get('/relay/sms/x')).status).toBe(502);
    expect(expectProblem(await t.http.get('/relay/sms/x'), 503).code).toBe('CIRCUIT_OPEN');

    expect((await t.http.post('/admin/routes/sms/pause')).body).toMatchObject({ breakers: { primary: 'open' } });
    expect((await t.http.post('/admin/routes/sms/resume')).body).toMatchObject({ breakers: { primary: 'open' } });
    expect(expectProblem(await t.http.get('/relay/sms/x'), 503).code).toBe('CIRCUIT_OPEN');
    expect(d.hits).toHaveLength(3);
  });

  it('accepts async requests as jobs while paused and delivers them after resume', async () => {
    const d = await downstream();
    const t = await startRelay([{ name: 'mail', target: d.url }], { JOB_POLL_MS: '50' });
    await t.http.post('/admin/routes/mail/pause');
    const accepted = await t.http.post('/relay/mail/send').set('Prefer', 'respond-async').send({ to: 'b' });
    expect(accepted.status).toBe(202);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(d.hits).toEqual([]);
    await t.http.post('/admin/routes/mail/resume');
    await eventually(async () => (await t.http.get(accepted.headers.location!)).body.state === 'delivered', 5000);
    expect(d.hits).toEqual(['/send']);
  });
});

describe('reload the routes', () => {
  it('adds, changes and removes routes at once; a request in flight finishes on the route it was admitted with', async () => {
    const d = await downstream();
    const t = await startRelay([
      { name: 'a', target: `${d.url}a-v1/` },
      { name: 'b', target: `${d.url}b/` },
    ]);
    d.delayMs = 400;
    const inFlight = t.http.post('/relay/a/x').send({}).then((r) => r);
    await eventually(() => d.hits.length === 1);

    t.writeRoutes([
      { name: 'a', target: `${d.url}a-v2/`, timeoutMs: 3000 },
      { name: 'c', target: `${d.url}c/` },
    ]);
    const reload = await t.http.post('/admin/reload');
    expect(reload.status).toBe(200);
    expect(reload.body).toMatchObject({ routes: ['a', 'c'], added: ['c'], changed: ['a'], removed: ['b'], unchanged: [] });

    const first = await inFlight;
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ path: '/a-v1/x' });
    d.delayMs = 0;
    expect((await t.http.post('/relay/a/x').send({})).body).toMatchObject({ path: '/a-v2/x' });
    expect((await t.http.post('/relay/c/y').send({})).status).toBe(200);
    expectProblem(await t.http.post('/relay/b/z').send({}), 404);
    expect(await adminActions(t, 'reload', '')).toBe(1);
    expect(t.logs.some((l) => l.action === 'reload' && l.who === 'loopback')).toBe(true);
  });

  it('keeps a route with an unchanged spec as it was: its breaker, limits and stats carry over', async () => {
    const d = await downstream();
    d.status = 503;
    const routes = [
      { name: 'a', target: d.url, ...noRetry, breaker: { minCalls: 5, consecutiveFailures: 3, openMs: 60000 } },
      { name: 'b', target: d.url },
    ];
    const t = await startRelay(routes);
    for (let i = 0; i < 3; i++) await t.http.get('/relay/a/x');
    expect(expectProblem(await t.http.get('/relay/a/x'), 503).code).toBe('CIRCUIT_OPEN');
    const pipeline = t.relay.routes.get('a');

    t.writeRoutes([...routes, { name: 'c', target: d.url }]);
    expect((await t.http.post('/admin/reload')).body).toMatchObject({ unchanged: ['a', 'b'], added: ['c'] });
    expect(t.relay.routes.get('a')).toBe(pipeline);
    expect(expectProblem(await t.http.get('/relay/a/x'), 503).code).toBe('CIRCUIT_OPEN');
    const stats = (await t.http.get('/stats')).body as { routes: Record<string, { totals: { requests: number } }> };
    expect(stats.routes.a!.totals.requests).toBe(5);
  });

  it('a changed route keeps its operator controls and, with the same target and breaker knobs, its breaker', async () => {
    const d = await downstream();
    const t = await startRelay([{ name: 'a', target: d.url }, { name: 'b', target: d.url }]);
    await t.http.post('/admin/routes/a/breaker').send({ state: 'open' });
    await t.http.post('/admin/routes/b/pause');
    const breaker = t.relay.routes.get('a')!.downstream.breaker;

    t.writeRoutes([{ name: 'a', target: d.url, timeoutMs: 2000 }, { name: 'b', target: d.url, timeoutMs: 2000 }]);
    expect((await t.http.post('/admin/reload')).body).toMatchObject({ changed: ['a', 'b'] });
    expect(t.relay.routes.get('a')!.downstream.breaker).toBe(breaker);
    expect(expectProblem(await t.http.post('/relay/a').send({}), 503).code).toBe('CIRCUIT_OPEN');
    const stats = (await t.http.get('/stats')).body as { routes: Record<string, { control: unknown }> };
    expect(stats.routes.a!.control).toEqual({ breaker: 'open', paused: false });
    expect(stats.routes.b!.control).toEqual({ breaker: 'auto', paused: true });
    expect(d.hits).toEqual([]);
  });

  it("a removed route's queued jobs and DLQ entries get 409 ROUTE_GONE", async () => {
    const d = await downstream();
    d.status = 503;
    const t = await startRelay([{ name: 'a', target: d.url }, { name: 'b', target: d.url, ...noRetry }], { JOB_POLL_MS: '50' });
    const failed = await t.http.get('/relay/b/x');
    expect(failed.status).toBe(502);
    const dlqId = failed.body.dlqId as string;
    expect(dlqId).toEqual(expect.any(String));
    await t.http.post('/admin/routes/b/pause');
    const job = await t.http.post('/relay/b/y').set('Prefer', 'respond-async').send({});
    expect(job.status).toBe(202);

    t.writeRoutes([{ name: 'a', target: d.url }]);
    expect((await t.http.post('/admin/reload')).body).toMatchObject({ removed: ['b'] });
    expect(expectProblem(await t.http.post(`/dlq/${dlqId}/replay`), 409).code).toBe('ROUTE_GONE');
    await eventually(async () => (await t.http.get(job.headers.location!)).body.state === 'dead', 5000);
    expect((await t.http.get(job.headers.location!)).body.lastError).toMatch(/^ROUTE_GONE/);
    expect(d.hits).toEqual(['/x']);
  });

  it('refuses a bad file with 422 and its error lines; the old routes keep working', async () => {
    const d = await downstream();
    const t = await startRelay([{ name: 'a', target: d.url }]);
    t.writeRoutes([{ name: 'a', target: d.url, timeoutMs: -5 }, { name: 'Bad Name', target: d.url }]);
    const refused = await t.http.post('/admin/reload');
    const problem = expectProblem(refused, 422);
    expect(problem.code).toBe('ROUTES_INVALID');
    expect(problem.errors).toEqual(expect.arrayContaining([expect.stringMatching(/timeoutMs/)]));
    t.writeRoutes('{ not json');
    expectProblem(await t.http.post('/admin/reload'), 422);
    expect((await t.http.post('/relay/a').send({})).status).toBe(200);
    expect(t.relay.routes.names).toEqual(['a']);
    expect(await adminActions(t, 'reload_refused', '')).toBe(2);
    expect(await adminActions(t, 'reload', '')).toBe(0);
  });
});

describe('admin protection of the control routes', () => {
  const token = 'control-token-0123456789';

  it('answers 401 without the token and 403 CROSS_SITE to a foreign Origin, changing nothing', async () => {
    const d = await downstream();
    const t = await startRelay([{ name: 'a', target: d.url }], { ADMIN_TOKEN: token });
    expectProblem(await t.http.post('/admin/routes/a/pause'), 401);
    expectProblem(await t.http.post('/admin/reload'), 401);
    const crossSite = await t.http.post('/admin/routes/a/breaker').set('Authorization', `Bearer ${token}`).set('Origin', 'https://evil.example').send({ state: 'open' });
    expect(expectProblem(crossSite, 403).code).toBe('CROSS_SITE');
    expect(t.relay.routes.control('a')).toEqual({ breaker: 'auto', paused: false });

    const ok = await t.http.post('/admin/routes/a/pause').set('Authorization', `Bearer ${token}`);
    expect(ok.status).toBe(200);
    const line = t.logs.find((l) => l.action === 'pause');
    expect(line).toMatchObject({ who: 'token', route: 'a' });
    expect(JSON.stringify(t.logs)).not.toContain(token);
  });
});

describe('SIGHUP', () => {
  it('re-reads ROUTES_FILE in a running relay process', async () => {
    const d = await downstream();
    const dir = mkdtempSync(join(tmpdir(), 'relay-sighup-'));
    open.push({ close: async () => rmSync(dir, { recursive: true, force: true }) });
    const file = join(dir, 'routes.json');
    writeFileSync(file, JSON.stringify({ routes: [{ name: 'a', target: d.url }] }));
    const relay = await startRelayProcess({ ROUTES_FILE: file, SQLITE_PATH: ':memory:' });
    open.push({ close: async () => void (await relay.kill('SIGTERM')) });
    expect((await fetch(`${relay.url}/relay/b/x`, { method: 'POST' })).status).toBe(404);

    writeFileSync(file, JSON.stringify({ routes: [{ name: 'a', target: d.url }, { name: 'b', target: d.url }] }));
    relay.child.kill('SIGHUP');
    await relay.waitForLog((l) => l.action === 'reload' && l.who === 'SIGHUP');
    expect((await fetch(`${relay.url}/relay/b/x`, { method: 'POST' })).status).toBe(200);

    writeFileSync(file, 'routes: [');
    relay.child.kill('SIGHUP');
    await relay.waitForLog((l) => l.action === 'reload_refused');
    expect((await fetch(`${relay.url}/relay/b/x`, { method: 'POST' })).status).toBe(200);
    const metrics = await (await fetch(`${relay.url}/metrics`)).text();
    expect(metrics).toContain('relay_admin_actions_total{action="reload",route=""} 1');
    expect(metrics).toContain('relay_admin_actions_total{action="reload_refused",route=""} 1');
  });
});
