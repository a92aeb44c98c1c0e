import { readdirSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../src/observability/logger.js';
import { problemHandler } from '../src/http/problem.js';
import { StatsStreams, statsStreamRouter } from '../src/http/stats-stream.js';
import { startTestRelay, type TestRelay } from './helpers/test-relay.js';

const TOKEN = 'dashboard-test-token-1234';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function relay(env: Record<string, string> = {}): Promise<TestRelay> {
  const t = await startTestRelay({ env });
  cleanups.push(() => t.close());
  return t;
}

/** An open event stream: its raw text so far, and the `stats` events parsed from it. */
interface OpenStream {
  status: number;
  headers: Headers;
  text(): string;
  events(): Array<{ type: string; data: string[] }>;
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  waitFor(check: () => boolean, timeoutMs: number): Promise<void>;
  close(): void;
}

async function openStream(url: string, headers: Record<string, string> = {}): Promise<OpenStream> {
  const abort = new AbortController();
  const res = await fetch(url, { headers, signal: abort.signal });
  let text = '';
  const ended = (async () => {
    if (!res.body) return;
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body) text += decoder.decode(chunk as Uint8Array, { stream: true });
    } catch {
      // Aborted by close().
    }
  })();
  const stream: OpenStream = {
    status: res.status,
    headers: res.headers,
    text: () => text,
    events: () =>
      text
        .split('\n\n')
        .slice(0, -1)
        .map((block) => block.split('\n').filter((line) => !line.startsWith(':')))
        .filter((lines) => lines.length > 0)
        .map((lines) => ({
          type: lines.find((line) => line.startsWith('event: '))?.slice(7) ?? 'message',
          data: lines.filter((line) => line.startsWith('data: ')).map((line) => line.slice(6)),
        })),
    ended,
    async waitFor(check, timeoutMs) {
      const until = Date.now() + timeoutMs;
      while (!check()) {
        if (Date.now() > until) throw new Error(`stream condition not met within ${timeoutMs} ms; got ${JSON.stringify(text.slice(0, 300))}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    close: () => abort.abort(),
  };
  cleanups.push(async () => {
    stream.close();
    await ended;
  });
  return stream;
}

describe('GET /stats/stream', () => {
  it('sends the /stats document as `event: stats` with one data line, at once and then every second', async () => {
    const t = await relay();
    await t.http.post('/relay').send({ hello: 1 }).expect(200);
    const stream = await openStream(`${t.url}/stats/stream`);
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(stream.headers.get('cache-control')).toBe('no-store');
    const startedAt = Date.now();
    await stream.waitFor(() => stream.events().length >= 3, 3_500);
    // First at once, then one a second: three events within about two seconds.
    expect(Date.now() - startedAt).toBeLessThan(3_000);
    for (const event of stream.events()) {
      expect(event.type).toBe('stats');
      expect(event.data).toHaveLength(1);
      const stats = JSON.parse(event.data[0]!) as { totals: { requests: number }; routes: Record<string, unknown>; dlq: { size: number } };
      expect(stats.totals.requests).toBe(1);
      expect(Object.keys(stats.routes)).toEqual(['default']);
      expect(stats.dlq.size).toBe(0);
    }
  });

  it('is an admin route: 401 without the token, never a token from the query string, 403 cross-site', async () => {
    const t = await relay({ ADMIN_TOKEN: TOKEN });
    const refused = await fetch(`${t.url}/stats/stream`);
    expect(refused.status).toBe(401);
    expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect((await fetch(`${t.url}/stats/stream?token=${TOKEN}`)).status).toBe(401);
    expect((await fetch(`${t.url}/stats/stream?access_token=${TOKEN}`)).status).toBe(401);
    const crossSite = await fetch(`${t.url}/stats/stream`, { headers: { authorization: `Bearer ${TOKEN}`, 'sec-fetch-site': 'cross-site' } });
    expect(crossSite.status).toBe(403);
    expect(((await crossSite.json()) as { code: string }).code).toBe('CROSS_SITE');
    const stream = await openStream(`${t.url}/stats/stream`, { authorization: `Bearer ${TOKEN}` });
    expect(stream.status).toBe(200);
    await stream.waitFor(() => stream.events().length >= 1, 2_000);
    expect((await t.http.post('/stats/stream')).status).toBe(405);
  });

  it('serves 16 streams at once and answers the 17th with 503 problem+json until one closes', async () => {
    const t = await relay();
    const streams = await Promise.all(Array.from({ length: 16 }, () => openStream(`${t.url}/stats/stream`)));
    expect(streams.map((s) => s.status)).toEqual(Array(16).fill(200));
    const refused = await fetch(`${t.url}/stats/stream`);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(((await refused.json()) as { code: string }).code).toBe('TOO_MANY_STREAMS');
    streams[0]!.close();
    await streams[0]!.ended;
    await expect.poll(async () => (await openStream(`${t.url}/stats/stream`)).status, { timeout: 2_000 }).toBe(200);
  });

  it('ends every stream when the relay begins shutting down, and opens no new one', async () => {
    const t = await relay();
    const stream = await openStream(`${t.url}/stats/stream`);
    await stream.waitFor(() => stream.events().length >= 1, 2_000);
    t.relay.beginShutdown();
    await stream.ended;
    const after = await fetch(`${t.url}/stats/stream`);
    expect(after.status).toBe(503);
  });

  it('sends a comment line when the keep-alive interval passes, and stops its timers when the last stream goes', async () => {
    let snapshots = 0;
    const statsStreams = new StatsStreams({
      snapshot: async () => ({ n: ++snapshots }),
      intervalMs: 60_000,
      keepAliveMs: 50,
    });
    const app = express();
    app.use(statsStreamRouter({ statsStreams, adminToken: undefined }));
    app.use(problemHandler(createLogger({ level: 'silent' })));
    const server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          statsStreams.close();
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    );
    const { port } = server.address() as AddressInfo;
    const stream = await openStream(`http://127.0.0.1:${port}/stats/stream`);
    await stream.waitFor(() => stream.text().includes(': keep-alive\n\n'), 2_000);
    expect(stream.events()).toEqual([{ type: 'stats', data: ['{"n":1}'] }]);
    stream.close();
    await stream.ended;
    await expect.poll(() => statsStreams.size).toBe(0);
  });
});

