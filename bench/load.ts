import { randomBytes } from 'node:crypto';
import autocannon from 'autocannon';

/** The numbers one phase reports. Latencies in ms, measured per response (sub-ms resolution). */
export interface PhaseNumbers {
  /** Answers (any status) per second over the measured duration. */
  rps: number;
  requests: number;
  durationS: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  non2xx: number;
  /** Connection errors, timeouts included. */
  errors: number;
  timeouts: number;
  statuses: Record<string, number>;
  /** Requests per second the generator was asked for; null for a closed-loop peak run. */
  targetRps: number | null;
}

export interface LoadOptions {
  url: string;
  durationS: number;
  connections: number;
  /** Requests per second over all connections; unset for as fast as answers come. */
  overallRate?: number;
  /** A unique Idempotency-Key on every request. */
  keyed?: boolean;
}

export const BENCH_BODY = JSON.stringify({ bench: true, n: 1 });

// Enough for 10 minutes at 10k req/s; beyond it samples are dropped, not the run.
const MAX_SAMPLES = 6_000_000;

/** One autocannon run (loopback, pipelining 1) with its own latency record. */
export async function runLoad(options: LoadOptions): Promise<PhaseNumbers> {
  const prefix = randomBytes(6).toString('hex');
  let sequence = 0;
  const request: autocannon.RequestSpec = {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: BENCH_BODY,
    ...(options.keyed
      ? {
          setupRequest: (req: autocannon.RequestSpec) => {
            req.headers = { ...req.headers, 'idempotency-key': `bench-${prefix}-${++sequence}` };
            return req;
          },
        }
      : {}),
  };
  const instance = autocannon({
    url: options.url,
    connections: options.connections,
    pipelining: 1,
    duration: options.durationS,
    timeout: 10,
    requests: [request],
    // autocannon's correction passes 1/rate (seconds) as an interval in ms, adding
    // phantom samples; latencies are taken from 'response' events instead.
    ...(options.overallRate ? { overallRate: options.overallRate, ignoreCoordinatedOmission: true } : {}),
  });
  const samples = new Float64Array(MAX_SAMPLES);
  let count = 0;
  instance.on('response', (_client, _status, _bytes, responseTimeMs) => {
    if (count < MAX_SAMPLES) samples[count++] = responseTimeMs;
  });
  const result = await instance;
  const sorted = samples.subarray(0, count).sort();
  const statuses = Object.fromEntries(Object.entries(result.statusCodeStats).map(([status, { count: n }]) => [status, n]));
  const answered = Object.values(statuses).reduce((sum, n) => sum + n, 0);
  return {
    rps: result.duration > 0 ? answered / result.duration : 0,
    requests: answered,
    durationS: result.duration,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    maxMs: sorted.length === 0 ? 0 : sorted[sorted.length - 1]!,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statuses,
    targetRps: options.overallRate ?? null,
  };
}

/** Nearest-rank quantile of sorted values; 0 when empty. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}
