/**
 * `npm run bench`: two parts, loopback only, each server in its own process.
 * - throughput: the simulator hit directly, a bare Express + undici passthrough
 *   and the relay; fails if any phase saw a non-2xx answer or an error.
 * - scenarios: the storm scenarios S1-S5 (bench/scenarios/), each against the
 *   relay and against a naive retrying passthrough; fails if a relay target is
 *   missed.
 * - routes: CPU time of the relay per request on a named route with a
 *   credential against the `default` route (bench/routes-overhead.ts); fails if
 *   routed/default is over 1.05 or any answer was not 2xx.
 * - breaker: the relay at its defaults beside the naive client through 30% random
 *   503s, an outage and a recovery (bench/breaker-outage.ts): detection time,
 *   the downstream's share during the outage, time to recover (issue 16);
 *   printed only, not in the JSON file.
 * - fleet: 3 relays sharing one route's protections on Redis (bench/fleet-bench.ts,
 *   issue 14): fleet rate, breakers opening together, Redis lost, cost; printed only.
 * - tracing: S1 with tracing off against on, exporting to a loopback collector
 *   (bench/tracing-bench.ts, issue 12): CPU per request and throughput; printed only.
 * - bulkhead: synchronous p99 idle and with 2,000 jobs queued, JOB_MAX_SHARE 0.5
 *   against 1 (bench/bulkhead-bench.ts, issue 13); fails if the default share
 *   lets p99 pass 1.5x idle or the jobs do not drain; printed only.
 * Prints the tables and writes the raw numbers of each to bench/out/<date>.json.
 * Exits 1 (after printing) if a part failed.
 *
 * - coldstart, passthrough: the relay at its defaults (bench/defaults-bench.ts): a
 *   fresh process at 30% random 503s from its first second, and S1 against the
 *   bare passthrough (ABABAB); fail if their targets are missed.
 * Flags: --only=<part> for one of: throughput, scenarios, routes, coldstart, passthrough, breaker, fleet, tracing, bulkhead (default: all, in that order).
 * Env: BENCH_DURATION_S (8), BENCH_WARMUP_S (2), BENCH_CONNECTIONS (50),
 * BENCH_INFO_LOGS (1; 0 skips the relay phase with per-request info logs),
 * BENCH_CPU_PROF_DIR (profile the relay child of the "relay" peak phase there).
 * BENCH_SCENARIOS (all; e.g. `S3,S4` runs only those). The other env does not
 * apply to the scenarios, whose settings are in bench/scenarios/scenarios.ts.
 * BENCH_ROUTES_REQUESTS (5000) and BENCH_ROUTES_BLOCKS (10, at least 6): requests
 * per block and blocks per side of the routes part.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { breakerPartMaxS, breakerReport, runBreakerPart, type BreakerOutcome } from './breaker-outage.js';
import { bulkheadPartMaxS, bulkheadReport, runBulkheadPart, type BulkheadOutcome } from './bulkhead-bench.js';
import { fleetPartMaxS, fleetReport, runFleetPart, type FleetOutcome } from './fleet-bench.js';
import { spawnServer, type ChildServer } from './child-server.js';
import { BENCH_BODY, runLoad, type LoadOptions, type PhaseNumbers } from './load.js';
import { runPaced } from './paced-load.js';
import { routesPartMaxS, TARGET_ROUTED_OVER_DEFAULT, routesReport, runRoutesPart, type RoutesOutcome } from './routes-overhead.js';
import { coldStartReport, defaultsPartMaxS, passthroughReport, runColdStart, runPassthrough, type ColdStartOutcome, type PassthroughOutcome } from './defaults-bench.js';
import { TARGET_ADDED_P99_MS, TARGET_RELAY_OVER_BARE, failures, phaseTable, verdict, type PhaseRecord, type Targets } from './report.js';
import { runScenarios, type ScenarioResult } from './scenarios/run-scenarios.js';
import { runTracingPart, tracingPartMaxS, tracingReport } from './tracing-bench.js';
import { evaluateTargets, scenarioReport, type ScenarioTarget } from './scenarios/scenario-report.js';
import { SCENARIOS } from './scenarios/scenarios.js';

const PARTS = ['throughput', 'scenarios', 'routes', 'coldstart', 'passthrough', 'breaker', 'fleet', 'tracing', 'bulkhead'] as const;
type Part = (typeof PARTS)[number];

function partsFromArgs(args: string[]): Part[] {
  let only: Part[] = [...PARTS];
  for (const arg of args) {
    const match = /^--only=(.*)$/.exec(arg);
    if (!match || !(PARTS as readonly string[]).includes(match[1]!)) {
      process.stderr.write(`bench: Expected --only= one of ${PARTS.join(', ')}, got ${JSON.stringify(arg)}\n`);
      process.exit(1);
    }
    only = [match[1] as Part];
  }
  return only;
}

function intFromEnv(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    process.stderr.write(`bench: Expected ${name} to be a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}\n`);
    process.exit(1);
  }
  return value;
}

const DURATION_S = intFromEnv('BENCH_DURATION_S', 8, 1, 60);
const WARMUP_S = intFromEnv('BENCH_WARMUP_S', 2, 0, 30);
const CONNECTIONS = intFromEnv('BENCH_CONNECTIONS', 50, 1, 1_000);
const INFO_LOGS = intFromEnv('BENCH_INFO_LOGS', 1, 0, 1) === 1;
const CPU_PROF_DIR = process.env.BENCH_CPU_PROF_DIR || undefined;
const ROUTES_REQUESTS = intFromEnv('BENCH_ROUTES_REQUESTS', 5_000, 100, 100_000);
const ROUTES_BLOCKS = intFromEnv('BENCH_ROUTES_BLOCKS', 10, 6, 50);
/** Sized so that the bench's connections never see a 429: every request gets a worker at once. */
const RELAY_WORKERS = 64;
const RELAY_QUEUE_CAPACITY = 1_000;
const DOWNSTREAM_CONNECTIONS = 64;
/**
 * Every protection stays enforced, so its per-request cost is measured, but the
 * rate limit is set out of reach: its defaults (500 req/s, ramping from 5 req/s
 * over the first 10 s of a process) would cap a fresh relay near 300 req/s and
 * measure the limit, not the relay's overhead.
 */
