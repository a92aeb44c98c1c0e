/**
 * timeout: DOWNSTREAM_TIMEOUT_MS 1 / 5 / 10 s over a long-tailed downstream
 * (5% of calls take 3 s, 1% never answer). A short timeout cuts the tail and
 * retries it; a long one waits the tail out and holds a downstream slot and
 * the caller meanwhile.
 */
import { renderChartStack } from '../demo-storm/svg.js';
import { PALETTE, eachVariant, ms, pct, quantile, type ExperimentOptions, type ExperimentResult } from './report.js';
import { runThroughRelay, type RelayRun } from './relay-run.js';

interface Size {
  timeoutsMs: number[];
  ratePerS: number;
  durationS: number;
  tailRate: number;
  tailMs: number;
  hangRate: number;
  deadlineMs: number;
}

const FULL: Size = { timeoutsMs: [1_000, 5_000, 10_000], ratePerS: 50, durationS: 10, tailRate: 0.05, tailMs: 3_000, hangRate: 0.01, deadlineMs: 15_000 };
// Everything a tenth: the same shape in a second and a half.
const SMOKE: Size = { timeoutsMs: [100, 500, 1_000], ratePerS: 40, durationS: 0.5, tailRate: 0.1, tailMs: 300, hangRate: 0.05, deadlineMs: 1_500 };

export async function runTimeout(options: ExperimentOptions): Promise<ExperimentResult> {
  const size = options.smoke ? SMOKE : FULL;
  const runs = await eachVariant(size.timeoutsMs, options, async (timeoutMs) => {
    options.progress(`timeout: DOWNSTREAM_TIMEOUT_MS=${timeoutMs}, ${size.ratePerS} req/s for ${size.durationS} s`);
    const run = await runThroughRelay({
      env: { DOWNSTREAM_TIMEOUT_MS: String(timeoutMs), REQUEST_DEADLINE_MS: String(size.deadlineMs) },
      sim: { failRate: 0, latencyMs: 20, jitterMs: 10, tailRate: size.tailRate, tailMs: size.tailMs, hangRate: size.hangRate },
      ratePerS: size.ratePerS,
      count: Math.round(size.ratePerS * size.durationS),
      clientTimeoutMs: size.deadlineMs + 5_000,
      connections: 512,
      seed: options.seed,
      warmupCount: options.smoke ? 0 : 50,
      keyed: true,
    });
    return { timeoutMs, run };
  });

  const rows = runs.map(({ timeoutMs, run }) => {
    const sent = run.shots.length;
    const ok = run.shots.filter((s) => s.status >= 200 && s.status < 300);
    const calls = run.downstream.received;
    const latency = run.shots.map((s) => s.latencyMs);
    return [
      `${timeoutMs.toLocaleString('en-US')} ms`,
      String(sent),
      pct(ok.length, sent),
      String(run.shots.filter((s) => s.status === 504).length),
      String(run.shots.filter((s) => s.status !== 504 && (s.status < 200 || s.status >= 300)).length),
      ms(quantile(latency, 0.5)),
      ms(quantile(latency, 0.99)),
      ms(Math.max(...latency)),
      String(calls - sent),
      String(calls),
      String(run.downstream.aborted),
      String(run.downstream.peakInFlight),
    ];
  });

  const label = (timeoutMs: number) => `timeout ${timeoutMs >= 1000 ? `${timeoutMs / 1000} s` : `${timeoutMs} ms`}`;
  const svg = renderChartStack({
    charts: [
      {
        title: 'Share of requests answered 2xx within a given time',
        xLabel: 'latency (s)',
        yLabel: 'answered 2xx by then (%)',
        series: runs.map(({ timeoutMs, run }, i) => ({ name: label(timeoutMs), color: PALETTE[i]!, points: cdf(run) })),
        height: 300,
      },
      {
        title: 'Downstream calls in flight (each holds a downstream slot and a relay socket)',
        xLabel: 'time since the load began (s)',
        yLabel: 'calls in flight',
        series: runs.map(({ timeoutMs, run }, i) => ({ name: label(timeoutMs), color: PALETTE[i]!, points: run.downstreamInFlight })),
        height: 300,
      },
    ],
  });
  return {
    name: 'timeout',
    title: 'Attempt timeout over a long-tailed downstream',
    columns: ['DOWNSTREAM_TIMEOUT_MS', 'sent', 'success', '504', 'other failures', 'p50 (ms)', 'p99 (ms)', 'max (ms)', 'retries', 'downstream calls', 'calls abandoned', 'peak in flight'],
    rows,
    svg,
    notes: [
      `Downstream: 20 ± 10 ms, but ${size.tailRate * 100}% of calls take ${size.tailMs.toLocaleString('en-US')} ms and ${size.hangRate * 100}% never answer; no error answers.`,
      `Open loop: ${size.ratePerS} req/s for ${size.durationS} s, each POST with its own Idempotency-Key (without one, a POST that timed out is ambiguous and never retried). REQUEST_DEADLINE_MS=${size.deadlineMs.toLocaleString('en-US')}, RETRY_MAX_ATTEMPTS 4 (default).`,
      'Retries = downstream calls - requests. Calls abandoned = calls the relay gave up on (the simulator saw the socket close before it answered).',
      'Seeded: which calls fall in the tail or hang is the same sequence every run; which request draws them depends on arrival order, so counts move by a few.',
    ],
  };
}

/** Cumulative share of requests answered 2xx by each latency, as chart points (x in seconds, y in %). */
function cdf(run: RelayRun): { x: number; y: number }[] {
  const okLatency = run.shots.filter((s) => s.status >= 200 && s.status < 300).map((s) => s.latencyMs).sort((a, b) => a - b);
  const points = [{ x: 0, y: 0 }];
  okLatency.forEach((latency, i) => points.push({ x: latency / 1000, y: (100 * (i + 1)) / run.shots.length }));
  return points;
}
