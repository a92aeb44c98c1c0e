/**
 * `breaker` part (issue 16): the relay AT ITS DEFAULTS (only PORT, HOST,
 * DOWNSTREAM_URL and a fresh SQLITE_PATH are set) beside the naive 4-attempt
 * passthrough, interleaved (ABAB...), each a fresh process with a fresh
 * simulator. 150 req/s open loop from the first second: 8 s of 30% random 503s,
 * an outage (every call 503) of 5.2, 6 or 6.6 s by round, 6 s healthy. The
 * outage lengths put the return just after a failed probe (the worst case, a
 * whole open interval to wait), mid-interval, and shortly before a probe. Per run: breaker transitions
 * during the noisy period (false trips), detection (outage start -> first
 * CIRCUIT_OPEN answer), the downstream's share of the client load from 1 s into
 * the outage to its end, and the time to recover (the downstream's return ->
 * the first 1-s window, in 250-ms steps, with >= 95% success).
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SimProfile } from '../src/sim/simulator.js';
import type { ChildServer } from './child-server.js';
import { verdict } from './report.js';
import { firstAnswerWithCode, recoveryTimeMs, summarize, windowLoad, type CounterSample } from './scenarios/analyze.js';
import { runOpenLoop, type Outcome } from './scenarios/open-loop.js';

export interface BreakerPartDeps {
  start(entry: string, env: Record<string, string>): Promise<ChildServer>;
  stop(child: ChildServer): Promise<void>;
  workDir: string;
  progress(line: string): void;
}

const RATE = 150;
const NOISY_S = 8;
/** One per round. At the defaults probes go ~1.1, 3.1, 5.1, 7.1 s into an outage (open 1 s, then 2 s per failed probe). */
const OUTAGES_S = [5.2, 6, 6.6] as const;
const RECOVERY_S = 6;
const NOISE = 0.3;
const ROUNDS = OUTAGES_S.length;
const durationS = (outageS: number) => NOISY_S + outageS + RECOVERY_S;
const CLIENT_TIMEOUT_MS = 20_000;
const SAMPLE_EVERY_MS = 100;
// Time to arm the step timers and the sampler before the first request is due.
const LEAD_MS = 50;
const PROFILE: Partial<SimProfile> = { failRate: NOISE, failStatus: 503, latencyMs: 5, jitterMs: 2, tailRate: 0, hangRate: 0, capacity: null };
/** Targets of issue 16. */
export const BREAKER_TARGETS = { noisyTransitions: 0, shareFrom1s: 0.1, recoveryMs: 3_000 } as const;
/** Worst case: every run, its start-ups and the last client timeout. */
export const breakerPartMaxS = () => OUTAGES_S.reduce((sum, outageS) => sum + 2 * (durationS(outageS) + CLIENT_TIMEOUT_MS / 1000 + 20), 0);

type Side = 'relay' | 'naive';

interface BreakerRun {
  side: Side;
  round: number;
  outageS: number;
  /** When the outage and the recovery took effect at the simulator, ms from the run's start. */
  outageAtMs: number;
  recoveryAtMs: number;
  /** Relay only: breaker transitions of the primary when the outage began (all during the noisy period). */
  noisyTransitions: number | null;
  noisySuccess: number;
  /** Relay only: outage start -> first CIRCUIT_OPEN answer. */
  detectionMs: number | null;
  /** Downstream calls / client requests, from 1 s into the outage to its end. */
  shareFrom1s: number;
  /** The same over the whole outage. */
  shareOutage: number;
  /** Downstream calls received in each second of the outage. */
  outageCallsPerS: number[];
  recoveryMs: number | null;
  /** Success over the 6 s after the return. */
  recoverySuccess: number;
  /** What the clients got after the return, by status and problem code. */
  afterReturn: Record<string, number>;
  /** Relay only: the primary breaker's state and transitions when the run ended. */
  breakerAtEnd: string | null;
}

export interface BreakerOutcome {
  runs: BreakerRun[];
  met: boolean;
}

export async function runBreakerPart(deps: BreakerPartDeps): Promise<BreakerOutcome> {
  const runs: BreakerRun[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const outageS = OUTAGES_S[round - 1]!;
    for (const side of ['relay', 'naive'] as const) {
      deps.progress(`breaker ${side} #${round}: ${RATE} req/s, ${NOISY_S} s of ${NOISE * 100}% random 503s, ${outageS} s outage, ${RECOVERY_S} s healthy`);
      runs.push(await runSide(deps, side, round, outageS));
    }
  }
  const relays = runs.filter((r) => r.side === 'relay');
  const met = relays.every(
    (r) =>
      r.noisyTransitions === BREAKER_TARGETS.noisyTransitions &&
      r.shareFrom1s <= BREAKER_TARGETS.shareFrom1s &&
      r.recoveryMs !== null &&
      r.recoveryMs <= BREAKER_TARGETS.recoveryMs,
  );
  return { runs, met };
}

