/**
 * Two parts that hold the relay AT ITS DEFAULTS (only PORT, HOST,
 * DOWNSTREAM_URL and a fresh SQLITE_PATH are set; LOG_LEVEL stays `info`):
 *
 * - `coldstart`: a fresh relay process, 150 req/s open loop from its first
 *   second at a downstream failing 30% of calls at random (503), beside the
 *   naive 4-attempt passthrough in the same run (ABAB). Per 1-s window:
 *   success, 429s; over the run: amplification (downstream calls / request).
 * - `passthrough`: S1, a healthy downstream, closed loop with 32 connections,
 *   the relay against a bare Express + undici passthrough, three blocks each,
 *   interleaved (ABABAB): the median ratio of throughput and its spread, the
 *   p50 the relay adds, and each server's CPU time per request. Both servers
 *   run from the tsc build in dist-bench/ under plain node, as the relay ships.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import type { ChildServer } from './child-server.js';
import { runLoad, type PhaseNumbers } from './load.js';
import { verdict } from './report.js';
import { runOpenLoop, type Outcome } from './scenarios/open-loop.js';

export interface DefaultsPartDeps {
  start(entry: string, env: Record<string, string>): Promise<ChildServer>;
  stop(child: ChildServer): Promise<void>;
  workDir: string;
  progress(line: string): void;
}

const COLD_RATE = 150;
const COLD_DURATION_S = 10;
const COLD_FAIL_RATE = 0.3;
const COLD_ROUNDS = 2;
const CLIENT_TIMEOUT_MS = 20_000;
const SIM_LATENCY = { latencyMs: 20, jitterMs: 5 };
/** Targets of issue 11. */
export const COLD_TARGETS = { windowSuccess: 0.99, amplification: 1.5, tooMany: 0 } as const;
export const PASS_CONNECTIONS = 32;
export const PASS_BLOCKS = 3;
export const PASS_BLOCK_S = 6;
export const PASS_WARMUP_S = 2;
export const PASS_TARGETS = { overBare: 0.9, addedP50Ms: 1 } as const;
/** Worst case: every block's run, warm-up and process start-ups. */
export const defaultsPartMaxS = (coldstart: boolean, passthrough: boolean) =>
  (coldstart ? COLD_ROUNDS * 2 * (COLD_DURATION_S + CLIENT_TIMEOUT_MS / 1000 + 20) : 0) +
  (passthrough ? PASS_BLOCKS * 2 * (PASS_BLOCK_S + PASS_WARMUP_S + 20) : 0);

let relayCount = 0;
export function defaultRelayEnv(workDir: string, downstreamUrl: string): Record<string, string> {
  relayCount++;
  return { PORT: '0', HOST: '127.0.0.1', DOWNSTREAM_URL: downstreamUrl, SQLITE_PATH: join(workDir, `defaults-${relayCount}.db`) };
}

interface ColdSide {
  side: 'relay' | 'naive';
  round: number;
  /** Per 1-s window from the first request: sent, 2xx, 429s. */
  windows: Array<{ sent: number; ok: number; tooMany: number }>;
  sent: number;
  ok: number;
  downstreamCalls: number;
  amplification: number;
  statuses: Record<string, number>;
}

export interface ColdStartOutcome {
  sides: ColdSide[];
  met: boolean;
}

export async function runColdStart(deps: DefaultsPartDeps): Promise<ColdStartOutcome> {
  const sides: ColdSide[] = [];
  for (let round = 1; round <= COLD_ROUNDS; round++) {
    for (const side of ['relay', 'naive'] as const) {
      deps.progress(`coldstart ${side} #${round}: ${COLD_RATE} req/s for ${COLD_DURATION_S} s from the process's first second, ${COLD_FAIL_RATE * 100}% random 503s`);
      sides.push(await coldSide(deps, side, round));
    }
  }
  const relays = sides.filter((s) => s.side === 'relay');
  const met = relays.every(
    (s) => s.windows.slice(1).every((w) => w.sent === 0 || w.ok / w.sent >= COLD_TARGETS.windowSuccess) && s.amplification <= COLD_TARGETS.amplification && s.windows.every((w) => w.tooMany === 0),
  );
  return { sides, met };
}

