/**
 * `npm run bench -- --only=fleet` (issue 14): three relay processes with
 * STORE=redis share one route's protections on Redis. Each phase gets its own
 * REDIS_PREFIX; the relays reach Redis through a TCP proxy in this process, so
 * that "Redis lost" is the proxy closing, never the shared Redis server stopping.
 * - rate: route rps 100, 600 req/s offered in all for 10 s; the downstream's calls per second.
 * - outage: the downstream fails every call; how far apart the 3 breakers open,
 *   and the probes the downstream sees per open interval, fleet-wide.
 * - redis-lost: 600 req/s for 12 s with Redis away from the 3rd to the 8th second:
 *   500s, the downstream's rate, and how long after Redis returns the fleet is shared again.
 * - cost: p50 and CPU per request of one relay with STORE=redis (fleet protections)
 *   against one with STORE=sqlite (local protections), rate limit out of reach,
 *   paced, 3 rounds of both sides back to back (ABBAAB).
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { deleteKeysWithPrefix, redisUrl, startRedisProxy, type RedisProxy } from '../test/helpers/redis.js';
import type { ChildServer } from './child-server.js';
import { processCpuMs, spread } from './defaults-bench.js';
import { runPaced } from './paced-load.js';

export interface FleetPartDeps {
  start(entry: string, env: Record<string, string>): Promise<ChildServer>;
  stop(child: ChildServer): Promise<void>;
  workDir: string;
  progress(line: string): void;
}

const RPS = 100;
const BURST = 5;
const OFFERED = 600;
const RATE_S = 10;
const PROBES = 3;
const OPEN_MS = 1_000;
const LOST_S = 12;
const LOST_FROM_S = 3;
const LOST_UNTIL_S = 8;
const COST_RATE = 200;
const COST_S = 5;
const COST_ROUNDS = 3;

export const TARGET_MAX_PER_S = 105;
export const TARGET_LOST_MAX_PER_S = Math.round(RPS * 1.1);
export const TARGET_OPEN_SPREAD_MS = 1_000;
export const TARGET_REJOIN_MS = 2_000;
export const TARGET_ADDED_P50_MS = 0.3;

export function fleetPartMaxS(): number {
  return RATE_S + 20 + LOST_S + 2 * COST_ROUNDS * (COST_S + 1) + 180;
}

export interface FleetOutcome {
  /**
   * maxAfterFirst: the most calls the downstream received in any 1-s window
   * (100-ms steps, by its own clock) that starts after the first second.
   */
  rate: { perSecond: number[]; maxAfterFirst: number; statuses: Record<string, number>; first2sPer100ms: number[]; maxWindowPer100ms: number[] };
  outage: { openSpreadMs: number | null; probesPerInterval: number[]; statuses: Record<string, number> };
  lost: { perSecond: number[]; maxWhileLost: number; statuses: Record<string, number>; rejoinMs: number | null; returnPer100ms: number[] };
  /** addedP50Ms: fleet minus local p50 of each round (the two sides ran back to back), median and spread. */
  cost: { rounds: CostRound[]; addedP50Ms: Spread; cpuFleetOverLocal: Spread };
  met: boolean;
}

interface CostRound {
  fleet: { p50Ms: number; cpuUsPerRequest: number };
  local: { p50Ms: number; cpuUsPerRequest: number };
}

type Spread = ReturnType<typeof spread>;

interface Fleet {
  relays: ChildServer[];
  prefix: string;
}

function relayEnv(deps: FleetPartDeps, store: 'redis' | 'sqlite', sim: string, proxy: RedisProxy, prefix: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    BENCH_RELAY_ENV: JSON.stringify({
      PORT: '0',
      HOST: '127.0.0.1',
      DOWNSTREAM_URL: `${sim}/`,
      STORE: store,
      REDIS_URL: proxy.url,
      REDIS_PREFIX: prefix,
      SQLITE_PATH: `${deps.workDir}/fleet-${randomUUID()}.db`,
      LOG_LEVEL: 'warn',
      WORKERS: '64',
      QUEUE_CAPACITY: '200',
      RATE_LIMIT_RPS: String(RPS),
      RATE_LIMIT_BURST: String(BURST),
      RATE_LIMIT_WARMUP_MS: '0',
      BREAKER_MIN_CALLS: '20',
      BREAKER_CONSECUTIVE_FAILURES: '10',
      BREAKER_OPEN_MS: String(OPEN_MS),
      BREAKER_OPEN_MAX_MS: String(OPEN_MS),
      BREAKER_HALF_OPEN_PROBES: String(PROBES),
      ...extra,
    }),
  };
}

