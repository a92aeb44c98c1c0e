/**
 * jitter: 200 clients fail at once against a downstream that serves about 20
 * at a time, and retry with one backoff strategy each run. The downstream's
 * arrivals per 50 ms show the thundering herd (no jitter) and its absence.
 * The strategies are the AWS Architecture Blog's ("Exponential Backoff And
 * Jitter"); full jitter is the relay's own function.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import type { Random } from '../../src/clock.js';
import { fullJitterDelayMs } from '../../src/resilience/backoff.js';
import { startSimulator } from '../../src/sim/simulator.js';
import { renderChartStack } from '../demo-storm/svg.js';
import { PALETTE, eachVariant, ms, perBucket, quantile, type ExperimentOptions, type ExperimentResult } from './report.js';
import { seededRandom } from './seeded-random.js';

export const JITTER_STRATEGIES = ['none', 'full', 'equal', 'decorrelated'] as const;
export type JitterStrategy = (typeof JITTER_STRATEGIES)[number];

export interface BackoffParams {
  baseDelayMs: number;
  maxDelayMs: number;
}

/**
 * The delay before retry n (n = 0 for the first), given the previous delay
 * (decorrelated jitter grows from it rather than from n).
 */
export function backoffDelayMs(strategy: JitterStrategy, retryIndex: number, previousMs: number, p: BackoffParams, random: Random): number {
  const ceiling = Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** retryIndex);
  switch (strategy) {
    case 'none':
      return ceiling;
    case 'full':
      return fullJitterDelayMs(retryIndex, p, random);
    case 'equal':
      return ceiling / 2 + random() * (ceiling / 2);
    case 'decorrelated':
      // sleep = min(cap, random_between(base, previous * 3)), starting from base.
      return Math.min(p.maxDelayMs, p.baseDelayMs + random() * (Math.max(previousMs, p.baseDelayMs) * 3 - p.baseDelayMs));
  }
}

const BUCKET_MS = 50;
const BACKOFF: BackoffParams = { baseDelayMs: 100, maxDelayMs: 3_200 };
const ATTEMPT_TIMEOUT_MS = 5_000;

interface Size {
  clients: number;
  capacity: number;
  latencyMs: number;
  maxAttempts: number;
}

const FULL: Size = { clients: 200, capacity: 20, latencyMs: 50, maxAttempts: 12 };
const SMOKE: Size = { clients: 20, capacity: 4, latencyMs: 20, maxAttempts: 6 };

interface RunOutcome {
  strategy: JitterStrategy;
  arrivalsMs: number[];
  succeeded: number;
  gaveUp: number;
  drainMs: number;
  peakPerBucket: number;
  answered: Record<string, number>;
}

async function runStrategy(strategy: JitterStrategy, size: Size, seed: number): Promise<RunOutcome> {
  const sim = await startSimulator({
    profile: { failRate: 0, latencyMs: size.latencyMs, jitterMs: size.latencyMs / 5, tailRate: 0, hangRate: 0, capacity: size.capacity },
    random: seededRandom(seed),
  });
  const arrivalsMs: number[] = [];
  let t0 = 0;
  // The downstream's own view: when each call reached its server.
  sim.server.prependListener('request', () => arrivalsMs.push(performance.now() - t0));
  const pool = new Pool(sim.url, { connections: size.clients, pipelining: 1 });
  const random = seededRandom(seed + 1);
  try {
    // Open the sockets first, so "failing at once" is not smeared by 200 TCP handshakes.
    await Promise.all(Array.from({ length: size.clients }, () => pool.request({ method: 'GET', path: '/' }).then((r) => r.body.dump())));
    sim.reset();
    arrivalsMs.length = 0;
    t0 = performance.now();
    const client = async (): Promise<boolean> => {
      let previousMs = BACKOFF.baseDelayMs;
      for (let attempt = 0; attempt < size.maxAttempts; attempt++) {
        const status = await pool
          .request({ method: 'POST', path: '/', headers: { 'content-type': 'application/json' }, body: '{}', signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS) })
          .then(async (res) => {
            await res.body.dump();
            return res.statusCode;
          })
          .catch(() => 0);
        if (status >= 200 && status < 300) return true;
        if (attempt + 1 < size.maxAttempts) {
          previousMs = backoffDelayMs(strategy, attempt, previousMs, BACKOFF, random);
          await sleep(previousMs);
        }
      }
      return false;
    };
    const results = await Promise.all(Array.from({ length: size.clients }, client));
    const drainMs = performance.now() - t0;
    const succeeded = results.filter(Boolean).length;
    // The first `clients` arrivals are the calls that failed together, the same for every strategy; the retries are what differ.
    const retries = [...arrivalsMs].sort((a, b) => a - b).slice(size.clients);
    const buckets = perBucket(retries, BUCKET_MS, drainMs);
    return {
      strategy,
      arrivalsMs: [...arrivalsMs],
      succeeded,
      gaveUp: size.clients - succeeded,
      drainMs,
      peakPerBucket: Math.max(0, ...buckets.map((b) => b.y)),
      answered: sim.counters().answered,
    };
  } finally {
    await pool.destroy();
    await sim.close();
  }
}