const RELAY_PROTECTION_ENV: Readonly<Record<string, string>> = Object.freeze({
  BREAKER_MODE: 'enforce',
  RETRY_BUDGET_MODE: 'enforce',
  AIMD_MODE: 'enforce',
  RATE_LIMIT_MODE: 'enforce',
  RATE_LIMIT_RPS: '1000000',
  RATE_LIMIT_BURST: '1000000',
  RATE_LIMIT_WARMUP_MS: '0',
});

const PARTS_TO_RUN = partsFromArgs(process.argv.slice(2));
const SCENARIOS_TO_RUN = scenariosFromEnv(process.env.BENCH_SCENARIOS);

function scenariosFromEnv(raw: string | undefined): typeof SCENARIOS {
  if (raw === undefined || raw.trim() === '') return SCENARIOS;
  const ids = raw.split(',').map((id) => id.trim().toUpperCase());
  const unknown = ids.filter((id) => !SCENARIOS.some((spec) => spec.id === id));
  if (unknown.length > 0) {
    process.stderr.write(`bench: Expected BENCH_SCENARIOS to list some of ${SCENARIOS.map((s) => s.id).join(',')}, got ${JSON.stringify(raw)}\n`);
    process.exit(1);
  }
  return SCENARIOS.filter((spec) => ids.includes(spec.id));
}

