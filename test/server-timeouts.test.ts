import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { useProcessTestScope } from './helpers/process-test-scope.js';
import { startRelayProcess } from './helpers/relay-process.js';

const scope = useProcessTestScope('server-timeouts');

/** Short timeouts so a test sees them pass; node checks them once a second (main.ts). */
const TIMEOUTS = { SERVER_HEADERS_TIMEOUT_MS: '1000', SERVER_REQUEST_TIMEOUT_MS: '2000', SERVER_KEEP_ALIVE_TIMEOUT_MS: '1000' };
/** A trickle lasts this long unless the relay cuts it: far beyond every timeout above. */
const TRICKLE_MS = 12_000;
const TRICKLE_STEP_MS = 200;

interface TrickleEnd {
  afterMs: number;
  received: string;
  /** False when the relay closed the socket before the whole trickle was written. */
  sentAll: boolean;
  /** True when the test gave up on the socket (the relay never closed it). */
  abandoned: boolean;
}

/**
 * A slowloris client on a raw socket: writes `head` at once, then `tail` one
 * byte every 200 ms, and reports when the relay closed the connection and what
 * it said. Bounded: the socket is abandoned TRICKLE_MS + 3 s after it opened.
 */
function trickle(port: number, head: string, tail: string): Promise<TrickleEnd> {
  const socket = connect(port, '127.0.0.1');
  const startedAt = Date.now();
  let received = '';
  let sent = 0;
  let abandoned = false;
  let timer: NodeJS.Timeout | undefined;
  const giveUp = setTimeout(() => {
    abandoned = true;
    socket.destroy();
  }, TRICKLE_MS + 3_000);
  scope.defer(() => {
    clearInterval(timer);
    clearTimeout(giveUp);
    socket.destroy();
  });
  return new Promise<TrickleEnd>((resolve) => {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      received += chunk;
    });
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearInterval(timer);
      clearTimeout(giveUp);
      resolve({ afterMs: Date.now() - startedAt, received, sentAll: sent === tail.length, abandoned });
    });
    socket.once('connect', () => {
      socket.write(head);
      timer = setInterval(() => {
        if (sent >= tail.length || socket.destroyed) return clearInterval(timer);
        socket.write(tail[sent++]!);
      }, TRICKLE_STEP_MS);
    });
  });
}

/** Enough bytes to trickle for TRICKLE_MS. */
const TRICKLE_BYTES = TRICKLE_MS / TRICKLE_STEP_MS;

async function postRelay(url: string, body: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${url}/relay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(10_000) });
  return { status: res.status, text: await res.text() };
}

describe('HTTP server timeouts (a real relay process)', () => {
  it('cuts a client trickling its headers and one trickling its body, while a normal request is served by the one worker', async () => {
    const sim = await scope.simulator();
    const relay = await startRelayProcess({ DOWNSTREAM_URL: `${sim.url}/`, SQLITE_PATH: scope.tempDb(), WORKERS: '1', ...TIMEOUTS });

    const headers = trickle(relay.port, 'POST /relay HTTP/1.1\r\nHost: 127.0.0.1\r\n', `X-Slow: ${'a'.repeat(TRICKLE_BYTES)}\r\n\r\n`);
    const bodyLength = TRICKLE_BYTES;
    const body = trickle(
      relay.port,
      `POST /relay HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${bodyLength}\r\n\r\n`,
      'x'.repeat(bodyLength),
    );

    // While both hold their sockets, the one worker is free and a normal request goes through.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const normal = await postRelay(relay.url, '{"n":1}');
    expect(normal.status).toBe(200);
    const stats = (await (await fetch(`${relay.url}/stats`)).json()) as { queue: { busy: number; depth: number } };
    expect(stats.queue).toMatchObject({ busy: 0, depth: 0 });

    const [cutHeaders, cutBody] = await Promise.all([headers, body]);
    // Cut at its timeout (plus node's one-second check), long before the trickle would have ended.
    expect(cutHeaders).toMatchObject({ sentAll: false, abandoned: false });
    expect(cutHeaders.afterMs).toBeLessThan(6_000);
    expect(cutHeaders.received).toMatch(/^HTTP\/1\.1 408 /);
    expect(cutBody).toMatchObject({ sentAll: false, abandoned: false });
    expect(cutBody.afterMs).toBeGreaterThanOrEqual(1_500);
    expect(cutBody.afterMs).toBeLessThan(7_000);
    expect(cutBody.received).toMatch(/^HTTP\/1\.1 408 /);
    // The body that never arrived reached nobody.
    expect(sim.counters().received).toBe(1);
  }, 30_000);

  it('does not cut a client whose request arrived while the relay waits longer than the request timeout on the downstream', async () => {
    const sim = await scope.simulator();
    const relay = await startRelayProcess({ DOWNSTREAM_URL: `${sim.url}/`, SQLITE_PATH: scope.tempDb(), ...TIMEOUTS });
    sim.script([{ delayMs: 3_500 }]);
    const startedAt = Date.now();
    const answer = await postRelay(relay.url, '{"slow":true}');
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(3_000);
    expect(answer.status).toBe(200);
  }, 30_000);

  it('closes an idle keep-alive connection after SERVER_KEEP_ALIVE_TIMEOUT_MS', async () => {
    const sim = await scope.simulator();
    const relay = await startRelayProcess({ DOWNSTREAM_URL: `${sim.url}/`, SQLITE_PATH: scope.tempDb(), ...TIMEOUTS });
    const idle = trickle(relay.port, 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', '');
    const closed = await idle;
    expect(closed.abandoned).toBe(false);
    expect(closed.received).toMatch(/^HTTP\/1\.1 200 /);
    expect(closed.received).toMatch(/keep-alive/i);
    expect(closed.afterMs).toBeLessThan(5_000);
  }, 30_000);
});
