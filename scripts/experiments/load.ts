import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';

/** One client request and what came of it. Times in ms from the run's start. */
export interface Shot {
  /** When the request was due; latency counts from here (no coordinated omission). */
  sentMs: number;
  latencyMs: number;
  /** 0 when no answer came (client timeout or socket error). */
  status: number;
  /** `X-Relay-Attempts`, when the relay sent it. */
  attempts: number | null;
}

export interface OpenLoopOptions {
  /** Full URL, e.g. `http://127.0.0.1:4000/relay`. */
  url: string;
  /** Requests per second, evenly spaced. */
  ratePerS: number;
  /** Exactly this many requests are sent. */
  count: number;
  /** Each request is aborted (status 0) after this long. */
  timeoutMs: number;
  /** Sockets: must cover rate x latency, or the client's own pool queues and the load is no longer open. */
  connections: number;
  /** Extra headers of request `i` (e.g. a unique Idempotency-Key). */
  headers?: (index: number) => Record<string, string>;
}

const BODY = JSON.stringify({ message: 'experiment', padding: 'x'.repeat(200) });
const TICK_MS = 1;

/**
 * Open-loop load, as bench/scenarios/open-loop.ts, plus a header per request
 * and the relay's attempt count: request i is sent when due whatever the
 * earlier ones are doing. Bounded in count and, per request, in time.
 */
export async function runOpenLoop(options: OpenLoopOptions): Promise<{ shots: Shot[]; elapsedMs: number }> {
  if (!(options.ratePerS > 0)) throw new Error(`Expected ratePerS to be a positive number, got ${options.ratePerS}`);
  const target = new URL(options.url);
  const pool = new Pool(target.origin, { connections: options.connections, pipelining: 1 });
  const shots = new Array<Shot>(options.count);
  const pending = new Set<Promise<void>>();
  const intervalMs = 1000 / options.ratePerS;
  const t0 = performance.now();

  const fire = (index: number): void => {
    const sentMs = index * intervalMs;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), Math.max(0, t0 + sentMs + options.timeoutMs - performance.now()));
    const record = (status: number, attempts: number | null): void => {
      shots[index] = { sentMs, latencyMs: performance.now() - t0 - sentMs, status, attempts };
    };
    const done = pool
      .request({
        method: 'POST',
        path: `${target.pathname}${target.search}`,
        headers: { 'content-type': 'application/json', ...options.headers?.(index) },
        body: BODY,
        signal: controller.signal,
      })
      .then(async (res) => {
        await res.body.dump();
        const attempts = Number(res.headers['x-relay-attempts']);
        record(res.statusCode, Number.isInteger(attempts) ? attempts : null);
      })
      .catch(() => record(0, null))
      .finally(() => {
        clearTimeout(timer);
        pending.delete(done);
      });
    pending.add(done);
  };

  let sent = 0;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(options.count, Math.floor((performance.now() - t0) / intervalMs) + 1);
      while (sent < due) fire(sent++);
      if (sent < options.count) return;
      clearInterval(interval);
      resolve();
    };
    const interval = setInterval(tick, TICK_MS);
    tick();
  });
  // Every request has its own timeout, so this settles within timeoutMs.
  await Promise.allSettled([...pending]);
  const elapsedMs = performance.now() - t0;
  await pool.destroy();
  return { shots, elapsedMs };
}
