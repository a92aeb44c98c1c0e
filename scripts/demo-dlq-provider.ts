/**
 * The downstream of `npm run demo:dlq`: a notification provider in front of the
 * flaky simulator. It refuses some messages for good (an unsubscribed recipient:
 * 400; an address that is not one: 422), answers 503 for one region while its
 * gateway is down, and hands everything else to the simulator (which fails a
 * share at random, transiently). It logs every call it receives: the log the
 * demo checks the relay's counts against.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import type { Simulator } from '../src/sim/simulator.js';

export interface ProviderCall {
  key: string | null;
  to: string | null;
  status: number;
  /** Which phase of the story the call came in (set by the demo). */
  phase: string;
}

export interface Provider {
  /** Base URL with a trailing slash, for DOWNSTREAM_URL. */
  url: string;
  log: ProviderCall[];
  setRegionDown(down: boolean): void;
  setPhase(phase: string): void;
  close(): Promise<void>;
}

export const UNSUBSCRIBED_DOMAIN = '@unsubscribed.test';
export const FLAKY_REGION_DOMAIN = '@flaky-region.test';

/** The recipient of a message body; an edited replay may arrive as a JSON string holding the JSON. */
function recipientOf(raw: string): string | null {
  try {
    let value: unknown = JSON.parse(raw);
    if (typeof value === 'string') value = JSON.parse(value);
    const to = (value as { to?: unknown } | null)?.to;
    return typeof to === 'string' ? to : null;
  } catch {
    return null;
  }
}

export async function startProvider(simulator: Simulator): Promise<Provider> {
  const log: ProviderCall[] = [];
  let regionDown = false;
  let phase = 'start';
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const key = typeof req.headers['idempotency-key'] === 'string' ? req.headers['idempotency-key'] : null;
      const to = recipientOf(body.toString('utf8'));
      const answer = (status: number, payload: unknown): void => {
        log.push({ key, to, status, phase });
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(payload));
      };
      if (to === null || !to.includes('@')) return answer(422, { error: 'invalid recipient address', to });
      if (to.endsWith(UNSUBSCRIBED_DOMAIN)) return answer(400, { error: 'recipient unsubscribed', to });
      if (regionDown && to.endsWith(FLAKY_REGION_DOMAIN)) return answer(503, { error: 'regional gateway down' });
      request(`${simulator.url}/`, { method: 'POST', headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) }, body })
        .then(async (simulated) => answer(simulated.statusCode, await simulated.body.json()))
        .catch(() => answer(502, { error: 'simulator unreachable' }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    log,
    setRegionDown: (down) => {
      regionDown = down;
    },
    setPhase: (next) => {
      phase = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
