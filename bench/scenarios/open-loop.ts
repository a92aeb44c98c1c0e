import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { BENCH_BODY } from '../load.js';

/** One client request and what came of it. Times in ms. */
export interface Outcome {
  /** When the request was due, from the run's start (`t0`). Latency counts from here. */
  sentMs: number;
  /** Until the whole answer was read, or until the error or timeout. */
  latencyMs: number;
  /**
   * How late the request left, after its due time: the load generator's own lag.
   * Large values mean the machine, not the server under test, set the pace.
   */
  lateMs: number;
  /** HTTP status; 0 when no answer came (timeout or connection error). */
  status: number;
  /**
   * The relay's problem `code` for a problem+json answer (`CIRCUIT_OPEN`, `QUEUE_FULL`, ...),
   * `TIMEOUT` or the socket error's code when no answer came; otherwise null.
   */
  code: string | null;
  /** The `X-Relay-Upstream` answer header (`primary`, `fallback-1`, ...), when present. */
  upstream: string | null;
}

export interface OpenLoopOptions {
  /** Full URL of the route under test, e.g. `http://127.0.0.1:4000/relay`. */
  url: string;
  /** Requests per second, evenly spaced. */
  rate: number;
  /** The run sends exactly `round(rate * durationS)` requests. */
  durationS: number;
  /** Each request is aborted (and recorded as `TIMEOUT`) after this long. */
  timeoutMs: number;
  /**
   * Sockets to the server. Must cover `rate x latency`, or requests wait in the
   * client's own queue and the load is no longer open.
   */
  connections: number;
  /** The run's time origin (`performance.now()`); request i is due at `t0 + i / rate`. @default now */
  t0?: number;
}

export interface OpenLoopResult {
  /** Every request, in send order. */
  outcomes: Outcome[];
  /** `performance.now()` at the first request's due time. */
  t0: number;
  /** From `t0` until the last outcome was recorded. */
  elapsedMs: number;
}

const TICK_MS = 1;
// Problem bodies are small; a larger body is not one of ours and its code is not needed.
const MAX_PROBLEM_BYTES = 4_096;
const CODE_PATTERN = /"code"\s*:\s*"([A-Z0-9_]+)"/;

/**
 * Open-loop load: a fixed number of requests at a fixed rate, each sent when it
 * is due whatever the earlier ones are doing, so a slow server cannot slow the
 * offered load down (no coordinated omission). Bounded in count and, per
 * request, in time; every outcome is recorded.
 */
export async function runOpenLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  if (!(options.rate > 0)) throw new Error(`Expected rate to be a positive number of requests per second, got ${options.rate}`);
  const target = new URL(options.url);
  const path = `${target.pathname}${target.search}`;
  const total = Math.max(1, Math.round(options.rate * options.durationS));
  const intervalMs = 1000 / options.rate;
  const pool = new Pool(target.origin, { connections: options.connections, pipelining: 1 });
  const outcomes: Outcome[] = new Array<Outcome>(total);
  const pending = new Set<Promise<void>>();
  const t0 = options.t0 ?? performance.now();

  const fire = (index: number): void => {
    const sentMs = index * intervalMs;
    const lateMs = performance.now() - t0 - sentMs;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), Math.max(0, t0 + sentMs + options.timeoutMs - performance.now()));
    const record = (status: number, code: string | null, upstream: string | null): void => {
      outcomes[index] = { sentMs, latencyMs: performance.now() - t0 - sentMs, lateMs, status, code, upstream };
    };
    const done = pool
      .request({ method: 'POST', path, headers: { 'content-type': 'application/json' }, body: BENCH_BODY, signal: controller.signal })
      .then(async (res) => {
        const upstream = headerOf(res.headers['x-relay-upstream']);
        const contentType = headerOf(res.headers['content-type']) ?? '';
        if (contentType.includes('problem+json')) {
          const text = await res.body.text();
          record(res.statusCode, text.length <= MAX_PROBLEM_BYTES ? (CODE_PATTERN.exec(text)?.[1] ?? null) : null, upstream);
        } else {
          await res.body.dump();
          record(res.statusCode, null, upstream);
        }
      })
      .catch((error: unknown) => {
        record(0, controller.signal.aborted ? 'TIMEOUT' : errorCode(error), null);
      })
      .finally(() => {
        clearTimeout(timer);
        pending.delete(done);
      });
    pending.add(done);
  };

  let sent = 0;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(total, Math.floor((performance.now() - t0) / intervalMs) + 1);
      while (sent < due) fire(sent++);
      if (sent < total) return;
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
  return { outcomes, t0, elapsedMs };
}

function headerOf(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  return Array.isArray(value) ? (value[0] ?? null) : value;
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'ERROR';
}
