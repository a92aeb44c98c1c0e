import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SimCounters, SimProfile } from '../../src/sim/simulator.js';
import type { ChildServer } from '../child-server.js';
import {
  bucketize,
  firstAnswerWithCode,
  goodputPerS,
  recoveryTimeMs,
  summarize,
  windowLoad,
  type Bucket,
  type ClientSummary,
  type CounterSample,
  type WindowLoad,
} from './analyze.js';
import { runOpenLoop, type Outcome } from './open-loop.js';
import { ATTEMPT_TIMEOUT_MS, CLIENT_TIMEOUT_MS, MAX_ATTEMPTS, WARMUP_MAX_RATE, WARMUP_S, relayEnvFor, type ScenarioSpec } from './scenarios.js';

export type Side = 'relay' | 'naive';

export interface SideResult {
  side: Side;
  client: ClientSummary;
  /** The simulator's counters after the run (reset after the warm-up). */
  downstream: Pick<SimCounters, 'received' | 'answered' | 'aborted' | 'peakInFlight'>;
  /** Requests the downstream received / requests clients sent. */
  amplification: number;
  /** When each profile step really took effect, ms from the run's start. */
  steps: { label: string; atMs: number }[];
  /** The downstream's cumulative `received` and its `inFlight`, read every ~100 ms. */
  downstreamSeries: { tMs: number; received: number; inFlight: number }[];
  /** Relay only: its concurrency limit (AIMD), busy workers, queue depth and primary breaker state, read every ~250 ms. */
  relaySeries?: RelaySample[];
  /** 1-minute load average just before the run: how busy the machine already was. */
  load1mBefore: number;
  /** Client outcomes per 250 ms of send time. */
  buckets: Bucket[];
  /** S3 only. */
  outage?: { breakerOpenedAtMs: number | null; window: WindowLoad; recoveryMs: number | null };
  /**
   * S4 only: 2xx answers per second that arrived during the run, and as a fraction
   * of the downstream's capacity; `steady*` from STEADY_FROM_MS on, once the
   * adaptive limit has come down from WORKERS.
   */
  goodput?: { perS: number; ofCapacity: number; steadyPerS: number; steadyOfCapacity: number };
  warmup: ClientSummary;
  /** The relay's GET /stats after the run. */
  relayStats?: unknown;
  /** Every request, as columns: due time (ms), latency (ms), status, code. */
  outcomes: { sentMs: number[]; latencyMs: number[]; status: number[]; code: (string | null)[] };
}

export interface RelaySample {
  tMs: number;
  limit: number | null;
  busy: number | null;
  depth: number | null;
  breaker: string | null;
}

export interface ScenarioResult {
  spec: ScenarioSpec;
  relayEnv: Record<string, string>;
  sides: SideResult[];
  /**
   * What this machine allows, measured in the same run, beside the targets:
   * S3, the fail-fast p99 of a bare node:http server that refuses at once
   * (serve-floor.ts) at the same rate for as long as the breaker was open;
   * S4, the relay with its concurrency fixed at exactly the downstream's
   * capacity (AIMD off): the goodput of a perfect limit, for AIMD to match.
   */
  reference?: { failFastFloor?: ClientSummary; fixedLimit?: SideResult };
}

export interface ScenarioContext {
  start(entry: string, env: Record<string, string>): Promise<ChildServer>;
  stop(child: ChildServer): Promise<void>;
  /** For the relays' SQLite files. */
  workDir: string;
  progress(line: string): void;
}

const SAMPLE_EVERY_MS = 100;
const RELAY_SAMPLE_EVERY_MS = 250;
const SETTLE_MAX_MS = 5_000;
const BUCKET_MS = 250;
export const STEADY_FROM_MS = 2_000;
// Time to arm the step timers and the sampler before the first request is due.
const LEAD_MS = 50;
// Enough sockets that the client's own pool never queues at these rates; sockets open only when needed.
const MAX_CLIENT_CONNECTIONS = 2_048;

