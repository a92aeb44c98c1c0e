import { setTimeout as delay } from 'node:timers/promises';
import type { Clock } from '../clock.js';
import type { CircuitBreaker } from '../resilience/circuit-breaker.js';
import { classifyStatus } from '../resilience/classify.js';
import type { RateLimiter } from '../resilience/rate-limiter.js';
import { AttemptAbortedError, type DownstreamClient, type DownstreamResponse, type ForwardRequest } from './client.js';

/** One downstream the relay may call, with the protections that are its own. */
export interface Upstream {
  /** `primary`, `fallback-1`, `fallback-2`...: bounded, so it may label metrics. */
  name: string;
  url: string;
  client: DownstreamClient;
  breaker: CircuitBreaker;
  limiter: RateLimiter;
}

/** Every breaker is open: nothing was sent. */
export class CircuitOpenRefusal extends Error {
  readonly code = 'CIRCUIT_OPEN';
  constructor(readonly retryAfterMs: number) {
    super(`circuit open; next probe in ${retryAfterMs} ms`);
  }
}

/** The rate limit has no call free before the deadline: nothing was sent. */
export class RateLimitRefusal extends Error {
  readonly code = 'RATE_LIMITED';
  constructor(readonly retryAfterMs: number) {
    super(`rate limited; next call free in ${retryAfterMs} ms`);
  }
}

export type Refusal = CircuitOpenRefusal | RateLimitRefusal;

export function isRefusal(error: unknown): error is Refusal {
  return error instanceof CircuitOpenRefusal || error instanceof RateLimitRefusal;
}

/** `callMs`: the call alone, from leaving to the answer read (no rate-limit wait). */
export type UpstreamResponse = DownstreamResponse & { upstream: string; callMs: number };

/** What the adaptive concurrency limit hears of every call that reached a downstream. */
export interface CallOutcome {
  upstream: string;
  /** Timeouts and 429/503 answers; latency above target is judged by the listener. */
  overload: boolean;
  latencyMs: number;
  reason: string;
}

export interface UpstreamSetOptions {
  clock: Clock;
  /** DOWNSTREAM_TIMEOUT_MS: an attempt cut shorter than this by the request's deadline says nothing about the downstream. */
  attemptTimeoutMs: number;
  /** Waits out a rate-limit delay; rejects when `signal` aborts. @default node:timers/promises setTimeout */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /**
   * Told of every call sent (the adaptive concurrency limit): `begin` as it
   * leaves; what it returns when it ends, with its outcome or, when it ended with
   * no verdict on the downstream, null.
   */
  calls?: { begin(): (outcome: CallOutcome | null) => void };
}

const OVERLOAD_STATUSES = new Set([429, 503]);
/** The least time worth giving a call after a rate-limit wait. */
const MIN_CALL_MS = 250;

/**
 * One attempt: the primary if its breaker lets the call through, else the
 * fallbacks in order; then that downstream's rate limit; then the call, whose
 * outcome feeds the breaker. The order of these steps is fixed here and nowhere else.
 */
export class UpstreamSet {
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  private waitingForToken = 0;

  constructor(
    readonly upstreams: readonly Upstream[],
    private readonly options: UpstreamSetOptions,
  ) {
    if (upstreams.length === 0) throw new TypeError('Expected at least one upstream, got none');
    this.sleep = options.sleep ?? ((ms, signal) => delay(ms, undefined, { signal }));
  }

  /** Attempts waiting for a rate-limit token: they hold a worker but are not calls (yet). */
  get waitingForRateLimit(): number {
    return this.waitingForToken;
  }

  get primary(): Upstream {
    return this.upstreams[0]!;
  }

  /** While every downstream's breaker is open: ms until the soonest probe; else null (some downstream may be called). */
  allOpenForMs(): number | null {
    let soonest = Number.POSITIVE_INFINITY;
    for (const upstream of this.upstreams) {
      const ms = upstream.breaker.openForMs();
      if (ms === null) return null;
      soonest = Math.min(soonest, ms);
    }
    return soonest;
  }

  /**
   * Throws CircuitOpenRefusal or RateLimitRefusal when nothing was sent, the
   * client's AttemptError when the call failed, AttemptAbortedError when `signal` fired.
   */
  async send(request: ForwardRequest, context: { timeoutMs: number; deadlineAt: number; signal: AbortSignal }): Promise<UpstreamResponse> {
    const { clock } = this.options;
    let nextProbeMs = Number.POSITIVE_INFINITY;
    for (const upstream of this.upstreams) {
      const permit = upstream.breaker.tryAcquire();
      if (!permit.allowed) {
        nextProbeMs = Math.min(nextProbeMs, permit.retryAfterMs);
        continue;
      }
      // Leave the call itself room to answer: a token that arrives with 1 ms left only buys a doomed attempt.
      const minCallMs = Math.min(context.timeoutMs, MIN_CALL_MS);
      const waitMs = upstream.limiter.reserve(Math.max(0, context.deadlineAt - clock.now() - minCallMs));
      if (waitMs === null) {
        permit.cancel();
        throw new RateLimitRefusal(Math.max(1, Math.ceil(1000 / upstream.limiter.currentRatePerSecond())));
      }
      if (waitMs > 0) {
        this.waitingForToken++;
        try {
          await this.sleep(waitMs, context.signal);
        } catch {
          permit.cancel();
          upstream.limiter.refund();
          throw new AttemptAbortedError();
        } finally {
          this.waitingForToken--;
        }
      }
      const timeoutMs = Math.max(1, Math.min(context.timeoutMs, context.deadlineAt - clock.now()));
      const startedAt = clock.now();
      const ended = this.options.calls?.begin();
      try {
        const response = await upstream.client.send(request, { timeoutMs, signal: context.signal });
        const latencyMs = clock.now() - startedAt;
        const failed = classifyStatus(response.status).kind !== 'definitive';
        permit.record({ ok: !failed, durationMs: latencyMs, reason: `HTTP ${response.status}` });
        ended?.({ upstream: upstream.name, overload: OVERLOAD_STATUSES.has(response.status), latencyMs, reason: `HTTP ${response.status}` });
        return { ...response, upstream: upstream.name, callMs: latencyMs };
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        if (code === 'ATTEMPT_ABORTED') {
          // Our own shutdown, not the downstream's fault.
          permit.cancel();
          ended?.(null);
          throw error;
        }
        const latencyMs = clock.now() - startedAt;
        const reason = (error as Error).message;
        if (code === 'ATTEMPT_TIMEOUT' && timeoutMs < this.options.attemptTimeoutMs) {
          // The request's deadline cut this attempt short, not the downstream's slowness: no verdict on it.
          permit.cancel();
          ended?.(null);
          throw error;
        }
        permit.record({ ok: false, durationMs: latencyMs, reason });
        ended?.({ upstream: upstream.name, overload: code === 'ATTEMPT_TIMEOUT', latencyMs, reason });
        throw error;
      }
    }
    throw new CircuitOpenRefusal(Math.max(1, Math.round(nextProbeMs)));
  }

  async close(): Promise<void> {
    const results = await Promise.allSettled(this.upstreams.map((u) => u.client.close()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}