let relayCount = 0;

async function runSide(deps: BreakerPartDeps, side: Side, round: number, outageS: number): Promise<BreakerRun> {
  const sim = await deps.start('bench/serve-sim.ts', { BENCH_SIM_PROFILE: JSON.stringify(PROFILE) });
  let server: ChildServer | undefined;
  try {
    const downstreamUrl = `${sim.url}/`;
    server =
      side === 'relay'
        ? await deps.start('bench/serve-relay.ts', {
            BENCH_RELAY_ENV: JSON.stringify({ PORT: '0', HOST: '127.0.0.1', DOWNSTREAM_URL: downstreamUrl, SQLITE_PATH: join(deps.workDir, `breaker-${++relayCount}.db`) }),
          })
        : await deps.start('bench/scenarios/serve-naive.ts', { BENCH_DOWNSTREAM_URL: downstreamUrl, BENCH_ATTEMPT_TIMEOUT_MS: '5000', BENCH_MAX_ATTEMPTS: '4' });
    const relayUrl = server.url;
    await simCall(sim.url, 'POST', 'reset');

    const t0 = performance.now() + LEAD_MS;
    const since = () => performance.now() - t0;
    let noisyTransitions: number | null = null;
    const step = async (atS: number, patch: Partial<SimProfile>, before?: () => Promise<void>): Promise<number> => {
      await sleep(Math.max(0, t0 + atS * 1000 - performance.now()));
      await before?.();
      const from = since();
      await simCall(sim.url, 'PUT', 'profile', patch);
      return (from + since()) / 2;
    };
    const outageAt = step(NOISY_S, { failRate: 1 }, async () => {
      if (side === 'relay') noisyTransitions = await breakerTransitions(relayUrl);
    });
    const recoveryAt = step(NOISY_S + outageS, { failRate: 0 });
    const sampler = sampleReceived(sim.url, since);
    const run = await runOpenLoop({ url: `${relayUrl}/relay`, rate: RATE, durationS: durationS(outageS), timeoutMs: CLIENT_TIMEOUT_MS, connections: 256, t0 });
    const [outageAtMs, recoveryAtMs] = await Promise.all([outageAt, recoveryAt]);
    const received = await sampler.stop();
    const breakerAtEnd = side === 'relay' ? await breakerState(relayUrl) : null;
    return numbers({ side, round, outageS }, run.outcomes, received, outageAtMs, recoveryAtMs, noisyTransitions, breakerAtEnd);
  } finally {
    if (server) await deps.stop(server);
    await deps.stop(sim);
  }
}

function numbers(
  run: Pick<BreakerRun, 'side' | 'round' | 'outageS'>,
  outcomes: Outcome[],
  received: CounterSample[],
  outageAtMs: number,
  recoveryAtMs: number,
  noisyTransitions: number | null,
  breakerAtEnd: string | null,
): BreakerRun {
  const { side, outageS } = run;
  const firstOpen = side === 'relay' ? firstAnswerWithCode(outcomes, 'CIRCUIT_OPEN', outageAtMs) : null;
  const sentIn = (from: number, to: number) => outcomes.filter((o) => o.sentMs >= from && o.sentMs < to);
  const endMs = durationS(outageS) * 1000;
  const callsPerS: number[] = [];
  for (let s = 0; s < Math.ceil(outageS); s++) {
    const w = windowLoad(outcomes, received, outageAtMs + s * 1000, Math.min(recoveryAtMs, outageAtMs + (s + 1) * 1000), 'CIRCUIT_OPEN');
    callsPerS.push(Math.round(w.downstreamReceived));
  }
  const afterReturn: Record<string, number> = {};
  for (const o of sentIn(recoveryAtMs, endMs)) {
    const key = o.code ? `${o.status} ${o.code}` : String(o.status);
    afterReturn[key] = (afterReturn[key] ?? 0) + 1;
  }
  return {
    ...run,
    outageAtMs,
    recoveryAtMs,
    noisyTransitions,
    noisySuccess: summarize(sentIn(0, outageAtMs)).successRate,
    detectionMs: firstOpen === null ? null : firstOpen - outageAtMs,
    shareFrom1s: windowLoad(outcomes, received, outageAtMs + 1000, recoveryAtMs, 'CIRCUIT_OPEN').downstreamShare,
    shareOutage: windowLoad(outcomes, received, outageAtMs, recoveryAtMs, 'CIRCUIT_OPEN').downstreamShare,
    outageCallsPerS: callsPerS,
    recoveryMs: recoveryTimeMs(outcomes, recoveryAtMs, endMs, { bucketMs: 250, holdBuckets: 4, threshold: 0.95 }),
    recoverySuccess: summarize(sentIn(recoveryAtMs, endMs)).successRate,
    afterReturn,
    breakerAtEnd,
  };
}