/**
 * Runs each scenario against the relay, then against the naive baseline, each
 * with a fresh simulator. `sides` narrows it (tuning a scenario's relay env).
 */
export async function runScenarios(ctx: ScenarioContext, specs: readonly ScenarioSpec[], sides: readonly Side[] = ['relay', 'naive']): Promise<ScenarioResult[]> {
  const results: ScenarioResult[] = [];
  for (const spec of specs) {
    const done: SideResult[] = [];
    const relay = sides.includes('relay') ? await runSide(ctx, spec, 'relay', null) : undefined;
    if (relay) done.push(relay);
    // The baseline has no breaker: its outage window is the one the relay's breaker opened, for a like-for-like share.
    if (sides.includes('naive')) done.push(await runSide(ctx, spec, 'naive', relay?.outage?.breakerOpenedAtMs ?? null));
    const reference = relay ? await measureReference(ctx, spec, relay) : undefined;
    results.push({ spec, relayEnv: relayEnvFor(spec), sides: done, ...(reference ? { reference } : {}) });
  }
  return results;
}

let runCount = 0;

async function measureReference(ctx: ScenarioContext, spec: ScenarioSpec, relay: SideResult): Promise<ScenarioResult['reference']> {
  if (spec.outage && relay.outage) {
    const window = relay.outage.window;
    const durationS = Math.max(1, (window.toMs - window.fromMs) / 1000);
    ctx.progress(`${spec.id} floor: a bare node:http server refusing at once, ${spec.ratePerS} req/s for ${durationS.toFixed(1)} s`);
    const floor = await ctx.start('bench/scenarios/serve-floor.ts', {});
    try {
      const connections = Math.min(MAX_CLIENT_CONNECTIONS, Math.ceil((spec.ratePerS * CLIENT_TIMEOUT_MS) / 1000));
      const run = await runOpenLoop({ url: `${floor.url}/relay`, rate: spec.ratePerS, durationS, timeoutMs: CLIENT_TIMEOUT_MS, connections });
      return { failFastFloor: summarize(run.outcomes) };
    } finally {
      await ctx.stop(floor);
    }
  }
  if (spec.capacityPerS && spec.profile.capacity !== null) {
    const workers = String(spec.profile.capacity);
    const fixed: ScenarioSpec = { ...spec, relayEnv: { ...spec.relayEnv, AIMD_MODE: 'off', WORKERS: workers, DOWNSTREAM_CONNECTIONS: workers } };
    return { fixedLimit: await runSide(ctx, fixed, 'relay', null) };
  }
  return undefined;
}