const PHASE_COUNT = 9 + (INFO_LOGS ? 1 : 0);
// Phases, warm-ups, one start-up per server, slack for a loaded machine.
const THROUGHPUT_WATCHDOG_S = PHASE_COUNT * (DURATION_S + WARMUP_S) + 120;
// Per side: its run, a warm-up, two process start-ups and stops, the last client timeout, settling.
// Two sides per scenario, a third relay run for S4's fixed-limit reference, a short floor run for S3.
const SCENARIOS_WATCHDOG_S = SCENARIOS_TO_RUN.reduce((sum, spec) => sum + (spec.capacityPerS ? 3 : 2) * (spec.durationS + 30) + (spec.outage ? 30 : 0), 0);
const WATCHDOG_MS =
  ((PARTS_TO_RUN.includes('throughput') ? THROUGHPUT_WATCHDOG_S : 0) +
    (PARTS_TO_RUN.includes('scenarios') ? SCENARIOS_WATCHDOG_S : 0) +
    (PARTS_TO_RUN.includes('routes') ? routesPartMaxS(ROUTES_BLOCKS) : 0) +
    (PARTS_TO_RUN.includes('breaker') ? breakerPartMaxS() : 0) +
    (PARTS_TO_RUN.includes('bulkhead') ? bulkheadPartMaxS() : 0) +
    (PARTS_TO_RUN.includes('fleet') ? fleetPartMaxS() : 0) +
    (PARTS_TO_RUN.includes('tracing') ? tracingPartMaxS() : 0) +
    defaultsPartMaxS(PARTS_TO_RUN.includes('coldstart'), PARTS_TO_RUN.includes('passthrough'))) *
  1000;

const live = new Set<ChildServer>();
const watchdog = setTimeout(() => {
  process.stderr.write(`bench: gave up after ${WATCHDOG_MS / 1000} s; stopping the servers\n`);
  void Promise.allSettled([...live].map((child) => child.stop(2_000))).then(() => process.exit(1));
}, WATCHDOG_MS);
watchdog.unref();

const workDir = mkdtempSync(join(tmpdir(), 'relay-bench-'));
const records: PhaseRecord[] = [];
const progress = (line: string) => process.stderr.write(`bench: ${line}\n`);

async function start(entry: string, env: Record<string, string>, nodeArgs: string[] = [], compiled = false): Promise<ChildServer> {
  const child = await spawnServer({ entry, env, nodeArgs, compiled });
  live.add(child);
  return child;
}

async function stop(child: ChildServer): Promise<void> {
  await child.stop();
  live.delete(child);
}

async function measure(name: string, kind: PhaseRecord['kind'], options: LoadOptions): Promise<PhaseRecord> {
  progress(`${name}: ${WARMUP_S} s warm-up + ${DURATION_S} s${options.overallRate ? ` at ${options.overallRate} req/s` : ''}`);
  return record(name, kind, (durationS) => runLoad({ ...options, durationS }));
}

/** Half load from the open-loop generator: the same rate, spread evenly. */
async function measurePaced(name: string, url: string, rate: number): Promise<PhaseRecord> {
  progress(`${name}: ${WARMUP_S} s warm-up + ${DURATION_S} s at ${rate} req/s, paced`);
  return record(name, 'half', (durationS) => runPaced({ url, rate, durationS, connections: CONNECTIONS }));
}

async function record(name: string, kind: PhaseRecord['kind'], run: (durationS: number) => Promise<PhaseNumbers>): Promise<PhaseRecord> {
  const warmup = WARMUP_S > 0 ? await run(WARMUP_S) : null;
  const load1mBefore = loadavg()[0] ?? 0;
  const numbers = await run(DURATION_S);
  const phase: PhaseRecord = { name, kind, numbers, warmup, load1mBefore };
  records.push(phase);
  return phase;
}

let relayCount = 0;
/** `target`: DOWNSTREAM_URL, or nothing when the part gives the relay a ROUTES_FILE. */
function relayEnv(target: { DOWNSTREAM_URL: string } | Record<string, never>, logLevel: string): Record<string, string> {
  relayCount++;
  return {
    PORT: '0',
    HOST: '127.0.0.1',
    ...target,
    SQLITE_PATH: join(workDir, `relay-${relayCount}.db`),
    LOG_LEVEL: logLevel,
    WORKERS: String(RELAY_WORKERS),
    QUEUE_CAPACITY: String(RELAY_QUEUE_CAPACITY),
    DOWNSTREAM_CONNECTIONS: String(DOWNSTREAM_CONNECTIONS),
    ...RELAY_PROTECTION_ENV,
  };
}

