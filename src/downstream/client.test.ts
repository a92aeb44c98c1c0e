import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../sim/simulator.js';
import { AttemptAbortedError, AttemptTimeoutError, ConnectionFailedError, DownstreamClient } from './client.js';

let sim: Simulator | undefined;
let client: DownstreamClient | undefined;
afterEach(async () => {
  await client?.close();
  await sim?.close();
  sim = undefined;
  client = undefined;
});

const request = (body = '{"x":1}', headers: Record<string, string> = {}) => ({
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
});