async function runSide(ctx: ScenarioContext, spec: ScenarioSpec, side: Side, breakerOpenedAtMs: number | null): Promise<SideResult> {
  ctx.progress(`${spec.id} ${side}: ${spec.ratePerS} req/s for ${spec.durationS} s after a ${WARMUP_S} s warm-up (${spec.title})`);
  const warmProfile: SimProfile = { ...spec.profile, failRate: 0, hangRate: 0 };
  const sim = await ctx.start('bench/serve-sim.ts', { BENCH_SIM_PROFILE: JSON.stringify(warmProfile) });
  let server: ChildServer | undefined;
  try {
    const downstreamUrl = `${sim.url}/`;
    server = side === 'relay' ? await startRelay(ctx, spec, downstreamUrl) : await startNaive(ctx, downstreamUrl);
    const url = `${server.url}/relay`;
    const connections = Math.min(MAX_CLIENT_CONNECTIONS, Math.ceil((spec.ratePerS * CLIENT_TIMEOUT_MS) / 1000));

    const warm = await runOpenLoop({ url, rate: Math.min(spec.ratePerS, WARMUP_MAX_RATE), durationS: WARMUP_S, timeoutMs: CLIENT_TIMEOUT_MS, connections });
    await settle(sim.url);
    await putProfile(sim.url, spec.profile);
    await simCall(sim.url, 'POST', 'reset');

    const t0 = performance.now() + LEAD_MS;
    const since = () => performance.now() - t0;
    const steps: { label: string; atMs: number }[] = [];
    const stepsDone = spec.steps.map(async (step) => {
      await sleep(Math.max(0, t0 + step.atS * 1000 - performance.now()));
      const before = since();
      await putProfile(sim.url, step.patch);
      steps.push({ label: step.label, atMs: (before + since()) / 2 });
    });
    const load1mBefore = loadavg()[0] ?? 0;
    const sampler = sampleDownstream(sim.url, since);
    const relaySampler = side === 'relay' ? sampleRelay(server.url, since) : undefined;
    const run = await runOpenLoop({ url, rate: spec.ratePerS, durationS: spec.durationS, timeoutMs: CLIENT_TIMEOUT_MS, connections, t0 });
    await Promise.all(stepsDone);
    await settle(sim.url);
    const series = await sampler.stop();
    const relaySeries = await relaySampler?.stop();
    const counters = await simStats(sim.url);
    const relayStats = side === 'relay' ? await getJson(`${server.url}/stats`) : undefined;

    const outcomes = run.outcomes;
    const client = summarize(outcomes);
    const endMs = spec.durationS * 1000;
    const result: SideResult = {
      side,
      client,
      downstream: { received: counters.received, answered: counters.answered, aborted: counters.aborted, peakInFlight: counters.peakInFlight },
      amplification: client.sent === 0 ? 0 : counters.received / client.sent,
      steps: steps.sort((a, b) => a.atMs - b.atMs),
      downstreamSeries: series,
      ...(relaySeries ? { relaySeries } : {}),
      load1mBefore,
      buckets: bucketize(outcomes, 0, endMs, BUCKET_MS),
      warmup: summarize(warm.outcomes),
      outcomes: columns(outcomes),
      ...(relayStats === undefined ? {} : { relayStats }),
    };
    if (spec.outage) result.outage = outageNumbers(spec, side, outcomes, series, steps, breakerOpenedAtMs);
    if (spec.capacityPerS) {
      const perS = goodputPerS(outcomes, 0, endMs);
      const steadyPerS = goodputPerS(outcomes, STEADY_FROM_MS, endMs);
      result.goodput = { perS, ofCapacity: perS / spec.capacityPerS, steadyPerS, steadyOfCapacity: steadyPerS / spec.capacityPerS };
    }
    return result;
  } finally {
    if (server) await ctx.stop(server);
    await ctx.stop(sim);
  }
}

function outageNumbers(
  spec: ScenarioSpec,
  side: Side,
  outcomes: Outcome[],
  series: SideResult['downstreamSeries'],
  steps: { label: string; atMs: number }[],
  relayBreakerOpenedAtMs: number | null,
): NonNullable<SideResult['outage']> {
  const outage = spec.outage!;
  const fromMs = steps.find((s) => s.label === 'outage')?.atMs ?? outage.fromS * 1000;
  const toMs = steps.find((s) => s.label === 'recovery')?.atMs ?? outage.toS * 1000;
  const breakerOpenedAtMs = side === 'relay' ? firstAnswerWithCode(outcomes, 'CIRCUIT_OPEN', fromMs) : null;
  const openedAt = side === 'relay' ? breakerOpenedAtMs : relayBreakerOpenedAtMs;
  // Without a breaker that opened, the window starts a second into the outage: past the first, unavoidable failures.
  const windowFromMs = openedAt !== null && openedAt < toMs ? openedAt : fromMs + 1_000;
  const received: CounterSample[] = series.map((s) => ({ tMs: s.tMs, value: s.received }));
  return {
    breakerOpenedAtMs,
    window: windowLoad(outcomes, received, windowFromMs, toMs, 'CIRCUIT_OPEN'),
    recoveryMs: recoveryTimeMs(outcomes, toMs, spec.durationS * 1000, { bucketMs: BUCKET_MS }),
  };
}

