import type { ProtectionMode } from '../resilience/mode.js';

/** Retry policy of one request: attempts in all, full-jitter base and cap. */
export interface RetryKnobs {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

/** `canaryPercent`, in each protection's knobs: with mode `canary`, the share of requests it enforces on. */
export interface BreakerKnobs {
  mode: ProtectionMode;
  canaryPercent: number;
  windowMs: number;
  minimumCalls: number;
  failureRateThreshold: number;
  slowCallMs: number;
  slowCallRateThreshold: number;
  /** The last this many calls all failed, within windowMs: open (0: off). */
  consecutiveFailures: number;
  /** First open interval; each failed probe doubles it up to openMaxMs. */
  openMs: number;
  openMaxMs: number;
  halfOpenProbes: number;
}

export interface RetryBudgetKnobs {
  mode: ProtectionMode;
  canaryPercent: number;
  ratio: number;
  minRetriesPerSecond: number;
  windowMs: number;
}

export interface RateLimitKnobs {
  mode: ProtectionMode;
  canaryPercent: number;
  ratePerSecond: number;
  burst: number;
  warmupMs: number;
  warmupStartRatePerSecond: number;
}

export interface AimdKnobs {
  mode: ProtectionMode;
  canaryPercent: number;
  min: number;
  latencyTargetMs: number;
  decreaseFactor: number;
  cooldownMs: number;
  plateauRoundTrips: number;
}

/**
 * One route, fully resolved: every field the routes file may leave out already
 * holds the environment's value. Built by the routes-file loader, or from the
 * environment alone for the `default` route.
 */
export interface RouteSpec {
  /** `[a-z0-9-]{1,32}`; `batch` is reserved. */
  name: string;
  /**
   * Base URL (http or https) the client's rest and query are appended to. Only the
   * `default` route built from DOWNSTREAM_URL may carry a query. undefined: the
   * embedded simulator (DOWNSTREAM_URL unset and no routes file).
   */
  target: string | undefined;
  /** Upper-case; default every method but TRACE and CONNECT. */
  methods: readonly string[];
  /** Hard timeout of one attempt. */
  timeoutMs: number;
  retry: RetryKnobs;
  idempotency: {
    /** The header the key goes out under. @default 'Idempotency-Key' */
    header: string;
    /** Make up a key (`relay-<uuid>`) for a request that has none, so POST/PATCH may be retried. @default false */
    generate: boolean;
  };
  headers: {
    /** Lower-case name -> value after `${VAR}` expansion: secrets, never logged or stored. */
    set: Readonly<Record<string, string>>;
    /** Lower-case names removed from the client's request. */
    remove: readonly string[];
    /** Lower-case names treated like Authorization (redacted, stored encrypted). */
    secret: readonly string[];
  };
  /** null: no rate limit on this route. */
  rateLimit: RateLimitKnobs | null;
  concurrency: { max: number };
  breaker: BreakerKnobs;
  retryBudget: RetryBudgetKnobs;
  aimd: AimdKnobs;
  queue: { capacity: number; lowPriorityMaxFill: number };
  /** Tokens a caller presents in X-Relay-Token (secrets). Empty: any caller. */
  clients: readonly string[];
  /** Other routes, by name, tried in order while this route's breaker is open. */
  fallbacks: readonly string[];
  /** The `default` route from the environment: FALLBACK_URLS, each an anonymous downstream. */
  fallbackUrls: readonly string[];
}
