import { setTimeout as delay } from 'node:timers/promises';
import type { Clock } from '../clock.js';
import { AttemptAbortedError, type DownstreamClient, type DownstreamResponse, type ForwardRequest } from '../downstream/client.js';
import type { AttemptWatcher } from '../resilience/attempt.js';
import type { CircuitBreaker } from '../resilience/circuit-breaker.js';
import { classifyStatus } from '../resilience/classify.js';
import type { SlotGrant } from '../fleet/fleet-rate-limiter.js';
import type { RateLimiter } from '../resilience/rate-limiter.js';
import type { ProbeGate } from '../fleet/fleet-breakers.js';
import { DeadlineExceededError } from '../errors.js';
import { CircuitOpenRefusal, RateLimitRefusal } from '../resilience/refusal.js';

/**
 * One downstream the relay may call, with the protections that are its own: a
 * route's target, or an anonymous FALLBACK_URLS entry of the `default` route.
 * A route's downstream is shared by every route that names it as a fallback.
 */
export interface Downstream {
  /** The route that owns it (bounded: a route name). */
  route: string;
  /** Its label in its owner's set: `primary`, or `fallback-N` for an anonymous fallback. */
  name: string;
  /** The target, user-info included: never log it (see redactUrl). */
  url: string;
  client: DownstreamClient;
  breaker: CircuitBreaker;
  /** null: no rate limit. */
  limiter: DownstreamLimiter | null;
  /** With STORE=redis: the fleet's half-open probe slots for this downstream (issue 14). */
  probeGate?: ProbeGate;
  /** Applied at send time, so each fallback sends its own credentials. */
  headers: { set: Readonly<Record<string, string>>; remove: readonly string[] };
}

/**
 * A RateLimiter, or one with its interface whose `reserve` may have to ask
 * elsewhere first (the fleet's, issue 14): then it answers with a promise.
 */
export interface DownstreamLimiter extends Pick<RateLimiter, 'refund' | 'startWarmup' | 'warmingUp' | 'currentRatePerSecond' | 'snapshot' | 'headerState'> {
  /** `id`: the relay-made id of the request (or job), its side in canary mode. */
  reserve(maxWaitMs: number, id?: string): number | null | Promise<number | null>;
  /** The fleet's: `reserve` with the slot's deadline, and the word that a caller woke past it. */
  reserveSlot?(maxWaitMs: number): SlotGrant | null | Promise<SlotGrant | null>;
  slotMissed?(): void;
  /** Canary mode: a call it let go failed (counted on the side of `id`). Only the local RateLimiter has canary mode. */
  recordFailure?(id: string | undefined): void;
}

/** `callMs`: the call alone, from leaving to the answer read (no rate-limit wait). */
export type DownstreamCallResponse = DownstreamResponse & { upstream: string; callMs: number };

/** What the adaptive concurrency limit hears of every call that reached a downstream. */
export interface CallOutcome {
  upstream: string;
  /** A 429: the downstream refused for load. Latency above target is judged by the listener. */
  overload: boolean;
  /** A timeout or a 503: overload only if such failures grow with concurrency (the listener judges). */
  failed: boolean;
  latencyMs: number;
  reason: string;
}

export interface DownstreamSetOptions {
  clock: Clock;
  /** The route's attempt timeout: an attempt cut shorter than this by the request's deadline says nothing about the downstream. */
  attemptTimeoutMs: number;
  /** Waits out a rate-limit delay; rejects when `signal` aborts. @default node:timers/promises setTimeout */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /**
   * Told of every call sent (the adaptive concurrency limit): `begin` as it
   * leaves; what it returns when it ends, with its outcome or, when it ended with
   * no verdict on the downstream, null. `acquireSlot` (a canary AIMD) may hold a
   * call of the canary's enforced side before it leaves; see AimdLimiter.acquireSlot.
   */
  calls?: {
    begin(id?: string): (outcome: CallOutcome | null) => void;
    acquireSlot?(
      id: string | undefined,
      wait: { signal: AbortSignal; deadlineAt: number; timeout: () => Error; aborted: () => Error },
    ): (() => void) | Promise<() => void> | null;
  };
}

/** Retry-After of a probe refused because the fleet's probes of this round are all out. */
const FLEET_PROBES_OUT_MS = 100;

/** The least time worth giving a call after a rate-limit wait. */
const MIN_CALL_MS = 250;

/** One member of a route's set: the downstream and the label it has in this route (`primary`, `fallback-1`...). */
interface Member {
  label: string;
  downstream: Downstream;
}

