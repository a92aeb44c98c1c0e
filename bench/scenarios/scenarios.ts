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
    // The target (>= 99%) is the relay configured for this downstream. With independent 30% failures,
    // 4 attempts succeed 1 - 0.3^4 = 99.19% of the time on average; over 1,600 requests that is 13
    // failures +- 3.6, so a relay that lost nothing still missed 99% (16 failures) in about one run in
    // five (2026-11-30, four runs: 99.25%, 98.69%, 98.94%, 99.12%). A fifth attempt: 99.76%, for 0.8%
    // more calls (amplification 1.417 -> 1.425), within the retry budget (0.5 per request); measured
    // 99.69-99.88% at 1.40-1.43 (three runs). The naive baseline keeps its 4.
    relayEnv: { RETRY_MAX_ATTEMPTS: '5' },
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
    // The latency target is 1.8x the downstream's 50 ms: one request over its capacity doubles every
    // new call's latency (100 ms), so a round trip at one over is cut at once instead of waiting for
    // the 10% of 503s it brings (at 11 in flight the downstream serves half its capacity). The risk is
    // the machine's noise: on a quiet machine the median of a round trip under the capacity is 52-60 ms
    // (2026-11-30T06:45Z: 90.4-90.7% goodput against 88.2-90.1% with a 150 ms target, three runs
    // each), but on a loaded one it reached 90-120 ms and a 90 ms target cut on noise (2026-11-30,
    // earlier, with the fixed-limit reference itself at 71-91%). No cool-down: the recovery rule already allows
    // one cut per round trip of calls, and a 1 s cool-down is 20 of this downstream's round trips.
    // The default factor (0.9): with the drift bringing the limit near the use during the warm-up, the
    // run starts at 12-14, not 40; 0.8 measured 78-83% against 0.9's 83-84% (three runs each, before
    // the 40-round-trip plateau and the failed probe's return to just below the ceiling).
    relayEnv: { WORKERS: '40', DOWNSTREAM_CONNECTIONS: '40', QUEUE_CAPACITY: '100', AIMD_LATENCY_TARGET_MS: '90', AIMD_COOLDOWN_MS: '0' },
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
