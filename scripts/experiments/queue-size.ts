/**
 * queue-size: QUEUE_CAPACITY 10 / 100 / 1,000 under a 500 req/s spike that the
 * relay can serve at half that rate. A larger queue turns 429s into waiting,
 * and holds each waiting request's memory until it is served.
 */
import { renderChartStack } from '../demo-storm/svg.js';
import type { Shot } from './load.js';
import { PALETTE, eachVariant, mib, ms, pct, quantile, type ExperimentOptions, type ExperimentResult } from './report.js';
import { runThroughRelay, type RelayRun } from './relay-run.js';

interface Size {
  capacities: number[];
  ratePerS: number;
  durationS: number;
  workers: number;
  latencyMs: number;
}

const FULL: Size = { capacities: [10, 100, 1_000], ratePerS: 500, durationS: 4, workers: 5, latencyMs: 50 };
const SMOKE: Size = { capacities: [10, 100, 1_000], ratePerS: 200, durationS: 0.5, workers: 2, latencyMs: 20 };
const BUCKET_MS = 250;

export async function runQueueSize(options: ExperimentOptions): Promise<ExperimentResult> {
  const size = options.smoke ? SMOKE : FULL;
  const serviceRatePerS = Math.round((size.workers * 1000) / size.latencyMs);
  const runs = await eachVariant(size.capacities, options, async (capacity) => {
    options.progress(`queue-size: QUEUE_CAPACITY=${capacity}, ${size.ratePerS} req/s for ${size.durationS} s`);
    const run = await runThroughRelay({
      env: { QUEUE_CAPACITY: String(capacity), WORKERS: String(size.workers), AIMD_MODE: 'off' },
      sim: { failRate: 0, latencyMs: size.latencyMs, jitterMs: size.latencyMs / 5, tailRate: 0, hangRate: 0 },
      ratePerS: size.ratePerS,
      count: Math.round(size.ratePerS * size.durationS),
      clientTimeoutMs: 20_000,
      connections: 1_500,
      seed: options.seed,
      warmupCount: options.smoke ? 0 : 50,
    });
    return { capacity, run };
  });

  const rows = runs.map(({ capacity, run }) => {
    const ok = run.shots.filter((s) => s.status >= 200 && s.status < 300);
    const rejected = run.shots.filter((s) => s.status === 429).length;
    const other = run.shots.length - ok.length - rejected;
    const okLatency = ok.map((s) => s.latencyMs);
    return [
      capacity.toLocaleString('en-US'),
      String(run.shots.length),
      String(ok.length),
      pct(rejected, run.shots.length),
      String(other),
      ms(quantile(okLatency, 0.5)),
      ms(quantile(okLatency, 0.99)),
      ms(quantile(run.shots.map((s) => s.latencyMs), 0.99)),
      mib(run.idle?.rssBytes ?? Number.NaN),
      mib(Math.max(...run.memory.map((m) => m.rssBytes))),
      mib(run.idle?.heapUsedBytes ?? Number.NaN),
      mib(Math.max(...run.memory.map((m) => m.heapUsedBytes))),
    ];
  });

  const series = (pick: (run: RelayRun) => { x: number; y: number }[]) =>
    runs.map(({ capacity, run }, i) => ({ name: `capacity ${capacity.toLocaleString('en-US')}`, color: PALETTE[i]!, points: pick(run) }));
  const xMax = Math.max(...runs.map(({ run }) => run.elapsedMs)) / 1000;
  const svg = renderChartStack({
    charts: [
      {
        title: `429s per ${BUCKET_MS} ms, ${size.ratePerS} req/s offered, ~${serviceRatePerS} req/s served`,
        xLabel: 'send time (s)',
        yLabel: `429 answers per ${BUCKET_MS} ms`,
        series: series((run) => bucketed(run.shots, (s) => s.status === 429, size.durationS * 1000, (shots) => shots.length)),
        xMax,
        height: 260,
      },
      {
        title: 'Median latency of the requests served (by send time)',
        xLabel: 'send time (s)',
        yLabel: 'p50 latency of 2xx (ms)',
        series: series((run) => bucketed(run.shots, (s) => s.status >= 200 && s.status < 300, size.durationS * 1000, (shots) => quantile(shots.map((s) => s.latencyMs), 0.5))),
        xMax,
        height: 260,
      },
      {
        title: "The relay process's memory",
        xLabel: 'time since the spike began (s)',
        yLabel: 'RSS (MiB)',
        series: series((run) => run.memory.map((m) => ({ x: m.atMs / 1000, y: m.rssBytes / 1_048_576 }))),
        xMax,
        height: 260,
      },
      {
        title: 'V8 heap used by the relay',
        xLabel: 'time since the spike began (s)',
        yLabel: 'heap used (MiB)',
        series: series((run) => run.memory.map((m) => ({ x: m.atMs / 1000, y: m.heapUsedBytes / 1_048_576 }))),
        xMax,
        height: 260,
      },
    ],
  });
  return {
    name: 'queue-size',
    title: `Queue size: QUEUE_CAPACITY under a ${size.ratePerS} req/s spike`,
    columns: ['QUEUE_CAPACITY', 'sent', '2xx', '429 rate', 'other failures', 'p50 of 2xx (ms)', 'p99 of 2xx (ms)', 'p99 of all (ms)', 'idle RSS (MiB)', 'peak RSS (MiB)', 'idle heap (MiB)', 'peak heap (MiB)'],
    rows,
    svg,
    notes: [
      `Open loop: ${size.ratePerS} req/s for ${size.durationS} s after a warm-up of 50 requests (no coordinated omission; latency counts from each request's due time).`,
      `Relay: WORKERS=${size.workers} with AIMD_MODE=off, so the relay serves ~${serviceRatePerS} req/s against a ${size.latencyMs} ms downstream with no failures; everything else at its default (REQUEST_DEADLINE_MS 15 s). A faster relay was tried first (10 workers, 250 req/s): on this shared 2-core machine the relay, the load generator and the simulator could not then keep up with 500 req/s, and the numbers measured the machine.`,
      'Memory is the relay process\'s own (process.memoryUsage() every 100 ms in the child); heap figures move with garbage collection timing from run to run.',
    ],
  };
}

/** One value per bucket of send time, from the shots that match; empty buckets are skipped. */
function bucketed(shots: readonly Shot[], match: (s: Shot) => boolean, untilMs: number, value: (inBucket: Shot[]) => number): { x: number; y: number }[] {
  const buckets = new Map<number, Shot[]>();
  for (let i = 0; i < Math.ceil(untilMs / BUCKET_MS); i++) buckets.set(i, []);
  for (const s of shots) if (match(s)) buckets.get(Math.floor(s.sentMs / BUCKET_MS))?.push(s);
  return [...buckets].flatMap(([i, inBucket]) => {
    const y = value(inBucket);
    return Number.isFinite(y) ? [{ x: (i * BUCKET_MS) / 1000, y }] : [];
  });
}
