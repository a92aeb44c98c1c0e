/**
 * workers: WORKERS 1 / 5 / 10 / 20 with AIMD_MODE=off, so the number set is
 * the number in flight, against a downstream that serves 10 at a time. Too few
 * workers leave capacity unused; too many push the downstream past its
 * capacity, where it slows down and refuses. A last row puts AIMD back on over
 * the largest ceiling.
 */
import { renderChartStack } from '../demo-storm/svg.js';
import { PALETTE, eachVariant, ms, quantile, type ExperimentOptions, type ExperimentResult } from './report.js';
import { runThroughRelay, type RelayRun } from './relay-run.js';

interface Size {
  variants: { workers: number; aimd: boolean }[];
  capacity: number;
  latencyMs: number;
  ratePerS: number;
  durationS: number;
}

const VARIANTS = [
  { workers: 1, aimd: false },
  { workers: 5, aimd: false },
  { workers: 10, aimd: false },
  { workers: 20, aimd: false },
  { workers: 20, aimd: true },
];
const FULL: Size = { variants: VARIANTS, capacity: 10, latencyMs: 50, ratePerS: 250, durationS: 6 };
const SMOKE: Size = { variants: VARIANTS, capacity: 3, latencyMs: 20, ratePerS: 100, durationS: 0.5 };
const BUCKET_MS = 500;

const variantName = (v: { workers: number; aimd: boolean }) => `${v.workers}${v.aimd ? ' (AIMD on)' : ''}`;

export async function runWorkers(options: ExperimentOptions): Promise<ExperimentResult> {
  const size = options.smoke ? SMOKE : FULL;
  const capacityPerS = Math.round((size.capacity * 1000) / size.latencyMs);
  const runs = await eachVariant(size.variants, options, async (variant) => {
    options.progress(`workers: WORKERS=${variantName(variant)}, ${size.ratePerS} req/s for ${size.durationS} s`);
    const run = await runThroughRelay({
      env: {
        WORKERS: String(variant.workers),
        AIMD_MODE: variant.aimd ? 'enforce' : 'off',
        // Nothing else holds requests back: what is measured is the number of workers.
        BREAKER_MODE: 'off',
        RETRY_BUDGET_MODE: 'off',
        // AIMD's target: twice the downstream's healthy latency (one request over capacity adds a whole latency).
        AIMD_LATENCY_TARGET_MS: String(size.latencyMs * 2),
      },
      sim: { failRate: 0, latencyMs: size.latencyMs, jitterMs: size.latencyMs / 5, tailRate: 0, hangRate: 0, capacity: size.capacity },
      ratePerS: size.ratePerS,
      count: Math.round(size.ratePerS * size.durationS),
      clientTimeoutMs: 20_000,
      connections: 512,
      seed: options.seed,
      warmupCount: options.smoke ? 0 : 50,
    });
    return { name: variantName(variant), run };
  });

  const rows = runs.map(({ name, run }) => {
    const ok = run.shots.filter((s) => s.status >= 200 && s.status < 300);
    const okLatency = ok.map((s) => s.latencyMs);
    const inFlight = run.downstreamInFlight.map((p) => p.y);
    const lastOkS = Math.max(...ok.map((s) => s.sentMs + s.latencyMs)) / 1000;
    return [
      name,
      String(run.shots.length),
      String(ok.length),
      String(run.shots.filter((s) => s.status === 429).length),
      String(run.shots.length - ok.length - run.shots.filter((s) => s.status === 429).length),
      ok.length === 0 ? '0' : (ok.length / lastOkS).toFixed(0),
      ms(quantile(okLatency, 0.5)),
      ms(quantile(okLatency, 0.99)),
      String(run.downstream.received),
      String(run.downstream.answered['503'] ?? 0),
      `${run.downstream.peakInFlight} / ${size.capacity}`,
      (inFlight.reduce((a, b) => a + b, 0) / Math.max(1, inFlight.length)).toFixed(1),
    ];
  });

  const svg = renderChartStack({
    charts: [
      {
        title: `2xx answers per second (offered ${size.ratePerS} req/s)`,
        xLabel: 'time since the load began (s)',
        yLabel: '2xx per second',
        series: runs.map(({ name, run }, i) => ({ name: `WORKERS ${name}`, color: PALETTE[i]!, points: goodput(run) })),
        guides: [{ y: capacityPerS, label: `downstream capacity: ${size.capacity} at ${size.latencyMs} ms = ${capacityPerS}/s` }],
        height: 300,
      },
      {
        title: 'Calls in flight at the downstream',
        xLabel: 'time since the load began (s)',
        yLabel: 'calls in flight',
        series: runs.map(({ name, run }, i) => ({ name: `WORKERS ${name}`, color: PALETTE[i]!, points: run.downstreamInFlight })),
        guides: [{ y: size.capacity, label: `capacity ${size.capacity}` }],
        height: 300,
      },
    ],
  });
  return {
    name: 'workers',
    title: `Workers against a downstream that serves ${size.capacity} at a time`,
    columns: ['WORKERS', 'sent', '2xx', '429', 'other failures', '2xx per s', 'p50 of 2xx (ms)', 'p99 of 2xx (ms)', 'downstream calls', 'downstream 503s', 'peak in flight / capacity', 'mean in flight'],
    rows,
    svg,
    notes: [
      `Downstream: the simulator with capacity ${size.capacity} and ${size.latencyMs} ms latency (~${capacityPerS} req/s at full speed); each call beyond the capacity adds ${size.latencyMs} ms and a 1-in-${size.capacity} chance of a 503 per call over, and beyond ${2 * size.capacity} every call is refused at once.`,
      `Relay: AIMD_MODE=off (last row: enforce), BREAKER_MODE=off and RETRY_BUDGET_MODE=off, so that WORKERS alone limits what is in flight; QUEUE_CAPACITY 100 and RETRY_MAX_ATTEMPTS 4 (defaults).`,
      `Open loop: ${size.ratePerS} req/s for ${size.durationS} s. 2xx per s = 2xx answers / time until the last one.`,
    ],
  };
}

function goodput(run: RelayRun): { x: number; y: number }[] {
  const ends = run.shots.filter((s) => s.status >= 200 && s.status < 300).map((s) => s.sentMs + s.latencyMs);
  const buckets = new Array<number>(Math.max(1, Math.ceil(run.elapsedMs / BUCKET_MS))).fill(0);
  for (const end of ends) {
    const i = Math.floor(end / BUCKET_MS);
    if (i < buckets.length) buckets[i]! += 1;
  }
  return buckets.map((n, i) => ({ x: (i * BUCKET_MS) / 1000, y: (n * 1000) / BUCKET_MS }));
}