describe('GET /dashboard', () => {
  it('serves the page with a self-only Content-Security-Policy and nosniff, to anyone', async () => {
    const t = await relay({ ADMIN_TOKEN: TOKEN });
    const res = await t.http.get('/dashboard');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.headers['content-security-policy']).toMatch(/^default-src 'self'(;|$)/);
    expect(res.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    // The page is told a token is needed, so it asks before its first request.
    expect(res.text).toContain('<meta name="relay-admin-auth" content="token">');
    expect((await t.http.post('/dashboard')).status).toBe(405);
  });

  it('says "loopback" when no ADMIN_TOKEN is set', async () => {
    const t = await relay();
    expect((await t.http.get('/dashboard')).text).toContain('<meta name="relay-admin-auth" content="loopback">');
  });

  it('serves its scripts, styles and icon with their types and the same headers, and nothing else', async () => {
    const t = await relay();
    const js = await t.http.get('/dashboard/app.js');
    expect(js.status).toBe(200);
    expect(js.headers['content-type']).toMatch(/^text\/javascript/);
    expect(js.headers['x-content-type-options']).toBe('nosniff');
    expect((await t.http.get('/dashboard/dashboard.css')).headers['content-type']).toMatch(/^text\/css/);
    expect((await t.http.get('/dashboard/favicon.svg')).headers['content-type']).toMatch(/^image\/svg\+xml/);
    for (const path of ['/dashboard/nope.js', '/dashboard/..%2Fapp.ts', '/dashboard/%2e%2e%2fpackage.json']) {
      const res = await t.http.get(path);
      expect(res.status, path).toBe(404);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    }
  });

  it('has no inline script or style, and names no other host', () => {
    const dir = new URL('../src/dashboard/', import.meta.url);
    const files = readdirSync(dir);
    expect(files).toEqual(expect.arrayContaining(['index.html', 'app.js', 'dashboard.css']));
    const html = readFileSync(new URL('index.html', dir), 'utf8');
    for (const tag of html.match(/<script\b[^>]*>/g) ?? []) expect(tag).toMatch(/\bsrc="\/dashboard\/[\w.-]+\.js"/);
    expect(html).not.toMatch(/<style\b|\sstyle=|\son\w+=/i);
    for (const name of files) {
      const text = readFileSync(new URL(name, dir), 'utf8').replaceAll('http://www.w3.org/2000/svg', '');
      expect(text, name).not.toMatch(/https?:\/\/|\/\/[a-z0-9-]+\.[a-z]/i);
      // Data goes in as text: no HTML parsing of values anywhere in the page's code.
      expect(text, name).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/);
    }
  });
});
