import type { SimProfile } from '../../src/sim/simulator.js';

/** A change of the downstream's behaviour during a run. */
export interface ProfileStep {
  /** From the run's start. */
  atS: number;
  label: string;
  patch: Partial<SimProfile>;
}

export interface ScenarioSpec {
  id: string;
  title: string;
  /** Offered load, open loop. */
  ratePerS: number;
  durationS: number;
  /** The simulator's profile from the run's start. */
  profile: SimProfile;
  steps: ProfileStep[];
  /** The relay's env for this scenario on top of `BASE_RELAY_ENV`. */
  relayEnv: Record<string, string>;
  /** S3: when the outage starts and ends. */
  outage?: { fromS: number; toS: number };
  /** S4: the simulator's best goodput, capacity / latency. */
  capacityPerS?: number;
}

/** Used by both sides: the relay's DOWNSTREAM_TIMEOUT_MS and the baseline's attempt timeout. */
export const ATTEMPT_TIMEOUT_MS = 1_000;
export const REQUEST_DEADLINE_MS = 3_000;
/** Longer than any side can take (relay: its deadline; baseline: 4 attempts x 1 s), so every answer is seen. */
export const CLIENT_TIMEOUT_MS = 6_000;
export const MAX_ATTEMPTS = 4;
/**
 * Before each run: this long at up to WARMUP_MAX_RATE with no failures, then the
 * simulator's counters are reset. Covers the relay's start-up slow start
 * (RATE_LIMIT_WARMUP_MS) and opens the sockets, as in a relay already in service.
 */
export const WARMUP_S = 2;
export const WARMUP_MAX_RATE = 100;

/**
 * The relay's env in every scenario (PORT, HOST, DOWNSTREAM_URL and SQLITE_PATH
 * are added per run). Every protection variable is spelt out, so that a change
 * of a default cannot change what a scenario measures unnoticed. Values that
 * differ from the relay's defaults say why.
 */
export const BASE_RELAY_ENV: Readonly<Record<string, string>> = Object.freeze({
  LOG_LEVEL: 'warn',
  // Far above what S1-S3 and S5 need at their rates (rate x latency x attempts),
  // so the relay's queue is never what the scenario measures.
  WORKERS: '64',
  QUEUE_CAPACITY: '1000',
  DOWNSTREAM_CONNECTIONS: '64',
  // Bounded runs: a stuck request costs at most 3 s, not the default 15 s.
  DOWNSTREAM_TIMEOUT_MS: String(ATTEMPT_TIMEOUT_MS),
  REQUEST_DEADLINE_MS: String(REQUEST_DEADLINE_MS),
  RETRY_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
  RETRY_BASE_DELAY_MS: '100',
  RETRY_MAX_DELAY_MS: '2000',
  BREAKER_MODE: 'enforce',
  // Scaled to runs of 8-11 s: with the default 10 s, S3's healthy second and the
  // warm-up (400 successes) stay in the window and the breaker needs ~400 failures,
  // ~3 s of a 4 s outage, before it opens.
  BREAKER_WINDOW_MS: '2000',
  BREAKER_MIN_CALLS: '20',
  BREAKER_FAILURE_RATE: '0.5',
  BREAKER_SLOW_CALL_MS: '2500',
  BREAKER_SLOW_CALL_RATE: '0.8',
  // Shorter than the default 5 s so that S3's 4 s outage sees a probe fail and the breaker re-open.
  BREAKER_OPEN_MS: '2000',
  BREAKER_HALF_OPEN_PROBES: '3',
  RETRY_BUDGET_MODE: 'enforce',
  RETRY_BUDGET_RATIO: '0.5',
  RETRY_BUDGET_MIN_PER_S: '10',
  RETRY_BUDGET_WINDOW_MS: '10000',
  RATE_LIMIT_MODE: 'enforce',
  RATE_LIMIT_RPS: '500',
  RATE_LIMIT_BURST: '50',
  // The slow start also runs when a relay starts: with the default 10 s from 5 req/s
  // every fresh relay would throttle the first seconds of every scenario. 2 s fits
  // within the warm-up and still ramps after S3's recovery.
  RATE_LIMIT_WARMUP_MS: '2000',
  RATE_LIMIT_WARMUP_START_RPS: '20',
  AIMD_MODE: 'enforce',
  AIMD_MIN_CONCURRENCY: '1',
  AIMD_LATENCY_TARGET_MS: '1000',
  AIMD_DECREASE_FACTOR: '0.9',
  AIMD_COOLDOWN_MS: '1000',
});