/**
 * One attempt of one route: its own downstream if its breaker lets the call
 * through, else the fallbacks in order; then that downstream's rate limit; then
 * its credentials; then the call, whose outcome feeds the breaker.
 */
export class DownstreamSet {
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  private readonly members: readonly Member[];
  private waitingForToken = 0;

  constructor(
    downstreams: readonly Downstream[],
    private readonly options: DownstreamSetOptions,
  ) {
    if (downstreams.length === 0) throw new TypeError('Expected at least one downstream, got none');
    this.members = downstreams.map((downstream, index) => ({ label: index === 0 ? 'primary' : `fallback-${index}`, downstream }));
    this.sleep = options.sleep ?? ((ms, signal) => delay(ms, undefined, { signal }));
  }

  /** The downstreams in the order they are tried, each with its label in this set. */
  get entries(): readonly Member[] {
    return this.members;
  }

  /** Attempts waiting for a rate-limit token: they hold a worker but are not calls (yet). */
  get waitingForRateLimit(): number {
    return this.waitingForToken;
  }

  get primary(): Downstream {
    return this.members[0]!.downstream;
  }

  /**
   * While every breaker of the set is open: ms until the soonest probe; else null (some downstream may be called).
   * `canaryId`: the request's relay-made id; without it a canary breaker counts the request on its shadow side.
   * Given, a non-null answer is taken as the request's refusal (the canary counts it).
   */
  allOpenForMs(canaryId?: string): number | null {
    let soonest = Number.POSITIVE_INFINITY;
    for (const { downstream } of this.members) {
      const ms = downstream.breaker.openForMs(canaryId);
      if (ms === null) return null;
      soonest = Math.min(soonest, ms);
    }
    // The request is refused here, before a worker would have asked each breaker: a canary counts it now.
    if (canaryId !== undefined) for (const { downstream } of this.members) downstream.breaker.countRefusal(canaryId);
    return soonest;
  }

  /**
   * Throws CircuitOpenRefusal or RateLimitRefusal when nothing was sent, the
   * client's AttemptError when the call failed, AttemptAbortedError when `signal` fired.
   * `context.watcher` (tracing) hears each breaker's decision, and its traceparent replaces the request's.
   * `context.canaryId`: the relay-made id of the request (or job, or DLQ entry); it picks each canary protection's side.
   */
  async send(
    request: ForwardRequest,
    context: {
      timeoutMs: number;
      deadlineAt: number;
      signal: AbortSignal;
      watcher?: Pick<AttemptWatcher, 'traceparent' | 'breaker'> | undefined;
      canaryId?: string | undefined;
    },
  ): Promise<DownstreamCallResponse> {
    const { clock } = this.options;
    const { canaryId } = context;
    let nextProbeMs = Number.POSITIVE_INFINITY;
    for (const { label, downstream } of this.members) {
      const permit = downstream.breaker.tryAcquire(canaryId);
      if (!permit.allowed) {
        context.watcher?.breaker(label, 'open');
        nextProbeMs = Math.min(nextProbeMs, permit.retryAfterMs);
        continue;
      }
      // A probe also needs one of the fleet's probe slots of this round (STORE=redis).
      const probeDone = permit.probe && downstream.probeGate ? await downstream.probeGate.acquire() : undefined;
      if (probeDone === null) {
        permit.cancel();
        nextProbeMs = Math.min(nextProbeMs, FLEET_PROBES_OUT_MS);
        continue;
      }
      const { limiter } = downstream;
      if (limiter) {
        // Leave the call itself room to answer: a token that arrives with 1 ms left only buys a doomed attempt.
        const minCallMs = Math.min(context.timeoutMs, MIN_CALL_MS);
        // A fleet slot is good until its deadline: a caller whose timer fired later takes another one.
        for (;;) {
          const maxWaitMs = Math.max(0, context.deadlineAt - clock.now() - minCallMs);
          let reserved = limiter.reserveSlot ? limiter.reserveSlot(maxWaitMs) : limiter.reserve(maxWaitMs, canaryId);
          if (reserved instanceof Promise) {
            // Waiting on the fleet's lease is waiting for a token too: it holds a worker but is no call.
            this.waitingForToken++;
            try {
              reserved = await reserved;
            } finally {
              this.waitingForToken--;
            }
          }
          // A local token is good whenever its caller wakes.
          const grant = typeof reserved === 'number' ? { waitMs: reserved, sendBy: Number.POSITIVE_INFINITY } : reserved;
          if (grant === null) {
            probeDone?.(null);
            permit.cancel();
            throw new RateLimitRefusal(Math.max(1, Math.ceil(1000 / limiter.currentRatePerSecond())));
          }
          if (grant.waitMs > 0) {
            this.waitingForToken++;
            try {
              await this.sleep(grant.waitMs, context.signal);
            } catch {
              probeDone?.(null);
              permit.cancel();
              limiter.refund();
              throw new AttemptAbortedError('no');
            } finally {
              this.waitingForToken--;
            }
          }
          if (clock.now() <= grant.sendBy) break;
          limiter.slotMissed?.();
        }
      }
      let releaseSlot: (() => void) | undefined;
      try {
        releaseSlot = await this.canarySlot(canaryId, context);
      } catch (error) {
        probeDone?.(null);
        permit.cancel();
        limiter?.refund();
        throw error;
      }
      const timeoutMs = Math.max(1, Math.min(context.timeoutMs, context.deadlineAt - clock.now()));
      context.watcher?.breaker(label, permit.probe ? 'probe' : 'allowed');
      const startedAt = clock.now();
      const ended = this.options.calls?.begin(canaryId);
      try {
        const response = await downstream.client.send(withCredentials(request, downstream, context.watcher?.traceparent), { timeoutMs, signal: context.signal });
        const latencyMs = clock.now() - startedAt;
        const failed = classifyStatus(response.status).kind !== 'definitive';
        permit.record({ ok: !failed, durationMs: latencyMs, reason: `HTTP ${response.status}` });
        if (failed) limiter?.recordFailure?.(canaryId);
        probeDone?.(!failed);
        ended?.({ upstream: label, overload: response.status === 429, failed: response.status === 503, latencyMs, reason: `HTTP ${response.status}` });
        return { ...response, upstream: label, callMs: latencyMs };
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        const latencyMs = clock.now() - startedAt;
        // Our own shutdown, an answer too large to carry, or an attempt cut short by the request's
        // deadline rather than the downstream's slowness: no verdict on the downstream.
        const noVerdict =
          code === 'ATTEMPT_ABORTED' ||
          code === 'RESPONSE_TOO_LARGE' ||
          (code === 'ATTEMPT_TIMEOUT' && timeoutMs < this.options.attemptTimeoutMs);
        if (noVerdict) {
          probeDone?.(null);
          permit.cancel();
          ended?.(null);
          throw error;
        }
        const reason = (error as Error).message;
        permit.record({ ok: false, durationMs: latencyMs, reason });
        limiter?.recordFailure?.(canaryId);
        probeDone?.(false);
        ended?.({ upstream: label, overload: false, failed: code === 'ATTEMPT_TIMEOUT', latencyMs, reason });
        throw error;
      } finally {
        releaseSlot?.();
      }
    }
    throw new CircuitOpenRefusal(Math.max(1, Math.round(nextProbeMs)));
  }

