/**
 * `npm run demo:storm [-- --requests 2000 --capacity 20 --latency-ms 40 --max-attempts 50 --out demo-out --set KEY=VALUE]`
 *
 * Replays the retry-storm post-mortem on loopback: a restart releases 2,000
 * pending requests at once. First a naive client sends them straight at a
 * downstream of limited capacity, retrying each the moment it fails; then the
 * same burst goes once each through the relay (queue, warm-up rate limit,
 * backoff with jitter, circuit breaker, AIMD) in front of a fresh downstream.
 * Prints both runs side by side and writes demo-out/storm.svg (the downstream's
 * request rate over time) and demo-out/storm.json (the raw series).
 * `--set KEY=VALUE` overrides one relay variable (repeatable), for tuning.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runNaive, runRelay, type RunResult } from './demo-storm/runs.js';
import { formatComparison, summarizeRun, toRateSeries, type RatePoint, type RunSummary } from './demo-storm/series.js';
import { renderChartStack, type LineChartOptions } from './demo-storm/svg.js';

const WATCHDOG_MS = 180_000;
const RUN_TIMEOUT_MS = 45_000;
const SAMPLE_EVERY_MS = 100;

function fail(line: string): never {
  process.stderr.write(`demo-storm: ${line}\n`);
  process.exit(1);
}

function parseOptions() {
  let values;
  try {
    values = parseArgs({
      options: {
        requests: { type: 'string', default: '2000' },
        capacity: { type: 'string', default: '20' },
        'latency-ms': { type: 'string', default: '40' },
        'max-attempts': { type: 'string', default: '50' },
        out: { type: 'string', default: 'demo-out' },
        set: { type: 'string', multiple: true, default: [] },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }).values;
  } catch (error) {
    fail((error as Error).message);
  }
  if (values.help) {
    process.stdout.write('usage: npm run demo:storm -- [--requests 2000] [--capacity 20] [--latency-ms 40] [--max-attempts 50] [--out demo-out] [--set RELAY_VAR=value]...\n');
    process.exit(0);
  }
  const int = (name: string, raw: string, min: number, max: number): number => {
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || value < min || value > max) fail(`Expected --${name} to be a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
    return value;
  };
  const overrides: Record<string, string> = {};
  for (const pair of values.set) {
    const match = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(pair);
    if (!match) fail(`Expected --set to look like RELAY_VARIABLE=value, got ${JSON.stringify(pair)}`);
    overrides[match[1]!] = match[2]!;
  }
  return {
    requests: int('requests', values.requests, 1, 10_000),
    capacity: int('capacity', values.capacity, 1, 10_000),
    // At least 1 ms: the capacity in req/s is capacity / latency.
    latencyMs: int('latency-ms', values['latency-ms'], 1, 10_000),
    maxAttempts: int('max-attempts', values['max-attempts'], 1, 1_000),
    outDir: resolve(values.out),
    overrides,
  };
}

type Options = ReturnType<typeof parseOptions>;

/**
 * The relay's configuration for the demo, derived from the downstream's
 * capacity so that changing `--capacity` keeps the story the same.
 */
function relayEnv(options: Options, capacityRps: number): (downstreamUrl: string) => Record<string, string> {
  const workers = Math.ceil(options.capacity * 1.3);
  return (downstreamUrl) => ({
    SQLITE_PATH: ':memory:',
    LOG_LEVEL: 'error',
    DOWNSTREAM_URL: downstreamUrl,
    // Every pending request is accepted: the queue, not a 429, absorbs the burst.
    QUEUE_CAPACITY: String(options.requests),
    REQUEST_DEADLINE_MS: '30000',
    // More workers than the downstream's capacity: AIMD has to find the limit itself.
    WORKERS: String(workers),
    DOWNSTREAM_CONNECTIONS: String(workers),
    RETRY_MAX_ATTEMPTS: '6',
    RETRY_BASE_DELAY_MS: '100',
    RETRY_MAX_DELAY_MS: '2000',
    // Below the downstream's throughput at full speed, after a warm-up that starts slow.
    RATE_LIMIT_RPS: String(Math.round(capacityRps * 0.8)),
    // A small burst: a full bucket released at once is a little storm of its own.
    RATE_LIMIT_BURST: String(Math.max(1, Math.round(options.capacity / 4))),
    RATE_LIMIT_WARMUP_MS: '3000',
    RATE_LIMIT_WARMUP_START_RPS: String(Math.max(1, Math.round(capacityRps * 0.05))),
    BREAKER_MODE: 'enforce',
    RETRY_BUDGET_MODE: 'enforce',
    AIMD_MODE: 'enforce',
    // Twice the healthy latency: one request over capacity adds a whole latency, so the
    // first overload is seen; a looser target lets AIMD settle above the capacity.
    AIMD_LATENCY_TARGET_MS: String(options.latencyMs * 2),
    // A few round trips: long enough for one overload seen by every call in flight to cut once.
    AIMD_COOLDOWN_MS: String(options.latencyMs * 5),
    ...options.overrides,
  });
}