async function startRelay(ctx: ScenarioContext, spec: ScenarioSpec, downstreamUrl: string): Promise<ChildServer> {
  const env = {
    ...relayEnvFor(spec),
    PORT: '0',
    HOST: '127.0.0.1',
    DOWNSTREAM_URL: downstreamUrl,
    SQLITE_PATH: join(ctx.workDir, `scenario-relay-${++runCount}.db`),
  };
  return ctx.start('bench/serve-relay.ts', { BENCH_RELAY_ENV: JSON.stringify(env) });
}

function startNaive(ctx: ScenarioContext, downstreamUrl: string): Promise<ChildServer> {
  return ctx.start('bench/scenarios/serve-naive.ts', {
    BENCH_DOWNSTREAM_URL: downstreamUrl,
    BENCH_ATTEMPT_TIMEOUT_MS: String(ATTEMPT_TIMEOUT_MS),
    BENCH_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
  });
}

/** Reads the simulator's counters every SAMPLE_EVERY_MS until stopped (one read at a time). */
function sampleDownstream(simUrl: string, since: () => number): { stop(): Promise<SideResult['downstreamSeries']> } {
  const series: SideResult['downstreamSeries'] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const before = since();
      try {
        const counters = await simStats(simUrl);
        series.push({ tMs: (before + since()) / 2, received: counters.received, inFlight: counters.inFlight });
      } catch {
        // A missed sample only widens the interpolation; the run goes on.
      }
      await sleep(SAMPLE_EVERY_MS);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return series;
    },
  };
}

/**
 * Reads the relay's GET /stats every RELAY_SAMPLE_EVERY_MS until stopped: what
 * its protections were doing, for the raw numbers. Fields that are absent
 * (an older relay) are null.
 */
function sampleRelay(relayUrl: string, since: () => number): { stop(): Promise<RelaySample[]> } {
  const samples: RelaySample[] = [];
  let running = true;
  const num = (v: unknown) => (typeof v === 'number' ? v : null);
  const loop = (async () => {
    while (running) {
      const before = since();
      const stats = (await getJson(`${relayUrl}/stats`)) as {
        queue?: { concurrencyLimit?: unknown; busy?: unknown; depth?: unknown };
        breakers?: { primary?: { state?: unknown } };
      };
      const state = stats.breakers?.primary?.state;
      samples.push({
        tMs: (before + since()) / 2,
        limit: num(stats.queue?.concurrencyLimit),
        busy: num(stats.queue?.busy),
        depth: num(stats.queue?.depth),
        breaker: typeof state === 'string' ? state : null,
      });
      await sleep(RELAY_SAMPLE_EVERY_MS);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return samples;
    },
  };
}

/** Waits until the downstream has nothing in flight (at most SETTLE_MAX_MS), so the counters are final. */
async function settle(simUrl: string): Promise<void> {
  const deadline = performance.now() + SETTLE_MAX_MS;
  while (performance.now() < deadline) {
    if ((await simStats(simUrl)).inFlight <= 0) return;
    await sleep(SAMPLE_EVERY_MS);
  }
}

function simStats(simUrl: string): Promise<SimCounters> {
  return simCall(simUrl, 'GET', 'stats') as Promise<SimCounters>;
}

function putProfile(simUrl: string, patch: Partial<SimProfile>): Promise<unknown> {
  return simCall(simUrl, 'PUT', 'profile', patch);
}

async function simCall(simUrl: string, method: string, route: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${simUrl}/__sim/${route}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    signal: AbortSignal.timeout(5_000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`simulator ${method} /__sim/${route} answered ${res.status}: ${text}`);
  return text === '' ? null : (JSON.parse(text) as unknown);
}

async function getJson(url: string): Promise<unknown> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    return await res.json();
  } catch (error) {
    return { error: (error as Error).message };
  }
}

function columns(outcomes: Outcome[]): SideResult['outcomes'] {
  const round = (n: number, digits: number) => Math.round(n * 10 ** digits) / 10 ** digits;
  return {
    sentMs: outcomes.map((o) => round(o.sentMs, 1)),
    latencyMs: outcomes.map((o) => round(o.latencyMs, 2)),
    status: outcomes.map((o) => o.status),
    code: outcomes.map((o) => o.code),
  };
}