  /**
   * A canary AIMD's slot for a call on its enforced side (see AimdLimiter.acquireSlot); undefined when none is
   * needed. Waiting holds a worker but is no call, like a rate-limit wait. Past the deadline: the queue's
   * DeadlineExceededError, as enforce would have left the request in the queue.
   */
  private async canarySlot(canaryId: string | undefined, context: { deadlineAt: number; signal: AbortSignal }): Promise<(() => void) | undefined> {
    const slot = this.options.calls?.acquireSlot?.(canaryId, {
      signal: context.signal,
      deadlineAt: context.deadlineAt,
      timeout: () => new DeadlineExceededError('The request deadline passed while it waited for the concurrency limit (AIMD canary).'),
      aborted: () => new AttemptAbortedError('no'),
    });
    if (!slot) return undefined;
    if (!(slot instanceof Promise)) return slot;
    this.waitingForToken++;
    try {
      return await slot;
    } finally {
      this.waitingForToken--;
    }
  }

  /** Closes the clients of the downstreams this set owns (its own and anonymous fallbacks; not other routes'). */
  async close(): Promise<void> {
    const owner = this.primary.route;
    const own = this.members.filter(({ downstream }) => downstream.route === owner);
    const results = await Promise.allSettled(own.map(({ downstream }) => downstream.client.close()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}

/** The route's `headers.remove`, then `headers.set` (replacing a client's value); the attempt's traceparent when traced. */
function withCredentials(request: ForwardRequest, downstream: Downstream, traceparent: string | undefined): ForwardRequest {
  const { set, remove } = downstream.headers;
  if (remove.length === 0 && Object.keys(set).length === 0 && traceparent === undefined) return request;
  const headers = { ...request.headers };
  for (const name of remove) delete headers[name];
  Object.assign(headers, set);
  if (traceparent !== undefined) headers.traceparent = traceparent;
  return { ...request, headers };
}