function outcomeLine(label: string, result: RunResult): string {
  const seen = Object.entries(result.burst.byOutcome)
    .sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))
    .map(([k, n]) => `${k} x${n.toLocaleString('en-US')}`)
    .join(', ');
  const down = Object.entries(result.downstream.byStatus)
    .map(([k, n]) => `${k} x${n.toLocaleString('en-US')}`)
    .join(', ');
  return `${label}: client saw ${seen || 'nothing'}; downstream answered ${down || 'nothing'} (peak ${result.downstream.peakInFlight} in flight)`;
}

function summarize(result: RunResult, requests: number): RunSummary {
  return summarizeRun({
    sent: requests,
    succeeded: result.burst.succeeded,
    drainMs: result.burst.drainMs,
    series: toRateSeries(result.samples),
    downstream: result.downstream,
  });
}

function breakerLine(result: RunResult): string {
  const changes = result.breakerChanges ?? [];
  if (changes.length === 0) return 'relay circuit breaker: stayed closed';
  return `relay circuit breaker: ${changes.map((c) => `${c.from} -> ${c.to} at ${(c.atMs / 1000).toFixed(1)} s (${c.reason})`).join('; ')}`;
}

/** Three panels: both runs to scale, then the relay's run zoomed (rates, and its concurrency limit). */
function charts(options: Options, capacityRps: number, naive: RatePoint[], relay: RatePoint[]): LineChartOptions[] {
  const xMax = Math.max(0, ...naive.map((p) => p.tS), ...relay.map((p) => p.tS));
  // The zoomed panels zoom in time too, and share the relay run's time axis with each other.
  const relayXMax = Math.max(0, ...relay.map((p) => p.tS));
  const xLabel = 'seconds since the burst was released';
  const capacityGuide = {
    y: capacityRps,
    label: `capacity: ${options.capacity} concurrent / ${options.latencyMs} ms = ${Math.round(capacityRps).toLocaleString('en-US')} req/s`,
  };
  const rate = (points: RatePoint[]) => points.map((p) => ({ x: p.tS, y: p.rps }));
  return [
    {
      title: `Requests per second at the downstream after ${options.requests.toLocaleString('en-US')} requests are released at once`,
      xLabel,
      yLabel: `requests/s (${SAMPLE_EVERY_MS} ms samples)`,
      xMax,
      height: 380,
      series: [
        { name: 'naive: immediate retries', color: '#d62728', points: rate(naive) },
        { name: 'through the relay', color: '#1f77b4', points: rate(relay) },
      ],
      guides: [capacityGuide],
    },
    {
      title: 'Through the relay, zoomed: warm-up, then paced below capacity',
      xLabel,
      yLabel: 'requests/s',
      xMax: relayXMax,
      height: 300,
      series: [
        { name: 'requests/s at the downstream', color: '#1f77b4', points: rate(relay) },
        { name: 'of which answered with an error', color: '#ff7f0e', points: relay.map((p) => ({ x: p.tS, y: p.errorRps })) },
      ],
      guides: [capacityGuide],
    },
    {
      title: "The relay's adaptive concurrency limit (AIMD) and the downstream's load",
      xLabel,
      yLabel: 'concurrent requests',
      xMax: relayXMax,
      height: 300,
      series: [
        { name: 'AIMD limit', color: '#9467bd', points: relay.filter((p) => p.relayLimit !== undefined).map((p) => ({ x: p.tS, y: p.relayLimit! })) },
        { name: 'in flight at the downstream', color: '#7f7f7f', points: relay.map((p) => ({ x: p.tS, y: p.inFlight })) },
      ],
      guides: [{ y: options.capacity, label: `capacity: ${options.capacity} concurrent` }],
    },
  ];
}

/** The protections' part of GET /stats, if the relay has them. */
function protectionsLine(stats: unknown): string {
  if (typeof stats !== 'object' || stats === null) return 'relay /stats: unavailable';
  const s = stats as Record<string, unknown>;
  const parts = ['downstream', 'breakers', 'retryBudget', 'rateLimit', 'aimd']
    .filter((k) => s[k] !== undefined)
    .map((k) => `${k} ${JSON.stringify(s[k])}`);
  return `relay /stats after the run: ${parts.join('; ')}`;
}

