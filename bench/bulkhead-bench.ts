/**
 * `bulkhead` (issue 13, item 3): does a backlog of async jobs leave synchronous
 * callers alone? One route, WORKERS=8, a downstream answering in 50 +/- 5 ms,
 * so 2,000 jobs hold the route's workers for longer than a phase. Each round
 * starts a fresh relay, warms it up, and measures a paced synchronous load
 * twice: idle, then right after 2,000 jobs were queued (POST /relay/batch), and checks
 * that the jobs then drain. Rounds alternate the default JOB_MAX_SHARE (0.5)
 * with JOB_MAX_SHARE=1 (no share kept for synchronous callers), the same run's
 * reference for what the share buys.
 */
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import type { SimProfile } from '../src/sim/simulator.js';
import type { DefaultsPartDeps } from './defaults-bench.js';
import { runPaced } from './paced-load.js';
import { verdict } from './report.js';

/** What every bench part gets from run.ts: start and stop a server, a scratch directory, a progress line. */
export type BulkheadPartDeps = DefaultsPartDeps;

const JOBS = 2_000;
const BATCH = 100;
const SYNC_RATE = 50;
const WARMUP_S = 2;
const PHASE_S = 5;
const WORKERS = 8;
const DRAIN_TIMEOUT_S = 60;
const ROUNDS = 2;
const PROFILE: Partial<SimProfile> = { failRate: 0, latencyMs: 50, jitterMs: 5, tailRate: 0, hangRate: 0, capacity: null };
/** Issue 13, item 3: synchronous p99 with the backlog within 1.5x of idle, and the jobs drain. */
export const BULKHEAD_TARGET = 1.5;
export const bulkheadPartMaxS = () => ROUNDS * 2 * (WARMUP_S + 2 * PHASE_S + DRAIN_TIMEOUT_S + 20);

interface BulkheadRound {
  share: '0.5 (default)' | '1 (none kept)';
  idleP99Ms: number;
  backlogP99Ms: number;
  /** Synchronous answers other than 2xx, both phases. */
  non2xx: number;
  /** Jobs still waiting when the backlog phase ended. */
  queuedAfterPhase: number;
  /** From the last batch accepted to no job queued; null: not within DRAIN_TIMEOUT_S. */
  drainS: number | null;
}

export interface BulkheadOutcome {
  rounds: BulkheadRound[];
  met: boolean;
}

export async function runBulkheadPart(deps: BulkheadPartDeps): Promise<BulkheadOutcome> {
  const sim = await deps.start('bench/serve-sim.ts', { BENCH_SIM_PROFILE: JSON.stringify(PROFILE) });
  const rounds: BulkheadRound[] = [];
  try {
    for (let i = 0; i < ROUNDS; i++) {
      for (const share of ['0.5 (default)', '1 (none kept)'] as const) {
        deps.progress(`bulkhead #${i + 1}, JOB_MAX_SHARE ${share}: ${SYNC_RATE} req/s synchronous for ${PHASE_S} s idle, then with ${JOBS} jobs queued`);
        const env: Record<string, string> = {
          PORT: '0',
          HOST: '127.0.0.1',
          DOWNSTREAM_URL: `${sim.url}/`,
          SQLITE_PATH: join(deps.workDir, `bulkhead-${i}-${share[0]}.db`),
          LOG_LEVEL: 'warn',
          WORKERS: String(WORKERS),
          ...(share.startsWith('1') ? { JOB_MAX_SHARE: '1' } : {}),
        };
        const relay = await deps.start('bench/serve-relay.ts', { BENCH_RELAY_ENV: JSON.stringify(env) });
        try {
          rounds.push(await oneRound(relay.url, share));
        } finally {
          await deps.stop(relay);
        }
      }
    }
  } finally {
    await deps.stop(sim);
  }
  const withShare = rounds.filter((r) => r.share.startsWith('0.5'));
  const met = withShare.every((r) => r.backlogP99Ms <= BULKHEAD_TARGET * r.idleP99Ms && r.drainS !== null && r.non2xx === 0);
  return { rounds, met };
}

async function oneRound(base: string, share: BulkheadRound['share']): Promise<BulkheadRound> {
  const url = `${base}/relay`;
  await runPaced({ url, rate: SYNC_RATE, durationS: WARMUP_S, connections: 64 });
  const idle = await runPaced({ url, rate: SYNC_RATE, durationS: PHASE_S, connections: 64 });
  await enqueueJobs(base);
  const queuedAt = performance.now();
  const backlog = await runPaced({ url, rate: SYNC_RATE, durationS: PHASE_S, connections: 64 });
  const queuedAfterPhase = await queuedJobs(base);
  let drainS: number | null = null;
  while (performance.now() - queuedAt < DRAIN_TIMEOUT_S * 1000) {
    if ((await queuedJobs(base)) === 0) {
      drainS = (performance.now() - queuedAt) / 1000;
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { share, idleP99Ms: idle.p99Ms, backlogP99Ms: backlog.p99Ms, non2xx: idle.non2xx + backlog.non2xx, queuedAfterPhase, drainS };
}

async function enqueueJobs(base: string): Promise<void> {
  for (let sent = 0; sent < JOBS; sent += BATCH) {
    const items = Array.from({ length: BATCH }, (_, i) => ({ body: { job: sent + i } }));
    const res = await fetch(`${base}/relay/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ items }) });
    if (res.status !== 202) throw new Error(`bulkhead: POST /relay/batch answered ${res.status}: ${await res.text()}`);
  }
}

/** Jobs waiting or in flight, from /stats (admin: open to loopback without ADMIN_TOKEN). */
async function queuedJobs(base: string): Promise<number> {
  const stats = (await (await fetch(`${base}/stats`)).json()) as { jobs: { states: Record<string, number> | null } };
  const states = stats.jobs.states ?? {};
  return (states.queued ?? 0) + (states.in_flight ?? 0);
}

export function bulkheadReport(outcome: BulkheadOutcome): string {
  const lines = [
    `Bulkhead (issue 13, item 3): one route, WORKERS=${WORKERS}, downstream 50 +/- 5 ms; ${SYNC_RATE} req/s synchronous (paced) after ${WARMUP_S} s of warm-up, for ${PHASE_S} s idle, then for ${PHASE_S} s right after ${JOBS} jobs were queued; a fresh relay per round, shares interleaved`,
    'round  JOB_MAX_SHARE    idle p99 ms  backlog p99 ms  ratio  non-2xx  jobs left after phase  drained in',
  ];
  outcome.rounds.forEach((r, i) => {
    lines.push(
      `${String(Math.floor(i / 2) + 1).padStart(5)}  ${r.share.padEnd(15)} ${r.idleP99Ms.toFixed(1).padStart(11)}  ${r.backlogP99Ms.toFixed(1).padStart(14)}  ${(r.backlogP99Ms / r.idleP99Ms).toFixed(2).padStart(5)}  ${String(r.non2xx).padStart(7)}  ${String(r.queuedAfterPhase).padStart(21)}  ${r.drainS === null ? `not in ${DRAIN_TIMEOUT_S} s` : `${r.drainS.toFixed(1)} s`}`,
    );
  });
  lines.push(`default share: backlog p99 <= ${BULKHEAD_TARGET} x idle p99 and the jobs drain, every round: ${verdict(outcome.met)}`);
  return lines.join('\n');
}