async function primaryBreaker(relayUrl: string): Promise<{ state?: unknown; transitions?: unknown } | null> {
  try {
    const res = await fetch(`${relayUrl}/stats`, { signal: AbortSignal.timeout(2_000) });
    const stats = (await res.json()) as { breakers?: { primary?: { state?: unknown; transitions?: unknown } } };
    return stats.breakers?.primary ?? null;
  } catch {
    return null;
  }
}

async function breakerTransitions(relayUrl: string): Promise<number | null> {
  const transitions = (await primaryBreaker(relayUrl))?.transitions;
  return typeof transitions === 'number' ? transitions : null;
}

async function breakerState(relayUrl: string): Promise<string | null> {
  const breaker = await primaryBreaker(relayUrl);
  return breaker ? `${String(breaker.state)} after ${String(breaker.transitions)} transitions` : null;
}

/** The simulator's cumulative `received`, read every SAMPLE_EVERY_MS (one read at a time) until stopped. */
function sampleReceived(simUrl: string, since: () => number): { stop(): Promise<CounterSample[]> } {
  const samples: CounterSample[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const before = since();
      try {
        const stats = (await simCall(simUrl, 'GET', 'stats')) as { received: number };
        samples.push({ tMs: (before + since()) / 2, value: stats.received });
      } catch {
        // A missed sample only widens the interpolation.
      }
      await sleep(SAMPLE_EVERY_MS);
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

export function breakerReport(outcome: BreakerOutcome): string {
  const ms = (v: number | null) => (v === null ? '     -' : `${v.toFixed(0).padStart(6)}`);
  const pct = (v: number) => `${(100 * v).toFixed(1).padStart(6)}%`;
  const lines = [
    `Breaker at the defaults: ${RATE} req/s open loop, downstream 5 ms +- 2: ${NOISY_S} s of ${NOISE * 100}% random 503s, then an outage (every call 503) of ${OUTAGES_S.join(' / ')} s by round, then ${RECOVERY_S} s healthy;`,
    `relay at its defaults beside the naive 4-attempt passthrough (ABAB), each a fresh process. detect = outage start -> first CIRCUIT_OPEN answer;`,
    `share = downstream calls / client requests, from 1 s into the outage to its end (whole outage in brackets); recover = the return -> first 1-s window with >= 95% success.`,
    `side    # outage  noisy: trans  success   detect ms      share (whole)   downstream calls per outage second   recover ms  after`,
  ];
  for (const r of outcome.runs) {
    lines.push(
      `${r.side.padEnd(6)} ${String(r.round).padStart(2)} ${`${r.outageS} s`.padStart(6)}  ${String(r.noisyTransitions ?? '-').padStart(11)}  ${pct(r.noisySuccess)}  ${ms(r.detectionMs).padStart(10)}  ${pct(r.shareFrom1s)} (${pct(r.shareOutage)})   ${r.outageCallsPerS.map((n) => String(n).padStart(4)).join(' ').padEnd(35)}  ${ms(r.recoveryMs).padStart(10)}  ${pct(r.recoverySuccess)}`,
    );
  }
  for (const r of outcome.runs.filter((r) => r.side === 'relay')) {
    lines.push(`  relay #${r.round}: answers after the return ${JSON.stringify(r.afterReturn)}; breaker at the end: ${r.breakerAtEnd ?? '-'}`);
  }
  const relays = outcome.runs.filter((r) => r.side === 'relay');
  const spread = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted.length === 0 ? '-' : `median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(sorted[0]! < 1 ? 3 : 0)} (spread ${sorted[0]!.toFixed(sorted[0]! < 1 ? 3 : 0)}-${sorted.at(-1)!.toFixed(sorted[0]! < 1 ? 3 : 0)})`;
  };
  const present = (values: Array<number | null>) => values.filter((v): v is number => v !== null);
  lines.push(
    `relay detection ms: ${spread(present(relays.map((r) => r.detectionMs)))}; share from 1 s: ${spread(relays.map((r) => r.shareFrom1s))}; recovery ms: ${spread(present(relays.map((r) => r.recoveryMs)))}`,
    `relay: 0 transitions while noisy, share <= ${BREAKER_TARGETS.shareFrom1s * 100}% from 1 s in, recovery <= ${BREAKER_TARGETS.recoveryMs} ms, every run: ${verdict(outcome.met)}`,
  );
  return lines.join('\n');
}
