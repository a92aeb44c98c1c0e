/**
 * The `routes` part: what a named route costs over the `default` route, as CPU
 * time of the relay process per request. One relay with a routes file of two
 * routes to the same simulator: `default`, and `pay`, which adds a path join, a
 * client token check, a removed header and an injected credential. Blocks of a
 * fixed request count alternate default/pay (ABAB) so that the drift of a shared
 * machine hits both sides alike. process.cpuUsage() cannot be read from outside
 * the relay, so a block's CPU is the child's utime+stime from /proc/<pid>/stat.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Pool } from 'undici';
import type { ChildServer } from './child-server.js';
import { BENCH_BODY } from './load.js';
import { verdict } from './report.js';

/** routed / default CPU per request, medians over the blocks. */
export const TARGET_ROUTED_OVER_DEFAULT = 1.05;
const CONNECTIONS = 20;
const REQUEST_TIMEOUT_MS = 10_000;
/** A block still running after this stops issuing requests; its missing answers fail the part. */
const BLOCK_DEADLINE_MS = 60_000;
/** Every block cut at its deadline plus the last request's timeout, and two start-ups and stops. */
export const routesPartMaxS = (blocksPerSide: number) => (2 * (blocksPerSide + 1) * (BLOCK_DEADLINE_MS + REQUEST_TIMEOUT_MS)) / 1000 + 60;
const CLOCK_TICKS_PER_S = clockTicksPerS();
const SECRETS = { BENCH_PAY_KEY: 'bench-pay-key', BENCH_APP_TOKEN: 'bench-app-token' };

const SIDES = {
  default: { path: '/relay', headers: { 'content-type': 'application/json' } },
  routed: { path: '/relay/pay/charges', headers: { 'content-type': 'application/json', 'x-relay-token': SECRETS.BENCH_APP_TOKEN } },
} as const;
type Side = keyof typeof SIDES;

export interface RoutesBlock {
  side: Side;
  warmup: boolean;
  /** Answers of any status. */
  answered: number;
  cpuUs: number;
  elapsedMs: number;
  statuses: Record<string, number>;
  errors: number;
}

interface Spread {
  median: number;
  min: number;
  max: number;
}

export interface RoutesOutcome {
  settings: { requestsPerBlock: number; blocksPerSide: number; connections: number; clockTicksPerS: number; routesFile: unknown };
  blocks: RoutesBlock[];
  sides: Record<Side, { cpuUsPerRequest: Spread; requestsPerS: Spread }> | null;
  routedOverDefault: number | null;
  /** routed / default of each round's two blocks: drift between rounds cancels out. */
  roundRatios: Spread | null;
  met: boolean;
  failed: string[];
}

export interface RoutesPartDeps {
  start(entry: string, env: Record<string, string>): Promise<ChildServer>;
  stop(child: ChildServer): Promise<void>;
  workDir: string;
  progress(line: string): void;
  /** The relay's variables, bar ROUTES_FILE and the secrets the routes file names. */
  relayEnv: Record<string, string>;
}

export async function runRoutesPart(deps: RoutesPartDeps, requestsPerBlock: number, blocksPerSide: number): Promise<RoutesOutcome> {
  const sim = await deps.start('bench/serve-sim.ts', {});
  try {
    const routesFile = routesFileFor(`${sim.url}/`);
    const routesPath = join(deps.workDir, 'routes.json');
    writeFileSync(routesPath, JSON.stringify(routesFile));
    const relay = await deps.start('bench/serve-relay.ts', {
      BENCH_RELAY_ENV: JSON.stringify({ ...deps.relayEnv, ROUTES_FILE: routesPath, ...SECRETS }),
    });
    const pool = new Pool(relay.url, { connections: CONNECTIONS, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS });
    try {
      const outcome: RoutesOutcome = {
        settings: { requestsPerBlock, blocksPerSide, connections: CONNECTIONS, clockTicksPerS: CLOCK_TICKS_PER_S, routesFile },
        blocks: [],
        sides: null,
        routedOverDefault: null,
        roundRatios: null,
        met: false,
        failed: await refusals(pool),
      };
      if (outcome.failed.length > 0) return outcome;
      for (let round = 0; round <= blocksPerSide; round++) {
        for (const side of ['default', 'routed'] as const) {
          deps.progress(`routes: ${round === 0 ? 'warm-up' : `round ${round}/${blocksPerSide}`}, ${requestsPerBlock} x POST ${SIDES[side].path}`);
          outcome.blocks.push(await runBlock(pool, relay.pid, side, requestsPerBlock, round === 0));
        }
      }
      return summarize(outcome);
    } finally {
      await pool.close();
      await deps.stop(relay);
    }
  } finally {
    await deps.stop(sim);
  }
}

function routesFileFor(downstreamUrl: string): unknown {
  // `rateLimit: {}` turns the limiter on with the environment's (out of reach) rate, as in the throughput part.
  return {
    routes: [
      { name: 'default', target: downstreamUrl, rateLimit: {} },
      {
        name: 'pay',
        target: `${downstreamUrl}v1/`,
        rateLimit: {},
        idempotency: { generate: false },
        headers: { set: { Authorization: 'Bearer ${BENCH_PAY_KEY}' }, remove: ['Cookie'] },
        clients: ['${BENCH_APP_TOKEN}'],
      },
    ],
  };
}