export async function runJitter(options: ExperimentOptions): Promise<ExperimentResult> {
  const size = options.smoke ? SMOKE : FULL;
  const runs = await eachVariant(JITTER_STRATEGIES, options, (strategy) => {
    options.progress(`jitter: ${strategy}, ${size.clients} clients`);
    return runStrategy(strategy, size, options.seed);
  });
  const xMax = Math.max(...runs.map((r) => r.drainMs)) / 1000;
  const perBucketCapacity = Math.round((size.capacity * BUCKET_MS) / size.latencyMs);
  const svg = renderChartStack({
    charts: runs.map((run, i) => ({
      title: `${run.strategy === 'none' ? 'No jitter' : `${run.strategy[0]!.toUpperCase()}${run.strategy.slice(1)} jitter`}: ${size.clients} clients failing at once`,
      xLabel: 'time since the clients failed (s)',
      yLabel: `arrivals per ${BUCKET_MS} ms`,
      series: [{ name: run.strategy, color: PALETTE[i]!, points: perBucket(run.arrivalsMs, BUCKET_MS, run.drainMs) }],
      guides: [{ y: perBucketCapacity, label: `served at full speed: ~${perBucketCapacity} per ${BUCKET_MS} ms` }],
      xMax,
      height: 260,
    })),
  });
  const rows = runs.map((run) => {
    const calls = run.arrivalsMs.length;
    return [
      run.strategy,
      String(calls),
      (calls / size.clients).toFixed(2),
      String(run.peakPerBucket),
      String(run.answered['503'] ?? 0),
      `${run.succeeded}/${size.clients}`,
      ms(run.drainMs),
      ms(quantile(gaps(run.arrivalsMs), 0.5)),
    ];
  });
  return {
    name: 'jitter',
    title: `Backoff jitter: ${size.clients} clients failing at once`,
    columns: ['strategy', 'downstream calls', 'calls per client', `peak retry arrivals per ${BUCKET_MS} ms`, '503s', 'succeeded', 'time to drain (ms)', 'median gap between arrivals (ms)'],
    rows,
    svg,
    notes: [
      `Downstream: the simulator with capacity ${size.capacity} (beyond it slower and refusing, beyond ${2 * size.capacity} in flight every call refused at once), ${size.latencyMs} ms latency, no random failures.`,
      `Clients: up to ${size.maxAttempts} attempts, base ${BACKOFF.baseDelayMs} ms, cap ${BACKOFF.maxDelayMs} ms; sockets opened before the start.`,
      'Seeded: the simulator and the jitter draw from fixed seeds; the event loop and the kernel still move arrivals by a few ms, so counts shift slightly between runs.',
    ],
  };
}

function gaps(sortedTimes: readonly number[]): number[] {
  const sorted = [...sortedTimes].sort((a, b) => a - b);
  return sorted.slice(1).map((t, i) => t - sorted[i]!);
}