async function startFleet(deps: FleetPartDeps, sim: string, proxy: RedisProxy, extra: Record<string, string> = {}): Promise<Fleet> {
  const prefix = `relay-bench:fleet:${randomUUID()}:`;
  const relays = await Promise.all([0, 1, 2].map(() => deps.start('bench/serve-relay.ts', relayEnv(deps, 'redis', sim, proxy, prefix, extra))));
  // Every instance has heard the others (a heartbeat is 1 s).
  for (let i = 0; i < 50 && !(await Promise.all(relays.map(fleetOf))).every((f) => f?.instances === 3); i++) await sleep(100);
  return { relays, prefix };
}

async function stopFleet(deps: FleetPartDeps, fleet: Fleet): Promise<void> {
  await Promise.all(fleet.relays.map((relay) => deps.stop(relay)));
  await deleteKeysWithPrefix(fleet.prefix).catch(() => 0);
}

async function json(url: string): Promise<any> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  return res.json();
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

async function fleetOf(relay: ChildServer): Promise<{ instances: number; mode: string } | undefined> {
  return (await json(`${relay.url}/stats`).catch(() => ({}))).fleet;
}

const received = async (sim: string): Promise<number> => (await json(`${sim}/__sim/stats`)).received as number;

/** The downstream's calls in each second (over the time that really passed) while `load` runs. */
async function perSecond(sim: string, seconds: number, onSecond: (i: number) => Promise<void> = async () => {}): Promise<number[]> {
  const out: number[] = [];
  let last = await received(sim);
  let lastAt = performance.now();
  const started = lastAt;
  for (let i = 0; i < seconds; i++) {
    await sleep(Math.max(0, started + (i + 1) * 1000 - performance.now()));
    const now = await received(sim);
    const at = performance.now();
    out.push(Math.round(((now - last) * 1000) / (at - lastAt)));
    last = now;
    lastAt = at;
    await onSecond(i + 1);
  }
  return out;
}

/** `total` req/s spread over the relays (each its own paced generator). */
async function offer(relays: ChildServer[], total: number, durationS: number): Promise<Record<string, number>> {
  const runs = await Promise.all(relays.map((relay) => runPaced({ url: `${relay.url}/relay`, rate: total / relays.length, durationS, connections: 100, requestTimeoutMs: 15_000 })));
  const statuses: Record<string, number> = {};
  for (const run of runs) {
    for (const [status, count] of Object.entries(run.statuses)) statuses[status] = (statuses[status] ?? 0) + count;
    if (run.errors > 0) statuses.error = (statuses.error ?? 0) + run.errors;
  }
  return statuses;
}

async function setSim(sim: string, profile: Record<string, unknown>): Promise<void> {
  await fetch(`${sim}/__sim/profile`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(profile) });
}

