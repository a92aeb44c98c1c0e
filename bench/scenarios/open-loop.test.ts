import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../../src/sim/simulator.js';
import { runOpenLoop } from './open-loop.js';

let sim: Simulator | undefined;

afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

describe('runOpenLoop', () => {
  it('sends exactly rate x duration requests, evenly spaced, and records each answer', async () => {
    sim = await startSimulator({ profile: { failRate: 0, latencyMs: 0, jitterMs: 0, tailRate: 0 } });
    const { outcomes } = await runOpenLoop({ url: `${sim.url}/relay`, rate: 100, durationS: 0.5, timeoutMs: 2_000, connections: 10 });
    expect(outcomes).toHaveLength(50);
    expect(outcomes.every((o) => o.status === 200)).toBe(true);
    expect(outcomes[49]!.sentMs).toBeCloseTo(490);
    expect(sim.counters().received).toBe(50);
  });

  it('keeps sending on schedule while earlier requests hang, and records them as timeouts', async () => {
    sim = await startSimulator({ profile: { failRate: 0, latencyMs: 0, jitterMs: 0, tailRate: 0, hangRate: 1 } });
    const started = Date.now();
    const { outcomes } = await runOpenLoop({ url: `${sim.url}/relay`, rate: 50, durationS: 0.4, timeoutMs: 200, connections: 50 });
    expect(outcomes).toHaveLength(20);
    expect(outcomes.every((o) => o.status === 0 && o.code === 'TIMEOUT')).toBe(true);
    expect(outcomes.every((o) => o.latencyMs >= 195 && o.latencyMs < 1_000)).toBe(true);
    // 20 requests at 50/s plus one timeout, not 20 timeouts in a row.
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('records the code of a problem+json answer and the X-Relay-Upstream header', async () => {
    const server = createServer((req, res) => {
      req.resume();
      res.writeHead(503, { 'content-type': 'application/problem+json', 'x-relay-upstream': 'fallback-1' });
      res.end(JSON.stringify({ type: 'urn:x', status: 503, code: 'CIRCUIT_OPEN' }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const { outcomes } = await runOpenLoop({ url: `http://127.0.0.1:${port}/relay`, rate: 10, durationS: 0.1, timeoutMs: 2_000, connections: 1 });
      expect(outcomes[0]).toMatchObject({ status: 503, code: 'CIRCUIT_OPEN', upstream: 'fallback-1' });
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
