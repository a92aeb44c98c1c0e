import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../sim/simulator.js';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AttemptAbortedError, AttemptTimeoutError, ConnectionFailedError, DownstreamClient, ResponseTooLargeError, joinPath } from './client.js';

let sim: Simulator | undefined;
let client: DownstreamClient | undefined;
afterEach(async () => {
  await client?.close();
  await sim?.close();
  sim = undefined;
  client = undefined;
});

const request = (body = '{"x":1}', headers: Record<string, string> = {}) => ({
  method: 'POST',
  path: '',
  body: Buffer.from(body),
  headers: { 'content-type': 'application/json', ...headers },
});

async function setup() {
  sim = await startSimulator({ profile: { failRate: 0, latencyMs: 0, jitterMs: 0, tailRate: 0 } });
  client = new DownstreamClient({ url: `${sim.url}/`, connections: 2 });
  return { sim, client };
}

async function waitFor(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('DownstreamClient', () => {
  it('sends the body bytes unchanged and returns status, content-type and body', async () => {
    const { sim, client } = await setup();
    const body = '{ "b" : [1, 2],\n  "a": "é" }';
    const res = await client.send(request(body, { 'idempotency-key': 'k1' }), { timeoutMs: 1000 });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/application\/json/);
    expect(JSON.parse(res.body.toString()).echo).toEqual(JSON.parse(body));
    expect(sim.counters().lastHeaders?.['idempotency-key']).toBe('k1');
  });

  it('a timeout aborts the real request: the downstream sees the connection close', async () => {
    const { sim, client } = await setup();
    sim.script([{ hang: true }]);
    const started = Date.now();
    await expect(client.send(request(), { timeoutMs: 100 })).rejects.toBeInstanceOf(AttemptTimeoutError);
    expect(Date.now() - started).toBeLessThan(1000);
    await waitFor(() => sim.counters().aborted === 1);
  });

  it('a downstream that sends headers and then stalls the body is a timeout too', async () => {
    const { sim, client } = await setup();
    sim.script([{ delayMs: 2000 }]);
    await expect(client.send(request(), { timeoutMs: 100 })).rejects.toBeInstanceOf(AttemptTimeoutError);
  });

  it("the caller's signal aborts the attempt and is reported as an abort, not a timeout", async () => {
    const { sim, client } = await setup();
    sim.script([{ hang: true }]);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    await expect(client.send(request(), { timeoutMs: 10_000, signal: controller.signal })).rejects.toBeInstanceOf(AttemptAbortedError);
    await waitFor(() => sim.counters().aborted === 1);
  });

  it('reports a refused connection as a connection failure', async () => {
    const dead = await startSimulator();
    const url = dead.url;
    await dead.close();
    client = new DownstreamClient({ url: `${url}/` });
    await expect(client.send(request(), { timeoutMs: 1000 })).rejects.toBeInstanceOf(ConnectionFailedError);
  });

  it('leaves no timer or socket behind: a process that used it exits by itself', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../../test/fixtures/client-no-leak-child.ts', import.meta.url))], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const exitCode = await new Promise<number | null>((resolve) => {
      const killer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(null);
      }, 8000);
      child.on('exit', (code) => {
        clearTimeout(killer);
        resolve(code);
      });
    });
    expect(out).toContain('done');
    expect(exitCode).toBe(0);
  });

  it('a refused connection was not sent; a timeout after the request was written may have been processed', async () => {
    const dead = await startSimulator();
    const url = dead.url;
    await dead.close();
    client = new DownstreamClient({ url: `${url}/` });
    await expect(client.send(request(), { timeoutMs: 1000 })).rejects.toMatchObject({ code: 'CONNECTION_FAILED', sent: 'no' });
    await client.close();
    const { sim, client: live } = await setup();
    sim.script([{ hang: true }]);
    await expect(live.send(request(), { timeoutMs: 100 })).rejects.toMatchObject({ code: 'ATTEMPT_TIMEOUT', sent: 'unknown' });
  });

  it('a request still waiting for a socket when its time runs out was never sent', async () => {
    const { sim } = await setup();
    client = new DownstreamClient({ url: `${sim.url}/`, connections: 1 });
    sim.script([{ hang: true }]);
    const first = client.send(request(), { timeoutMs: 400 }).catch((error: unknown) => error);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await expect(client.send(request(), { timeoutMs: 100 })).rejects.toMatchObject({ code: 'ATTEMPT_TIMEOUT', sent: 'no' });
    expect(await first).toMatchObject({ sent: 'unknown' });
    // The queued request was cut before a byte left: the downstream received only the first.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(sim.counters().received).toBe(1);
  });
});

describe('DownstreamClient against a raw server', () => {
  let server: Server | undefined;
  let seen: Array<{ method: string; url: string; headers: IncomingMessage['headers']; body: Buffer }> = [];
  afterEach(async () => {
    await client?.close();
    client = undefined;
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
    seen = [];
  });

  async function serve(answer: (res: import('node:http').ServerResponse) => void): Promise<string> {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks) });
        answer(res);
      });
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('sends any method to the target path joined with the rest and query, and passes every end-to-end answer header back', async () => {
    const url = await serve((res) => {
      res.setHeader('Set-Cookie', ['a=1', 'b=2']);
      res.setHeader('X-Custom', 'yes');
      res.setHeader('Connection', 'x-hop');
      res.setHeader('X-Hop', 'gone');
      res.writeHead(201).end(Buffer.from([0, 1, 2, 255]));
    });
    client = new DownstreamClient({ url: `${url}/v1?account=7` });
    const res = await client.send({ method: 'PUT', path: '/charges/ch_1?expand=x', headers: { 'content-type': 'application/octet-stream' }, body: Buffer.from([9, 8]) }, { timeoutMs: 1000 });
    expect(seen[0]).toMatchObject({ method: 'PUT', url: '/v1/charges/ch_1?account=7&expand=x' });
    expect([...seen[0]!.body]).toEqual([9, 8]);
    expect(res.status).toBe(201);
    expect([...res.body]).toEqual([0, 1, 2, 255]);
    expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(res.headers['x-custom']).toBe('yes');
    expect(res.headers['x-hop']).toBeUndefined();
    expect(res.headers.connection).toBeUndefined();
  });

  it('cuts off an answer larger than maxResponseBytes, whether announced or streamed', async () => {
    const url = await serve((res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      // No Content-Length: the limit must be enforced while the body streams.
      res.write(Buffer.alloc(600));
      res.end(Buffer.alloc(600));
    });
    client = new DownstreamClient({ url, maxResponseBytes: 1000 });
    await expect(client.send({ method: 'GET', path: '', headers: {}, body: null }, { timeoutMs: 1000 })).rejects.toBeInstanceOf(ResponseTooLargeError);
  });
});

describe('joinPath', () => {
  it.each([
    ['/', '', '', '/'],
    ['/', '', '/v1/charges', '/v1/charges'],
    ['/v1', '', '/charges', '/v1/charges'],
    ['/v1/', '', '/charges?x=1', '/v1/charges?x=1'],
    ['/v1', 'k=1', '?x=2', '/v1?k=1&x=2'],
    ['/v1', '', '/', '/v1'],
  ])('base %s + query %s + rest %s -> %s', (base, query, rest, expected) => {
    expect(joinPath(base, query, rest)).toBe(expected);
  });
});
