import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../../src/sim/simulator.js';
import { createNaiveBaseline, type NaiveBaseline } from './naive-baseline.js';

let sim: Simulator | undefined;
let naive: NaiveBaseline | undefined;
let server: Server | undefined;

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  await naive?.close();
  await sim?.close();
  server = naive = sim = undefined;
});

async function setup(attemptTimeoutMs = 1_000): Promise<string> {
  sim = await startSimulator({ profile: { failRate: 0, latencyMs: 0, jitterMs: 0, tailRate: 0 } });
  naive = createNaiveBaseline({ downstreamUrl: `${sim.url}/`, attemptTimeoutMs, connections: 8 });
  const app = naive.app;
  server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/relay`;
}

const post = (url: string) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"n":1}', signal: AbortSignal.timeout(10_000) });

describe('naive baseline', () => {
  it('sends a failed call again at once, 4 attempts in all, and answers the last failure', async () => {
    const url = await setup();
    sim!.script([{ status: 503 }, { status: 503 }, { status: 503 }, { status: 503 }, { status: 200 }]);
    const res = await post(url);
    expect(res.status).toBe(503);
    expect(res.headers.get('x-attempts')).toBe('4');
    expect(sim!.counters().received).toBe(4);
  });

  it('stops at the first success and passes the downstream body through', async () => {
    const url = await setup();
    sim!.script([{ status: 429 }, { status: 200, body: { ok: 'second' } }]);
    const res = await post(url);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: 'second' });
    expect(sim!.counters().received).toBe(2);
  });

  it('does not retry a 4xx other than 408 and 429', async () => {
    const url = await setup();
    sim!.script([{ status: 404 }]);
    const res = await post(url);
    expect(res.status).toBe(404);
    expect(sim!.counters().received).toBe(1);
  });

  it('answers 504 after every attempt timed out', async () => {
    const url = await setup(50);
    sim!.script([{ hang: true }, { hang: true }, { hang: true }, { hang: true }]);
    const res = await post(url);
    expect(res.status).toBe(504);
    expect(sim!.counters().received).toBe(4);
  });
});