const healthy: SimProfile = {
  failRate: 0,
  failStatus: 503,
  latencyMs: 20,
  jitterMs: 5,
  tailRate: 0,
  tailMs: 0,
  hangRate: 0,
  retryAfterS: null,
  capacity: null,
};

const S4_CAPACITY = 10;
const S4_LATENCY_MS = 50;
const S4_CAPACITY_PER_S = (S4_CAPACITY * 1000) / S4_LATENCY_MS;

export const SCENARIOS: readonly ScenarioSpec[] = [
  {
    id: 'S1',
    title: 'healthy downstream',
    ratePerS: 200,
    durationS: 8,
    profile: healthy,
    steps: [],
    relayEnv: {},
  },
  {
    id: 'S2',
    title: '30% random 503s',
    ratePerS: 200,
    durationS: 8,
    profile: { ...healthy, failRate: 0.3 },
    steps: [],
    relayEnv: {},
  },
  {
    id: 'S3',
    title: 'full outage (every call 503) from 1 s to 5 s, then healthy',
    ratePerS: 200,
    durationS: 11,
    profile: healthy,
    steps: [
      { atS: 1, label: 'outage', patch: { failRate: 1 } },
      { atS: 5, label: 'recovery', patch: { failRate: 0 } },
    ],
    relayEnv: {},
    outage: { fromS: 1, toS: 5 },
  },
  {
    id: 'S4',
    title: `offered load 3x the downstream's capacity (${S4_CAPACITY} concurrent at ${S4_LATENCY_MS} ms = ${S4_CAPACITY_PER_S} req/s)`,
    ratePerS: 3 * S4_CAPACITY_PER_S,
    durationS: 8,
    profile: { ...healthy, latencyMs: S4_LATENCY_MS, jitterMs: 0, capacity: S4_CAPACITY },
    steps: [],
    // More workers than the downstream can take, so the adaptive limit has to find it; a short queue.
    // The latency target is 3x the downstream's 50 ms: one request over its capacity doubles every
    // new call's latency (100 ms) and two triple it, while on this loaded 2-core machine the median
    // of a round trip of calls under the capacity reaches 90-120 ms (timer and scheduling delays), so
    // a target below that cut on the machine's noise. No cool-down: the recovery rule already allows
    // one cut per round trip of calls, and a 1 s cool-down is 20 of this downstream's round trips.
    // The default factor (0.9): with the drift bringing the limit near the use during the warm-up, the
    // run starts at 12-14, not 40; 0.8 measured 78-83% against 0.9's 83-84% (three runs each).
    relayEnv: { WORKERS: '40', DOWNSTREAM_CONNECTIONS: '40', QUEUE_CAPACITY: '100', AIMD_LATENCY_TARGET_MS: '150', AIMD_COOLDOWN_MS: '0' },
    capacityPerS: S4_CAPACITY_PER_S,
  },
  {
    id: 'S5',
    title: 'latency spike: 20 ms -> 1500 ms from 2 s to 5 s, then 20 ms',
    ratePerS: 150,
    durationS: 9,
    profile: healthy,
    steps: [
      { atS: 2, label: 'spike', patch: { latencyMs: 1500, jitterMs: 100 } },
      { atS: 5, label: 'spike over', patch: { latencyMs: 20, jitterMs: 5 } },
    ],
    relayEnv: { BREAKER_SLOW_CALL_MS: '500', AIMD_LATENCY_TARGET_MS: '250' },
  },
];

/** The relay's complete env for a scenario, minus the per-run addresses. */
export function relayEnvFor(spec: ScenarioSpec): Record<string, string> {
  return { ...BASE_RELAY_ENV, ...spec.relayEnv };
}