async function coldSide(deps: DefaultsPartDeps, side: 'relay' | 'naive', round: number): Promise<ColdSide> {
  const sim = await deps.start('bench/serve-sim.ts', { BENCH_SIM_PROFILE: JSON.stringify({ failRate: COLD_FAIL_RATE, failStatus: 503, ...SIM_LATENCY, tailRate: 0, hangRate: 0, capacity: null }) });
  try {
    const downstreamUrl = `${sim.url}/`;
    const server =
      side === 'relay'
        ? await deps.start('bench/serve-relay.ts', { BENCH_RELAY_ENV: JSON.stringify(defaultRelayEnv(deps.workDir, downstreamUrl)) })
        : await deps.start('bench/scenarios/serve-naive.ts', { BENCH_DOWNSTREAM_URL: downstreamUrl, BENCH_ATTEMPT_TIMEOUT_MS: '5000', BENCH_MAX_ATTEMPTS: '4' });
    try {
      // From the moment it listens: no warm-up phase, which is the point.
      const run = await runOpenLoop({ url: `${server.url}/relay`, rate: COLD_RATE, durationS: COLD_DURATION_S, timeoutMs: CLIENT_TIMEOUT_MS, connections: 256, t0: performance.now() });
      const counters = (await (await fetch(`${sim.url}/__sim/stats`, { signal: AbortSignal.timeout(5_000) })).json()) as { received: number };
      const windows = perSecond(run.outcomes, COLD_DURATION_S);
      const ok = run.outcomes.filter((o) => o.status >= 200 && o.status < 300).length;
      const statuses: Record<string, number> = {};
      for (const o of run.outcomes) statuses[o.status] = (statuses[o.status] ?? 0) + 1;
      return { side, round, windows, sent: run.outcomes.length, ok, downstreamCalls: counters.received, amplification: counters.received / run.outcomes.length, statuses };
    } finally {
      await deps.stop(server);
    }
  } finally {
    await deps.stop(sim);
  }
}

function perSecond(outcomes: readonly Outcome[], durationS: number): ColdSide['windows'] {
  const windows = Array.from({ length: durationS }, () => ({ sent: 0, ok: 0, tooMany: 0 }));
  for (const o of outcomes) {
    const w = windows[Math.floor(o.sentMs / 1000)];
    if (!w) continue;
    w.sent++;
    if (o.status >= 200 && o.status < 300) w.ok++;
    if (o.status === 429) w.tooMany++;
  }
  return windows;
}

export function coldStartReport(outcome: ColdStartOutcome): string {
  const pct = (ok: number, sent: number) => (sent === 0 ? '   -  ' : `${((100 * ok) / sent).toFixed(1).padStart(5)}%`);
  const lines = [
    `Cold start at the defaults: ${COLD_RATE} req/s open loop from the first second of a fresh process, downstream 20 ms +- 5 with ${COLD_FAIL_RATE * 100}% random 503s`,
    `(naive = 4 attempts, no protection, same run, ABAB). 4 attempts succeed 1 - 0.3^4 = 99.19% on average: about 1.2 failures`,
    `in a window of 150 requests, and a window with 2 or more (below 99%) has a chance of about 1 in 3 for any client.`,
    `side    #  success per 1-s window (first window excluded from the target)                  all     amp    429s`,
  ];
  for (const s of outcome.sides) {
    const windows = s.windows.map((w) => pct(w.ok, w.sent)).join(' ');
    const tooMany = s.windows.reduce((sum, w) => sum + w.tooMany, 0);
    lines.push(`${s.side.padEnd(6)} ${String(s.round).padStart(2)}  ${windows}  ${pct(s.ok, s.sent)}  ${s.amplification.toFixed(3)}  ${String(tooMany).padStart(4)}`);
  }
  const relays = outcome.sides.filter((s) => s.side === 'relay');
  const naives = outcome.sides.filter((s) => s.side === 'naive');
  const windowsBelow = (sides: ColdSide[]) => sides.flatMap((s) => s.windows.slice(1)).filter((w) => w.sent > 0 && w.ok / w.sent < COLD_TARGETS.windowSuccess).length;
  const windowCount = (sides: ColdSide[]) => sides.flatMap((s) => s.windows.slice(1)).length;
  lines.push(
    `windows below 99% after the first: relay ${windowsBelow(relays)}/${windowCount(relays)}, naive ${windowsBelow(naives)}/${windowCount(naives)}`,
    `relay: every window >= 99%, amplification <= ${COLD_TARGETS.amplification}, zero 429s: ${verdict(outcome.met)}`,
  );
  return lines.join('\n');
}

export interface PassBlock<Side extends string = 'relay' | 'bare'> {
  side: Side;
  numbers: PhaseNumbers;
  /** The server process's CPU time (user + system) per answered request, in microseconds. */
  cpuUsPerRequest: number;
}

export interface PassthroughOutcome {
  blocks: PassBlock[];
  overBare: { median: number; min: number; max: number };
  addedP50Ms: { median: number; min: number; max: number };
  /** Relay CPU per request over bare CPU per request: what the throughput ratio comes from when the cores are shared. */
  cpuOverBare: { median: number; min: number; max: number };
  met: boolean;
  failed: string[];
}

