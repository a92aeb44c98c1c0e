import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { BENCH_BODY, quantile, type PhaseNumbers } from './load.js';

export interface PacedOptions {
  url: string;
  /** Requests per second, spread evenly (open loop). */
  rate: number;
  durationS: number;
  /** Most requests in flight (undici Pool connections); later ones wait their turn. */
  connections: number;
  /** @default 10_000 */
  requestTimeoutMs?: number;
}

const TICK_MS = 1;

/**
 * An open-loop load at a steady rate: request i is due at start + i / rate and
 * its latency counts from then, so a slow answer cannot hold back the next
 * request (no coordinated omission). autocannon's `overallRate` instead lets
 * each connection fire its whole per-second quota back to back at the start of
 * every second, which measures the server at full concurrency half the time.
 */
export async function runPaced(options: PacedOptions): Promise<PhaseNumbers> {
  const target = new URL(options.url);
  const path = `${target.pathname}${target.search}`;
  const timeoutMs = options.requestTimeoutMs ?? 10_000;
  const pool = new Pool(target.origin, { connections: options.connections, pipelining: 1, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  const total = Math.max(1, Math.round(options.rate * options.durationS));
  const intervalMs = 1000 / options.rate;
  const latencies = new Float64Array(total);
  const statuses: Record<string, number> = {};
  let answered = 0;
  let errors = 0;
  let timeouts = 0;
  const inFlight = new Set<Promise<void>>();

  const fire = (intendedAt: number) => {
    const done = pool
      .request({ method: 'POST', path, headers: { 'content-type': 'application/json' }, body: BENCH_BODY })
      .then(async (res) => {
        await res.body.dump();
        latencies[answered++] = performance.now() - intendedAt;
        statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
      })
      .catch((error: unknown) => {
        errors++;
        const code = (error as { code?: unknown }).code;
        if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') timeouts++;
      })
      .finally(() => inFlight.delete(done));
    inFlight.add(done);
  };

  const startedAt = performance.now();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor((performance.now() - startedAt) / intervalMs) + 1);
      while (sent < due) {
        fire(startedAt + sent * intervalMs);
        sent++;
      }
      if (sent >= total) {
        clearInterval(timer);
        resolve();
      }
    }, TICK_MS);
  });
  // Each request is bounded by the pool's timeouts, so this settles.
  await Promise.allSettled([...inFlight]);
  const durationS = (performance.now() - startedAt) / 1000;
  await pool.close();

  const sorted = latencies.subarray(0, answered).sort();
  const non2xx = Object.entries(statuses)
    .filter(([status]) => !status.startsWith('2'))
    .reduce((sum, [, n]) => sum + n, 0);
  return {
    rps: answered / durationS,
    requests: answered,
    durationS,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    maxMs: sorted.length === 0 ? 0 : sorted[sorted.length - 1]!,
    non2xx,
    errors,
    timeouts,
    statuses,
    targetRps: options.rate,
  };
}