async function main(): Promise<void> {
  const options = parseOptions();
  let phase = 'starting';
  const watchdog = setTimeout(() => {
    process.stderr.write(`demo-storm: watchdog: still running after ${WATCHDOG_MS / 1000} s (during: ${phase}); giving up\n`);
    process.exit(2);
  }, WATCHDOG_MS);
  watchdog.unref();

  const capacityRps = (options.capacity * 1000) / options.latencyMs;
  // Only overload fails a request: every error in the picture is self-inflicted.
  const profile = { capacity: options.capacity, latencyMs: options.latencyMs, failRate: 0, tailRate: 0, hangRate: 0 };
  const env = relayEnv(options, capacityRps);
  const shownEnv = Object.entries(env('<sim>/'))
    .filter(([k]) => !['SQLITE_PATH', 'LOG_LEVEL', 'DOWNSTREAM_URL'].includes(k))
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  const out = process.stdout;
  out.write(
    `Retry storm replay: ${options.requests.toLocaleString('en-US')} pending requests released at once.\n` +
      `Downstream: capacity ${options.capacity} concurrent at ${options.latencyMs} ms (about ${Math.round(capacityRps).toLocaleString('en-US')} req/s at full speed); ` +
      `beyond it slower and 503s, beyond ${options.capacity * 2} every request is 503 at once.\n\n`,
  );

  phase = 'naive run';
  out.write(`1/2 naive client: straight at the downstream, immediate retry on any failure, up to ${options.maxAttempts} attempts each...\n`);
  const naive = await runNaive({ profile, requests: options.requests, timeoutMs: RUN_TIMEOUT_MS, sampleEveryMs: SAMPLE_EVERY_MS, maxAttempts: options.maxAttempts });

  phase = 'relay run';
  out.write(`2/2 through the relay, one send each (${shownEnv})...\n\n`);
  const relay = await runRelay({ profile, requests: options.requests, timeoutMs: RUN_TIMEOUT_MS, sampleEveryMs: SAMPLE_EVERY_MS, relayEnv: env });

  phase = 'writing the report';
  const naiveSummary = summarize(naive, options.requests);
  const relaySummary = summarize(relay, options.requests);
  out.write(`${formatComparison(naiveSummary, relaySummary)}\n\n`);
  out.write(`${outcomeLine('naive', naive)}\n${outcomeLine('relay', relay)}\n${breakerLine(relay)}\n${protectionsLine(relay.relayStats)}\n`);
  out.write(`(peak rate: busiest ${SAMPLE_EVERY_MS} ms sample, scaled to a second)\n\n`);

  await mkdir(options.outDir, { recursive: true });
  const naiveSeries = toRateSeries(naive.samples);
  const relaySeries = toRateSeries(relay.samples);
  const jsonPath = resolve(options.outDir, 'storm.json');
  const svgPath = resolve(options.outDir, 'storm.svg');
  await writeFile(
    jsonPath,
    `${JSON.stringify(
      {
        generatedAt: new Date().toISOString(),
        options: { requests: options.requests, capacity: options.capacity, latencyMs: options.latencyMs, maxAttempts: options.maxAttempts, sampleEveryMs: SAMPLE_EVERY_MS },
        downstreamProfile: profile,
        relayEnv: env('<sim>/'),
        capacityRps,
        naive: { summary: naiveSummary, client: naive.burst, downstream: naive.downstream, samples: naive.samples, series: naiveSeries },
        relay: {
          summary: relaySummary,
          client: relay.burst,
          downstream: relay.downstream,
          samples: relay.samples,
          series: relaySeries,
          breakerChanges: relay.breakerChanges,
          aimdChanges: relay.aimdChanges,
          stats: relay.relayStats,
        },
      },
      null,
      2,
    )}\n`,
  );
  await writeFile(svgPath, renderChartStack({ charts: charts(options, capacityRps, naiveSeries, relaySeries) }));
  out.write(`raw series: ${jsonPath}\nchart: ${svgPath}\n`);
  clearTimeout(watchdog);
}

main().catch((error: unknown) => {
  // A bad --set value is the user's typo, not a crash: one line, as the relay prints it at start-up.
  const oneLine = (error as { code?: string }).code === 'CONFIG_INVALID';
  process.stderr.write(`demo-storm: ${error instanceof Error ? (oneLine ? error.message : (error.stack ?? error.message)) : String(error)}\n`);
  process.exit(1);
});