export async function runPassthrough(deps: DefaultsPartDeps): Promise<PassthroughOutcome> {
  const blocks = await runInterleaved(deps, 'passthrough', ['relay', 'bare'] as const, (side, downstreamUrl) =>
    side === 'relay'
      ? deps.start('bench/serve-relay.ts', { BENCH_RELAY_ENV: JSON.stringify(defaultRelayEnv(deps.workDir, downstreamUrl)) })
      : deps.start('bench/serve-bare.ts', { BENCH_DOWNSTREAM_URL: downstreamUrl, BENCH_CONNECTIONS: String(PASS_CONNECTIONS) }),
  );
  const ratios: number[] = [];
  const added: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < PASS_BLOCKS; i++) {
    const relay = blocks[2 * i]!;
    const bare = blocks[2 * i + 1]!;
    ratios.push(relay.numbers.rps / bare.numbers.rps);
    added.push(relay.numbers.p50Ms - bare.numbers.p50Ms);
    cpu.push(relay.cpuUsPerRequest / bare.cpuUsPerRequest);
  }
  const overBare = spread(ratios);
  const addedP50Ms = spread(added);
  const cpuOverBare = spread(cpu);
  const failed = blocks.filter((b) => b.numbers.non2xx > 0 || b.numbers.errors > 0).map((b) => `${b.side}: ${b.numbers.non2xx} non-2xx, ${b.numbers.errors} errors`);
  return { blocks, overBare, addedP50Ms, cpuOverBare, met: failed.length === 0 && overBare.median >= PASS_TARGETS.overBare && addedP50Ms.median <= PASS_TARGETS.addedP50Ms, failed };
}

/**
 * S1's plumbing: one simulator, then for each of PASS_BLOCKS rounds each side in
 * turn (ABAB), a fresh server process per block, a warm-up, a closed-loop block,
 * and the server's CPU time per answered request over the block.
 */
export async function runInterleaved<Side extends string>(
  deps: DefaultsPartDeps,
  part: string,
  sides: readonly Side[],
  startSide: (side: Side, downstreamUrl: string) => Promise<ChildServer>,
): Promise<Array<PassBlock<Side>>> {
  const sim = await deps.start('bench/serve-sim.ts', {});
  const blocks: Array<PassBlock<Side>> = [];
  try {
    const downstreamUrl = `${sim.url}/`;
    for (let i = 0; i < PASS_BLOCKS; i++) {
      for (const side of sides) {
        deps.progress(`${part} ${side} #${i + 1}: closed loop, ${PASS_CONNECTIONS} connections, ${PASS_WARMUP_S} s warm-up + ${PASS_BLOCK_S} s`);
        const server = await startSide(side, downstreamUrl);
        try {
          const url = `${server.url}/relay`;
          await runLoad({ url, durationS: PASS_WARMUP_S, connections: PASS_CONNECTIONS });
          const cpuBefore = processCpuMs(server.pid);
          const numbers = await runLoad({ url, durationS: PASS_BLOCK_S, connections: PASS_CONNECTIONS });
          const answered = numbers.rps * PASS_BLOCK_S;
          blocks.push({ side, numbers, cpuUsPerRequest: answered > 0 ? ((processCpuMs(server.pid) - cpuBefore) * 1000) / answered : Number.NaN });
        } finally {
          await deps.stop(server);
        }
      }
    }
  } finally {
    await deps.stop(sim);
  }
  return blocks;
}

/** User + system CPU time of a process so far, from /proc (Linux), in milliseconds. */
export function processCpuMs(pid: number): number {
  // Fields after the parenthesised command name: utime and stime are the 12th and 13th, in clock ticks.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S;
}

/** USER_HZ: 100 on every Linux this runs on (getconf CLK_TCK). */
const CLOCK_TICKS_PER_S = 100;

export function spread(values: number[]): { median: number; min: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted.at(-1)! };
}

export function passthroughReport(outcome: PassthroughOutcome): string {
  const lines = [
    `S1 at the defaults: healthy downstream (0 ms), closed loop, ${PASS_CONNECTIONS} connections, POST /relay, ${PASS_BLOCK_S} s per block after ${PASS_WARMUP_S} s, relay and bare Express + undici interleaved (ABABAB), each a fresh process`,
    'block  side    req/s     p50 ms   p99 ms  non-2xx  cpu us/req',
  ];
  outcome.blocks.forEach((b, i) => {
    lines.push(`${String(Math.floor(i / 2) + 1).padStart(5)}  ${b.side.padEnd(6)} ${b.numbers.rps.toFixed(0).padStart(6)}   ${b.numbers.p50Ms.toFixed(2).padStart(6)}   ${b.numbers.p99Ms.toFixed(2).padStart(6)}  ${String(b.numbers.non2xx).padStart(7)}  ${b.cpuUsPerRequest.toFixed(0).padStart(10)}`);
  });
  const o = outcome.overBare;
  const a = outcome.addedP50Ms;
  const c = outcome.cpuOverBare;
  lines.push(
    `relay / bare CPU per request: median ${c.median.toFixed(2)} (spread ${c.min.toFixed(2)}-${c.max.toFixed(2)})   (what the throughput ratio comes from: the three processes share two cores)`,
    `relay / bare throughput: median ${o.median.toFixed(3)} (spread ${o.min.toFixed(3)}-${o.max.toFixed(3)})   target >= ${PASS_TARGETS.overBare}`,
    `added p50: median ${a.median.toFixed(2)} ms (spread ${a.min.toFixed(2)}-${a.max.toFixed(2)})   target <= ${PASS_TARGETS.addedP50Ms} ms   ${verdict(outcome.met)}`,
  );
  return lines.join('\n');
}
