/**
 * The downstream of `npm run demo:dlq`: a notification provider in front of the
 * simulator. It refuses some messages for good (an unsubscribed recipient: 400;
 * an address that is not one: 422), answers 503 for one region while its gateway
 * is down, answers 503 to a message's first calls as many times as the demo
 * planned for it (its transient failures: per message, so that how many calls
 * fail never depends on which concurrent call came first), and hands everything
 * else to the simulator. It logs every call it receives: the log the demo checks
 * the relay's counts against.
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

export interface ProviderOptions {
  /** How many 503s the message with this `seq` gets before it goes through (its transient failures). */
  busyCallsFor: (seq: number) => number;
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

/** The recipient and sequence number of a message body; an edited replay may arrive as a JSON string holding the JSON. */
function messageOf(raw: string): { to: string | null; seq: number | null } {
  try {
    let value: unknown = JSON.parse(raw);
    if (typeof value === 'string') value = JSON.parse(value);
    const { to, seq } = (value ?? {}) as { to?: unknown; seq?: unknown };
    return { to: typeof to === 'string' ? to : null, seq: typeof seq === 'number' ? seq : null };
  } catch {
    return { to: null, seq: null };
  }
}

export async function startProvider(simulator: Simulator, options: ProviderOptions): Promise<Provider> {
  const log: ProviderCall[] = [];
  let regionDown = false;
  let phase = 'start';
  /** 503s already answered per message seq. */
  const busyAnswered = new Map<number, number>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const key = typeof req.headers['idempotency-key'] === 'string' ? req.headers['idempotency-key'] : null;
      const { to, seq } = messageOf(body.toString('utf8'));
      const answer = (status: number, payload: unknown): void => {
        log.push({ key, to, status, phase });
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(payload));
      };
      if (to === null || !to.includes('@')) return answer(422, { error: 'invalid recipient address', to });
      if (to.endsWith(UNSUBSCRIBED_DOMAIN)) return answer(400, { error: 'recipient unsubscribed', to });
      if (regionDown && to.endsWith(FLAKY_REGION_DOMAIN)) return answer(503, { error: 'regional gateway down' });
      if (seq !== null && (busyAnswered.get(seq) ?? 0) < options.busyCallsFor(seq)) {
        busyAnswered.set(seq, (busyAnswered.get(seq) ?? 0) + 1);
        return answer(503, { error: 'provider busy, try again' });
      }
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