/** One request of each kind must get a 200 before anything is measured. */
async function refusals(pool: Pool): Promise<string[]> {
  const failed: string[] = [];
  for (const [side, { path, headers }] of Object.entries(SIDES)) {
    try {
      const res = await pool.request({ method: 'POST', path, headers, body: BENCH_BODY });
      const text = await res.body.text();
      if (res.statusCode !== 200) failed.push(`${side}: POST ${path} answered ${res.statusCode}, expected 200: ${text.slice(0, 300)}`);
    } catch (error) {
      failed.push(`${side}: POST ${path} failed: ${(error as Error).message}`);
    }
  }
  return failed;
}

async function runBlock(pool: Pool, pid: number, side: Side, requests: number, warmup: boolean): Promise<RoutesBlock> {
  const { path, headers } = SIDES[side];
  const statuses: Record<string, number> = {};
  let issued = 0;
  let errors = 0;
  // The previous block's last responses may still have work queued behind them.
  await new Promise((resolve) => setTimeout(resolve, 100));
  const ticksBefore = cpuTicks(pid);
  const startedAt = performance.now();
  const connection = async () => {
    while (issued < requests && performance.now() - startedAt < BLOCK_DEADLINE_MS) {
      issued++;
      try {
        const res = await pool.request({ method: 'POST', path, headers, body: BENCH_BODY });
        await res.body.dump();
        statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: CONNECTIONS }, connection));
  const elapsedMs = performance.now() - startedAt;
  const cpuUs = ((cpuTicks(pid) - ticksBefore) * 1e6) / CLOCK_TICKS_PER_S;
  const answered = Object.values(statuses).reduce((sum, n) => sum + n, 0);
  return { side, warmup, answered, cpuUs, elapsedMs, statuses, errors };
}

function clockTicksPerS(): number {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5_000 }).trim());
    return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
}

/** utime + stime of every thread of the process, in clock ticks (proc(5), fields 14 and 15). */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Field 2, the command name, may hold spaces and parentheses; field 3 starts after its last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

function summarize(outcome: RoutesOutcome): RoutesOutcome {
  for (const b of outcome.blocks) {
    const non2xx = Object.entries(b.statuses).filter(([status]) => !status.startsWith('2'));
    if (non2xx.length > 0 || b.errors > 0 || b.answered + b.errors < outcome.settings.requestsPerBlock) {
      outcome.failed.push(`${b.side}${b.warmup ? ' (warm-up)' : ''}: ${JSON.stringify(b.statuses)}, ${b.errors} errors, ${b.answered} answers of ${outcome.settings.requestsPerBlock}`);
    }
  }
  const measured = (side: Side) => outcome.blocks.filter((b) => b.side === side && !b.warmup && b.answered > 0);
  const sideOf = (side: Side) => ({
    cpuUsPerRequest: spread(measured(side).map((b) => b.cpuUs / b.answered)),
    requestsPerS: spread(measured(side).map((b) => (b.answered * 1000) / b.elapsedMs)),
  });
  const sides = { default: sideOf('default'), routed: sideOf('routed') };
  const routedOverDefault = sides.routed.cpuUsPerRequest.median / sides.default.cpuUsPerRequest.median;
  const perRequest = (b: RoutesBlock | undefined) => (b && b.answered > 0 ? b.cpuUs / b.answered : NaN);
  const rounds = measured('default').map((b) => perRequest(outcome.blocks[outcome.blocks.indexOf(b) + 1]) / perRequest(b));
  return { ...outcome, sides, routedOverDefault, roundRatios: spread(rounds), met: routedOverDefault <= TARGET_ROUTED_OVER_DEFAULT };
}

function spread(values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
  return { median, min: sorted[0] ?? NaN, max: sorted[sorted.length - 1] ?? NaN };
}

export function routesReport(outcome: RoutesOutcome): string {
  const { requestsPerBlock, blocksPerSide, clockTicksPerS } = outcome.settings;
  const lines = [
    `Routes: CPU time of the relay process per request, the default route vs a named route with a credential`,
    `one relay (ROUTES_FILE: default, and pay = target + /v1/, headers.set Authorization, clients, headers.remove Cookie),`,
    `the simulator behind both; ${blocksPerSide} blocks per side of ${requestsPerBlock} POSTs at ${CONNECTIONS} connections, ABAB after a warm-up block each;`,
    `CPU = utime+stime of the relay's /proc/<pid>/stat (1/${clockTicksPerS} s ticks, ${(1e6 / clockTicksPerS / requestsPerBlock).toFixed(1)} µs/req per tick)`,
  ];
  if (!outcome.sides || outcome.routedOverDefault === null || !outcome.roundRatios) return [...lines, 'not measured: the relay did not answer 200 to both kinds of request'].join('\n');
  const fmt = (s: Spread, digits: number) => `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}-${s.max.toFixed(digits)})`;
  const row = (side: Side) =>
    [`POST ${SIDES[side].path}`.padEnd(26), fmt(outcome.sides![side].cpuUsPerRequest, 1).padStart(26), fmt(outcome.sides![side].requestsPerS, 0).padStart(22)].join(' ');
  return [
    ...lines,
    '',
    ['side'.padEnd(26), 'CPU µs/req median (range)'.padStart(26), 'req/s median (range)'.padStart(22)].join(' '),
    row('default'),
    row('routed'),
    '',
    `routed / default CPU per request = ${outcome.routedOverDefault.toFixed(3)}   target <= ${TARGET_ROUTED_OVER_DEFAULT}  ${verdict(outcome.met)}`,
    `  the same within each round        = ${fmt(outcome.roundRatios, 3)}   (median (range) of the rounds' ratios)`,
  ].join('\n');
}