async function ratePhase(deps: FleetPartDeps, sim: string, proxy: RedisProxy): Promise<FleetOutcome['rate']> {
  deps.progress(`fleet rate: 3 relays, route rps ${RPS}, ${OFFERED} req/s offered for ${RATE_S} s`);
  const fleet = await startFleet(deps, sim, proxy);
  try {
    await fetch(`${sim}/__sim/reset`, { method: 'POST' });
    const load = offer(fleet.relays, OFFERED, RATE_S);
    const statuses = await load;
    const arrivals = (await json(`${sim}/__sim/stats`)).arrivalsPer100ms as number[];
    const seconds = Array.from({ length: Math.floor(arrivals.length / 10) }, (_, i) => sum(arrivals.slice(i * 10, i * 10 + 10)));
    // Every 1-s window from 1.0 s on, in 100-ms steps: the contract's "any window W" for W = 1 s.
    const windows = Array.from({ length: Math.max(0, arrivals.length - 19) }, (_, i) => sum(arrivals.slice(10 + i, 20 + i)));
    const maxAfterFirst = Math.max(...windows);
    const at = 10 + windows.indexOf(maxAfterFirst);
    return { perSecond: seconds.slice(0, RATE_S), maxAfterFirst, statuses, first2sPer100ms: arrivals.slice(0, 20), maxWindowPer100ms: arrivals.slice(at, at + 10) };
  } finally {
    await stopFleet(deps, fleet);
  }
}

async function outagePhase(deps: FleetPartDeps, sim: string, proxy: RedisProxy): Promise<FleetOutcome['outage']> {
  deps.progress(`fleet outage: every call fails; breakers ${OPEN_MS} ms open, ${PROBES} probes`);
  const fleet = await startFleet(deps, sim, proxy, { RATE_LIMIT_RPS: '1000', RATE_LIMIT_BURST: '100' });
  try {
    await setSim(sim, { failRate: 1 });
    const openedAt: Array<number | null> = [null, null, null];
    const load = offer(fleet.relays, 150, 8);
    const watchUntil = performance.now() + 4_000;
    while (openedAt.some((t) => t === null) && performance.now() < watchUntil) {
      const states = await Promise.all(fleet.relays.map(async (r) => (await json(`${r.url}/stats`).catch(() => ({})))?.breakers?.primary?.state));
      states.forEach((state, i) => {
        if (state === 'open' && openedAt[i] === null) openedAt[i] = performance.now();
      });
      await sleep(20);
    }
    const opened = openedAt.filter((t): t is number => t !== null);
    const openSpreadMs = opened.length === 3 ? Math.round(Math.max(...opened) - Math.min(...opened)) : null;
    // The probes of each open interval (1 s), over the next 4 s.
    const probesPerInterval = await perSecond(sim, 4);
    const statuses = await load;
    await setSim(sim, { failRate: 0 });
    return { openSpreadMs, probesPerInterval, statuses };
  } finally {
    await setSim(sim, { failRate: 0 });
    await stopFleet(deps, fleet);
  }
}

async function lostPhase(deps: FleetPartDeps, sim: string, proxy: RedisProxy): Promise<FleetOutcome['lost']> {
  deps.progress(`fleet redis-lost: ${OFFERED} req/s for ${LOST_S} s, Redis away from ${LOST_FROM_S} s to ${LOST_UNTIL_S} s (TCP proxy closed)`);
  const fleet = await startFleet(deps, sim, proxy);
  let rejoined: Promise<number | null> = Promise.resolve(null);
  try {
    await fetch(`${sim}/__sim/reset`, { method: 'POST' });
    const load = offer(fleet.relays, OFFERED, LOST_S);
    // The polls only pace the proxy's close and reopen; the counts are the downstream's own.
    await perSecond(sim, LOST_S, async (second) => {
      if (second === LOST_FROM_S) await proxy.close();
      if (second === LOST_UNTIL_S) {
        await proxy.reopen();
        rejoined = untilShared(fleet.relays, performance.now());
      }
    });
    const rejoinMs = await rejoined;
    const statuses = await load;
    const arrivals = (await json(`${sim}/__sim/stats`)).arrivalsPer100ms as number[];
    const counts = Array.from({ length: LOST_S }, (_, i) => sum(arrivals.slice(i * 10, i * 10 + 10)));
    // Seconds wholly inside the loss (and the one that follows the return: shared again, or still local).
    return { perSecond: counts, maxWhileLost: Math.max(...counts.slice(LOST_FROM_S, LOST_UNTIL_S + 1)), statuses, rejoinMs, returnPer100ms: arrivals.slice((LOST_UNTIL_S - 1) * 10, (LOST_UNTIL_S + 2) * 10) };
  } finally {
    await proxy.reopen().catch(() => {});
    await stopFleet(deps, fleet);
  }
}