/** One relay process per phase (or pair of half-load phases): a fresh store, and a profile that covers one phase only. */
async function withRelay<T extends PhaseRecord | PhaseRecord[]>(
  downstreamUrl: string,
  run: (url: string) => Promise<T>,
  extra: { logFile?: string; cpuProfDir?: string } = {},
): Promise<T> {
  const env: Record<string, string> = { BENCH_RELAY_ENV: JSON.stringify(relayEnv({ DOWNSTREAM_URL: downstreamUrl }, extra.logFile ? 'info' : 'warn')) };
  if (extra.logFile) env.BENCH_LOG_FILE = extra.logFile;
  const nodeArgs = extra.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${extra.cpuProfDir}`] : [];
  const relay = await start('bench/serve-relay.ts', env, nodeArgs);
  try {
    const result = await run(relay.url);
    // Lifetime counters of this relay process, so after the last of its phases.
    const stats = await relayStats(relay.url);
    for (const phase of Array.isArray(result) ? result : [result]) phase.relayStats = stats;
    return result;
  } finally {
    await stop(relay);
  }
}

async function relayStats(url: string): Promise<unknown> {
  try {
    const res = await fetch(`${url}/stats`, { signal: AbortSignal.timeout(5_000) });
    return await res.json();
  } catch (error) {
    return { error: (error as Error).message };
  }
}

interface ThroughputOutcome {
  halfRate: number;
  targets: Targets;
  failed: string[];
}

async function runThroughput(startedAt: Date): Promise<ThroughputOutcome> {
  const sim = await start('bench/serve-sim.ts', {});
  const downstreamUrl = `${sim.url}/`;
  const peak = { durationS: DURATION_S, connections: CONNECTIONS };
  try {
    const direct = await measure('direct (simulator)', 'peak', { ...peak, url: `${sim.url}/relay` });

    // Kept for the half-load phases too; idle in between.
    const bareServer = await start('bench/serve-bare.ts', { BENCH_DOWNSTREAM_URL: downstreamUrl, BENCH_CONNECTIONS: String(DOWNSTREAM_CONNECTIONS) });
    const bare = await measure('bare passthrough', 'peak', { ...peak, url: `${bareServer.url}/relay` });

    const relay = await withRelay(downstreamUrl, (url) => measure('relay', 'peak', { ...peak, url: `${url}/relay` }), CPU_PROF_DIR ? { cpuProfDir: CPU_PROF_DIR } : {});
    await withRelay(downstreamUrl, (url) => measure('relay + Idempotency-Key', 'peak', { ...peak, keyed: true, url: `${url}/relay` }));
    if (INFO_LOGS) {
      const logFile = join(workDir, 'relay-info.log');
      await withRelay(downstreamUrl, (url) => measure('relay + info logs (file)', 'peak', { ...peak, url: `${url}/relay` }), { logFile });
    }

    const halfRate = Math.max(1, Math.round(relay.numbers.rps / 2));
    const half = { ...peak, overallRate: halfRate };
    const directHalf = await measure('direct, autocannon rate', 'half', { ...half, url: `${sim.url}/relay` });
    const directPaced = await measurePaced('direct, paced', `${sim.url}/relay`, halfRate);
    const barePaced = await measurePaced('bare, paced', `${bareServer.url}/relay`, halfRate);
    await stop(bareServer);
    const [relayHalf, relayPaced] = await withRelay(downstreamUrl, async (url): Promise<[PhaseRecord, PhaseRecord]> => [
      await measure('relay, autocannon rate', 'half', { ...half, url: `${url}/relay` }),
      await measurePaced('relay, paced', `${url}/relay`, halfRate),
    ]);

    const addedP99Ms = relayHalf.numbers.p99Ms - directHalf.numbers.p99Ms;
    const addedP99PacedMs = relayPaced.numbers.p99Ms - directPaced.numbers.p99Ms;
    const bareAddedP99PacedMs = barePaced.numbers.p99Ms - directPaced.numbers.p99Ms;
    const targets: Targets = {
      relayOverBare: relay.numbers.rps / bare.numbers.rps,
      relayOverDirect: relay.numbers.rps / direct.numbers.rps,
      throughputMet: relay.numbers.rps >= TARGET_RELAY_OVER_BARE * bare.numbers.rps,
      addedP99Ms,
      addedP99PacedMs,
      bareAddedP99PacedMs,
      latencyMet: addedP99Ms <= TARGET_ADDED_P99_MS,
      latencyPacedMet: addedP99PacedMs <= TARGET_ADDED_P99_MS,
    };
    const failed = failures(records);
    printReport(startedAt, halfRate, targets);
    return { halfRate, targets, failed };
  } finally {
    await stop(sim);
  }
}

interface ScenariosOutcome {
  results: ScenarioResult[];
  targets: ScenarioTarget[];
}

async function runScenarioPart(): Promise<ScenariosOutcome> {
  const results = await runScenarios({ start, stop, workDir, progress }, SCENARIOS_TO_RUN);
  const targets = evaluateTargets(results);
  process.stdout.write(`${scenarioReport(results, targets)}\n`);
  return { results, targets };
}

async function runRoutes(): Promise<RoutesOutcome> {
  const outcome = await runRoutesPart({ start, stop, workDir, progress, relayEnv: relayEnv({}, 'warn') }, ROUTES_REQUESTS, ROUTES_BLOCKS);
  process.stdout.write(`${routesReport(outcome)}\n`);
  return outcome;
}

async function main(): Promise<number> {
  const startedAt = new Date();
  let throughput: ThroughputOutcome | undefined;
  let scenarios: ScenariosOutcome | undefined;
  let routes: RoutesOutcome | undefined;
  if (PARTS_TO_RUN.includes('throughput')) throughput = await runThroughput(startedAt);
  if (PARTS_TO_RUN.includes('scenarios')) {
    if (throughput) process.stdout.write('\n');
    scenarios = await runScenarioPart();
  }
  if (PARTS_TO_RUN.includes('routes')) {
    if (throughput || scenarios) process.stdout.write('\n');
    routes = await runRoutes();
  }
  let coldstart: ColdStartOutcome | undefined;
  let passthrough: PassthroughOutcome | undefined;
  if (PARTS_TO_RUN.includes('coldstart')) {
    coldstart = await runColdStart({ start, stop, workDir, progress });
    process.stdout.write(`\n${coldStartReport(coldstart)}\n`);
  }
  if (PARTS_TO_RUN.includes('passthrough') || PARTS_TO_RUN.includes('tracing')) {
    progress('building the servers with tsc into dist-bench/ (npm run build:bench), to measure the relay as it ships');
    execFileSync('npm', ['run', '--silent', 'build:bench'], { cwd: fileURLToPath(new URL('..', import.meta.url)), stdio: ['ignore', 'ignore', 'inherit'] });
  }
  if (PARTS_TO_RUN.includes('passthrough')) {
    passthrough = await runPassthrough({ start: (entry, env) => start(entry, env, [], true), stop, workDir, progress });
    process.stdout.write(`\n${passthroughReport(passthrough)}\n`);
  }
  let breaker: BreakerOutcome | undefined;
  if (PARTS_TO_RUN.includes('breaker')) {
    breaker = await runBreakerPart({ start, stop, workDir, progress });
    process.stdout.write(`\n${breakerReport(breaker)}\n`);
  }
  let fleet: FleetOutcome | undefined;
  if (PARTS_TO_RUN.includes('fleet')) {
    fleet = await runFleetPart({ start, stop, workDir, progress });
    process.stdout.write(`\n${fleetReport(fleet)}\n`);
  }
  let tracingFailed = false;
  if (PARTS_TO_RUN.includes('tracing')) {
    const tracing = await runTracingPart({ start: (entry, env) => start(entry, env, [], true), stop, workDir, progress });
    process.stdout.write(`\n${tracingReport(tracing)}\n`);
    tracingFailed = tracing.failed.length > 0;
  }
  let bulkhead: BulkheadOutcome | undefined;
  if (PARTS_TO_RUN.includes('bulkhead')) {
    bulkhead = await runBulkheadPart({ start, stop, workDir, progress });
    process.stdout.write(`\n${bulkheadReport(bulkhead)}\n`);
  }
  const outFile = writeJson(startedAt, throughput, scenarios, routes, { coldstart, passthrough });
  process.stdout.write(`\nraw numbers: ${outFile}\n`);
  let exitCode = 0;
  if (throughput && throughput.failed.length > 0) {
    process.stderr.write(`bench: FAILED: the throughput targets require 0% failures\n${throughput.failed.map((f) => `  ${f}`).join('\n')}\n`);
    exitCode = 1;
  }
  const missed = scenarios?.targets.filter((t) => !t.relay.met) ?? [];
  if (missed.length > 0) {
    process.stderr.write(`bench: FAILED: the relay missed ${missed.length} scenario target(s)\n${missed.map((t) => `  ${t.scenario} ${t.label}: ${t.relay.value}`).join('\n')}\n`);
    exitCode = 1;
  }
  if (routes && (routes.failed.length > 0 || !routes.met)) {
    const why = routes.failed.length > 0 ? 'the routes part requires a 2xx answer to every request' : `routed/default CPU per request ${routes.routedOverDefault?.toFixed(3)} is over ${TARGET_ROUTED_OVER_DEFAULT}`;
    process.stderr.write(`bench: FAILED: ${why}\n${routes.failed.map((f) => `  ${f}`).join('\n')}\n`);
    exitCode = 1;
  }
  if (coldstart && !coldstart.met) {
    process.stderr.write('bench: FAILED: the cold start at the defaults missed its targets (see the table)\n');
    exitCode = 1;
  }
  if (passthrough && !passthrough.met) {
    process.stderr.write(`bench: FAILED: S1 at the defaults missed its targets${passthrough.failed.length > 0 ? `: ${passthrough.failed.join('; ')}` : ''}\n`);
    exitCode = 1;
  }
  if (fleet && !fleet.met) {
    process.stderr.write('bench: FAILED: the fleet on Redis missed an issue 14 target (see the table)\n');
    exitCode = 1;
  }
  if (breaker && !breaker.met) {
    process.stderr.write('bench: FAILED: the breaker at the defaults missed an issue 16 target (see the table)\n');
    exitCode = 1;
  }
  if (bulkhead && !bulkhead.met) {
    process.stderr.write('bench: FAILED: with a job backlog, synchronous p99 left 1.5x its idle value or the jobs did not drain (issue 13, see the table)\n');
    exitCode = 1;
  }
  if (tracingFailed) {
    process.stderr.write('bench: FAILED: the tracing part needs a 2xx answer to every request and spans at the collector (see the table)\n');
    exitCode = 1;
  }
  return exitCode;
}

function printReport(startedAt: Date, halfRate: number, targets: Targets): void {
  const peak = records.filter((r) => r.kind === 'peak');
  const half = records.filter((r) => r.kind === 'half');
  const stats = (name: string) => records.find((r) => r.kind === 'peak' && r.name === name)?.relayStats as
    | { downstream?: { amplification?: number; retries?: number }; idempotency?: { hits?: number } }
    | undefined;
  const lines = [
    `Resilient Relay bench, ${startedAt.toISOString()}, node ${process.version}, ${cpus().length} CPUs, loopback only`,
    `autocannon: ${CONNECTIONS} connections, pipelining 1, POST ${BENCH_BODY}, ${DURATION_S} s per phase after a ${WARMUP_S} s warm-up`,
    'downstream: the simulator in its own process (failRate 0, latency 0 ms, no tail, no hangs)',
    `relay: LOG_LEVEL=warn unless noted, WORKERS=${RELAY_WORKERS}, QUEUE_CAPACITY=${RELAY_QUEUE_CAPACITY}, DOWNSTREAM_CONNECTIONS=${DOWNSTREAM_CONNECTIONS}, SQLite store on a temp file`,
    `       protections enforced, rate limit out of reach: ${Object.entries(RELAY_PROTECTION_ENV).map(([k, v]) => `${k}=${v}`).join(' ')}`,
    `the load generator, the downstream and the server under test are separate processes but share ${cpus().length} cores; load1m = machine load just before the phase`,
    '',
    `Peak (closed loop, ${CONNECTIONS} connections)`,
    phaseTable(peak, false),
    '',
    `relay / bare   = ${targets.relayOverBare.toFixed(2)}   target >= ${TARGET_RELAY_OVER_BARE}  ${verdict(targets.throughputMet)}`,
    `relay / direct = ${targets.relayOverDirect.toFixed(2)}`,
    `relay /stats after its phase: retries ${String(stats('relay')?.downstream?.retries)}, amplification ${String(stats('relay')?.downstream?.amplification)} (over 1 only by requests cut off when a run ends);`,
    `keyed phase: idempotency hits ${String(stats('relay + Idempotency-Key')?.idempotency?.hits)} (0 = every key was unique)`,
    '',
    `Half load: ${halfRate} req/s = half the relay's peak, from autocannon overallRate (each connection fires its`,
    `per-second quota back to back, so bursts at full concurrency) and from a paced open-loop generator (even spacing,`,
    'latency counted from the intended send time)',
    phaseTable(half, true),
    '',
    `added p99 = relay p99 - direct p99, autocannon rate = ${targets.addedP99Ms.toFixed(2)} ms   target <= ${TARGET_ADDED_P99_MS} ms  ${verdict(targets.latencyMet)}`,
    `added p99 = relay p99 - direct p99, paced          = ${targets.addedP99PacedMs.toFixed(2)} ms   target <= ${TARGET_ADDED_P99_MS} ms  ${verdict(targets.latencyPacedMet)}`,
    `            bare p99 - direct p99, paced           = ${targets.bareAddedP99PacedMs.toFixed(2)} ms   (the floor for any Express relay on this machine)`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** One file per run; a part that did not run is absent. The throughput keys keep their old places. */
function writeJson(
  startedAt: Date,
  throughput: ThroughputOutcome | undefined,
  scenarios: ScenariosOutcome | undefined,
  routes: RoutesOutcome | undefined,
  defaults: { coldstart: ColdStartOutcome | undefined; passthrough: PassthroughOutcome | undefined },
): string {
  const outDir = fileURLToPath(new URL('./out/', import.meta.url));
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  const machine = { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model, loadavgAtEnd: loadavg() };
  const throughputPart = throughput
    ? {
        settings: { durationS: DURATION_S, warmupS: WARMUP_S, connections: CONNECTIONS, pipelining: 1, body: BENCH_BODY, halfRate: throughput.halfRate, relay: { workers: RELAY_WORKERS, queueCapacity: RELAY_QUEUE_CAPACITY, downstreamConnections: DOWNSTREAM_CONNECTIONS, logLevel: 'warn', env: RELAY_PROTECTION_ENV }, simulator: { failRate: 0, latencyMs: 0, jitterMs: 0, tailRate: 0, hangRate: 0 } },
        phases: records,
        targets: throughput.targets,
        failures: throughput.failed,
      }
    : {};
  const scenarioPart = scenarios ? { scenarios: { results: scenarios.results, targets: scenarios.targets } } : {};
  const routesPart = routes ? { routes: { ...routes, relay: { workers: RELAY_WORKERS, queueCapacity: RELAY_QUEUE_CAPACITY, downstreamConnections: DOWNSTREAM_CONNECTIONS, logLevel: 'warn', env: RELAY_PROTECTION_ENV } } } : {};
  writeFileSync(file, `${readableJson({ startedAt: startedAt.toISOString(), parts: PARTS_TO_RUN, machine, ...throughputPart, ...scenarioPart, ...routesPart, ...defaults })}\n`);
  return file;
}

/**
 * Indented JSON, except that long arrays (the scenarios' per-request outcomes
 * and time series) stay on one line each: indented, they would be most of a
 * file of hundreds of thousands of lines.
 */
function readableJson(value: unknown): string {
  const long: unknown[] = [];
  const marker = (i: number) => `\u0000long-array-${i}\u0000`;
  const indented = JSON.stringify(value, (_key, v: unknown) => (Array.isArray(v) && v.length > 20 ? marker(long.push(v) - 1) : v), 2);
  return indented.replace(/"\\u0000long-array-(\d+)\\u0000"/g, (_match, i: string) => JSON.stringify(long[Number(i)]));
}

let exitCode = 1;
try {
  exitCode = await main();
} catch (error) {
  process.stderr.write(`bench: FAILED: ${(error as Error).stack ?? String(error)}\n`);
} finally {
  await Promise.allSettled([...live].map((child) => child.stop(2_000)));
  rmSync(workDir, { recursive: true, force: true });
  clearTimeout(watchdog);
}
process.exit(exitCode);