/** Ms from `since` until every relay's /stats.fleet says `shared` (null after 5 s). */
async function untilShared(relays: ChildServer[], since: number): Promise<number | null> {
  while (performance.now() - since < 5_000) {
    const fleets = await Promise.all(relays.map(fleetOf));
    if (fleets.every((f) => f?.mode === 'shared')) return Math.round(performance.now() - since);
    await sleep(20);
  }
  return null;
}

async function costPhase(deps: FleetPartDeps, sim: string, proxy: RedisProxy): Promise<FleetOutcome['cost']> {
  deps.progress(`fleet cost: p50 at ${COST_RATE} req/s paced, STORE=redis (fleet) vs STORE=sqlite (local), ${COST_ROUNDS} rounds ABBAAB, ${COST_S} s each`);
  const rounds: CostRound[] = [];
  const outOfReach = { RATE_LIMIT_RPS: '1000000', RATE_LIMIT_BURST: '1000000' };
  for (let round = 0; round < COST_ROUNDS; round++) {
    const measured: Partial<Record<'redis' | 'sqlite', { p50Ms: number; cpuUsPerRequest: number }>> = {};
    // ABBAAB: the side that goes second in a round (a warmer machine, a drifting load) alternates.
    const order = round % 2 === 0 ? (['redis', 'sqlite'] as const) : (['sqlite', 'redis'] as const);
    for (const store of order) {
      const prefix = `relay-bench:fleet:${randomUUID()}:`;
      const relay = await deps.start('bench/serve-relay.ts', relayEnv(deps, store, sim, proxy, prefix, outOfReach));
      try {
        await runPaced({ url: `${relay.url}/relay`, rate: COST_RATE, durationS: 1, connections: 50 });
        const cpuBefore = processCpuMs(relay.pid);
        const run = await runPaced({ url: `${relay.url}/relay`, rate: COST_RATE, durationS: COST_S, connections: 50 });
        const answered = sum(Object.values(run.statuses));
        measured[store] = { p50Ms: run.p50Ms, cpuUsPerRequest: answered > 0 ? ((processCpuMs(relay.pid) - cpuBefore) * 1000) / answered : Number.NaN };
      } finally {
        await deps.stop(relay);
        if (store === 'redis') await deleteKeysWithPrefix(prefix).catch(() => 0);
      }
    }
    rounds.push({ fleet: measured.redis!, local: measured.sqlite! });
  }
  // Each round's two sides ran back to back: their difference is free of the drift between rounds.
  return {
    rounds,
    addedP50Ms: spread(rounds.map((r) => r.fleet.p50Ms - r.local.p50Ms)),
    cpuFleetOverLocal: spread(rounds.map((r) => r.fleet.cpuUsPerRequest / r.local.cpuUsPerRequest)),
  };
}

export async function runFleetPart(deps: FleetPartDeps): Promise<FleetOutcome> {
  const proxy = await startRedisProxy(redisUrl);
  const sim = await deps.start('bench/serve-sim.ts', {});
  try {
    // The downstream counts a call when its handler runs: a cold simulator would count the first second's calls late.
    await runPaced({ url: `${sim.url}/`, rate: 300, durationS: 2, connections: 20 });
    const rate = await ratePhase(deps, sim.url, proxy);
    const outage = await outagePhase(deps, sim.url, proxy);
    const lost = await lostPhase(deps, sim.url, proxy);
    const cost = await costPhase(deps, sim.url, proxy);
    const met =
      rate.maxAfterFirst <= TARGET_MAX_PER_S &&
      !rate.statuses['500'] &&
      outage.openSpreadMs !== null &&
      outage.openSpreadMs <= TARGET_OPEN_SPREAD_MS &&
      outage.probesPerInterval.every((n) => n <= PROBES) &&
      !lost.statuses['500'] &&
      lost.maxWhileLost <= TARGET_LOST_MAX_PER_S &&
      lost.rejoinMs !== null &&
      lost.rejoinMs <= TARGET_REJOIN_MS &&
      cost.addedP50Ms.median <= TARGET_ADDED_P50_MS;
    return { rate, outage, lost, cost, met };
  } finally {
    await deps.stop(sim);
    await proxy.close();
  }
}

const ok = (met: boolean) => (met ? 'met' : 'MISSED');
const fmtSpread = (s: Spread, digits: number) => `${s.median.toFixed(digits)} median (${s.min.toFixed(digits)}..${s.max.toFixed(digits)})`;

export function fleetReport(o: FleetOutcome): string {
  return [
    `Fleet on Redis (issue 14): 3 relays, STORE=redis through a TCP proxy, route rps ${RPS}, burst ${BURST}, FLEET_LEASE_MS=100`,
    `rate:    ${OFFERED} req/s offered for ${RATE_S} s; downstream calls per second: ${o.rate.perSecond.join(' ')}`,
    `         max in any 1-s window after the first second (100-ms steps, the downstream's clock) = ${o.rate.maxAfterFirst} (${(o.rate.maxAfterFirst / RPS).toFixed(2)} x rps)   target <= ${TARGET_MAX_PER_S}  ${ok(o.rate.maxAfterFirst <= TARGET_MAX_PER_S)}; answers ${JSON.stringify(o.rate.statuses)}`,
    `         per 100 ms: first 2 s ${o.rate.first2sPer100ms.join(' ')}; the fullest window ${o.rate.maxWindowPer100ms.join(' ')}`,
    `outage:  breakers open ${o.outage.openSpreadMs ?? 'not all'} ms apart   target <= ${TARGET_OPEN_SPREAD_MS} ms  ${ok(o.outage.openSpreadMs !== null && o.outage.openSpreadMs <= TARGET_OPEN_SPREAD_MS)}`,
    `         downstream calls per ${OPEN_MS} ms open interval, fleet-wide: ${o.outage.probesPerInterval.join(' ')} (probes ${PROBES})  ${ok(o.outage.probesPerInterval.every((n) => n <= PROBES))}; answers ${JSON.stringify(o.outage.statuses)}`,
    `lost:    Redis away ${LOST_FROM_S}-${LOST_UNTIL_S} s; downstream calls per second: ${o.lost.perSecond.join(' ')}`,
    `         max while lost = ${o.lost.maxWhileLost} (${(o.lost.maxWhileLost / RPS).toFixed(2)} x rps)   target <= ${TARGET_LOST_MAX_PER_S}  ${ok(o.lost.maxWhileLost <= TARGET_LOST_MAX_PER_S)}; 500s: ${o.lost.statuses['500'] ?? 0}  ${ok(!o.lost.statuses['500'])}`,
    `         per 100 ms from ${LOST_UNTIL_S - 1} s to ${LOST_UNTIL_S + 2} s: ${o.lost.returnPer100ms.join(' ')}`,
    `         shared again ${o.lost.rejoinMs ?? 'never'} ms after Redis returned   target <= ${TARGET_REJOIN_MS} ms  ${ok(o.lost.rejoinMs !== null && o.lost.rejoinMs <= TARGET_REJOIN_MS)}; answers ${JSON.stringify(o.lost.statuses)}`,
    `cost:    ${COST_RATE} req/s paced; p50 fleet/local by round: ${o.cost.rounds.map((r) => `${r.fleet.p50Ms.toFixed(2)}/${r.local.p50Ms.toFixed(2)}`).join(', ')} ms; cpu us/req ${o.cost.rounds.map((r) => `${r.fleet.cpuUsPerRequest.toFixed(0)}/${r.local.cpuUsPerRequest.toFixed(0)}`).join(', ')}`,
    `         added p50 = ${fmtSpread(o.cost.addedP50Ms, 2)} ms   target <= ${TARGET_ADDED_P50_MS} ms  ${ok(o.cost.addedP50Ms.median <= TARGET_ADDED_P50_MS)}; fleet / local CPU per request ${fmtSpread(o.cost.cpuFleetOverLocal, 3)}`,
  ].join('\n');
}
