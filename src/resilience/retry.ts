import { setTimeout as delay } from 'node:timers/promises';
import type { Clock, Random } from '../clock.js';
import type { AttemptRecord } from '../domain.js';
import type { DlqCause } from '../storage/types.js';
import { runAttempt, type AttemptResult, type AttemptWatch, type AttemptWatcher, type CallResponse } from './attempt.js';
import { fullJitterDelayMs, parseRetryAfterMs } from './backoff.js';
import type { RetrySafety } from './classify.js';
import type { Refusal } from './refusal.js';

export interface RetryOptions {
  /** Attempts in total; 1 = no retry. @default 4 */
  maxAttempts: number;
  /** @default 100 */
  baseDelayMs: number;
  /** @default 2000 */
  maxDelayMs: number;
  /** Hard timeout of one attempt. @default 5000 */
  attemptTimeoutMs: number;
  /** The request deadline callers give (REQUEST_DEADLINE_MS): the least useful attempt is at most half of it. @default attemptTimeoutMs */
  requestDeadlineMs?: number;
  clock: Clock;
  random: Random;
  /**
   * The retry budget: told of every execution, asked before each retry (a refusal makes the failed attempt
   * final), and told when one ended without a definitive answer. Each call names the execution's `canaryId`.
   */
  budget?: { recordRequest(id?: string): void; tryRetry(id?: string): boolean; recordFailure?(id?: string): void };
  /** Waits between attempts; rejects when `signal` aborts. Tests inject one that moves a fake clock. @default node:timers/promises setTimeout */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  onAttempt?: (record: AttemptRecord) => void;
  onRetry?: (event: { retryNumber: number; delayMs: number; reason: string }) => void;
}

/** One attempt. It may throw a Refusal (breaker open, rate limited) when it sent nothing. */
export type AttemptFn = (context: {
  signal: AbortSignal;
  timeoutMs: number;
  attemptNumber: number;
  /** This attempt's watcher (tracing) when the request is watched: send its traceparent, tell it the breakers' decisions. */
  watcher?: AttemptWatcher | undefined;
}) => Promise<CallResponse>;

export type RetryResult =
  /** The downstream gave a definitive answer (2xx or a non-retryable 4xx). */
  | { kind: 'answered'; response: CallResponse; attempts: AttemptRecord[] }
  /** No definitive answer: attempts, deadline or budget ran out, a breaker opened, or the failure was permanent. */
  | { kind: 'exhausted'; attempts: AttemptRecord[]; lastError: string; lastTimedOut: boolean; permanent: boolean; tooLarge: boolean; cause: DlqCause }
  /** The first attempt was refused by a protection (breaker open, rate limited): the downstream received nothing. */
  | { kind: 'refused'; attempts: AttemptRecord[]; refusal: Refusal }
  /** The caller's signal fired. */
  | { kind: 'aborted'; attempts: AttemptRecord[] };

/** Stops the retry loop early without being an attempt error: the deadline leaves no room. */
const MIN_USEFUL_ATTEMPT_MS = 1;
/** Successful attempts whose median duration is the least time worth starting an attempt with. */
const RECENT_SUCCESSES = 32;

/**
 * Runs attempts with exponential backoff and full jitter until a definitive
 * answer, a permanent failure, maxAttempts, or the deadline. Never sleeps past
 * the deadline: a backoff (or a downstream Retry-After) that would end after it
 * makes the last failure final instead.
 */
export class RetryManager {
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Durations of the latest successful attempts (a ring), for `minUsefulAttemptMs`. */
  private readonly recentSuccessMs = new Float64Array(RECENT_SUCCESSES);
  private recentCount = 0;
  private recentNext = 0;
  private recentMedianMs: number | undefined;

  constructor(private readonly options: RetryOptions) {
    this.sleep = options.sleep ?? ((ms, signal) => delay(ms, undefined, { signal }));
  }

  /**
   * `context.suspend`, when given, is called before each backoff and what it
   * returns is awaited after it: the worker pool lends the request's worker to
   * other work while it sleeps (WorkerLease.suspend). `context.watch`, when
   * given, watches each attempt (tracing) and hears how it ended.
   * `context.canaryId`: the relay-made id of the request, its side of a canary retry budget.
   */
  async execute(
    attempt: AttemptFn,
    context: {
      deadlineAt: number;
      signal: AbortSignal;
      suspend?: () => () => Promise<void>;
      safety?: RetrySafety;
      watch?: AttemptWatch | undefined;
      canaryId?: string | undefined;
    },
  ): Promise<RetryResult> {
    const { clock } = this.options;
    const { budget } = this.options;
    const { canaryId } = context;
    const safety = context.safety ?? { method: 'POST', keyed: true };
    const attempts: AttemptRecord[] = [];
    budget?.recordRequest(canaryId);
    let failure: Extract<AttemptResult, { kind: 'failed' }> | undefined;
    const exhausted = (cause: DlqCause): RetryResult => {
      budget?.recordFailure?.(canaryId);
      return exhaustedResult(cause);
    };
    const exhaustedResult = (cause: DlqCause): RetryResult => ({
      kind: 'exhausted',
      attempts,
      lastError: failure?.reason ?? 'too little of the deadline left for a first attempt',
      lastTimedOut: failure ? failure.timedOut : true,
      permanent: failure ? !failure.retryable : false,
      tooLarge: failure?.tooLarge ?? false,
      cause,
    });
    let waitedMs = 0;
    for (let attemptNumber = 1; ; attemptNumber++) {
      const remainingMs = context.deadlineAt - clock.now();
      const timeoutMs = Math.min(this.options.attemptTimeoutMs, remainingMs);
      if (attemptNumber === 1 && remainingMs < this.minUsefulAttemptMs()) return exhausted('deadline');
      const watcher = context.watch?.attempt(attemptNumber, waitedMs);
      const result = await runAttempt(() => attempt({ signal: context.signal, timeoutMs, attemptNumber, watcher }), safety, clock);
      watcher?.end(result);
      if (result.kind === 'refused') {
        // Nothing reached the downstream: not an attempt. Before any attempt the caller answers 503 at once.
        if (attempts.length === 0) return { kind: 'refused', attempts, refusal: result.refusal };
        return exhausted(result.refusal.code === 'CIRCUIT_OPEN' ? 'breaker_open' : 'deadline');
      }
      attempts.push(result.record);
      this.options.onAttempt?.(result.record);
      if (result.kind === 'aborted') return { kind: 'aborted', attempts };
      // The call's own time when known: a wait for a rate-limit token is the limiter's business (it
      // refuses a wait that would leave the call no time), not a measure of the downstream.
      if (result.record.outcome === 'success') this.recordSuccess(result.kind === 'answered' ? (result.response.callMs ?? result.record.durationMs) : result.record.durationMs);
      if (result.kind === 'answered') return { kind: 'answered', response: result.response, attempts };
      failure = result;
      if (!failure.retryable) return exhausted('non_retryable');
      if (attemptNumber >= this.options.maxAttempts) return exhausted(failure.timedOut ? 'timeout' : 'attempts_exhausted');

      const backoffMs = fullJitterDelayMs(attemptNumber - 1, this.options, this.options.random);
      const retryAfterMs = parseRetryAfterMs(headerValue(failure.response?.headers['retry-after']), clock.now());
      // Retry-After is the least delay the downstream asked for; jitter may only add to it.
      const delayMs = Math.max(backoffMs, retryAfterMs ?? 0);
      // Out of time for another attempt after `waitMs`: the failure is final.
      const outOfTime = (waitMs: number) => clock.now() + waitMs + this.minUsefulAttemptMs() > context.deadlineAt;
      const finalCause = failure.timedOut ? 'timeout' : 'deadline';
      const finalFailure = () => exhausted(finalCause);
      if (outOfTime(delayMs)) return finalFailure();
      if (budget && !budget.tryRetry(canaryId)) return exhausted('retry_budget');
      this.options.onRetry?.({ retryNumber: attemptNumber, delayMs, reason: failure.reason });
      if (delayMs > 0) {
        const resume = context.suspend?.();
        try {
          await this.sleep(delayMs, context.signal);
        } catch {
          return { kind: 'aborted', attempts };
        }
        // Taking a worker again may wait behind other calls: the deadline may have come meanwhile.
        if (resume) await resume();
        if (outOfTime(0)) return finalFailure();
      }
      waitedMs = delayMs;
      if (context.signal.aborted) return { kind: 'aborted', attempts };
    }
  }

  /**
   * The least time left before the deadline worth starting an attempt with: the
   * median duration of the latest successful calls (1 ms before any), at most half
   * the attempt timeout and half the request deadline, so that a fresh request
   * always gets its first attempt and keeps the median current (uncapped, a median
   * above what a fresh request has would refuse every request, and with no new
   * success it would never come down). With less, the attempt would more likely
   * than not be cut off by the deadline, a call the downstream serves for nothing.
   * It matters most after a slow spell: a queue as deep as the deadline hands out
   * requests with a few ms left, every call then ends cut off, no call ends
   * healthy, and AIMD has nothing to grow on (S5 stuck at 2 workers and 23%
   * success for the 4 s after its latency spike, 2026-11-30).
   */
  minUsefulAttemptMs(): number {
    if (this.recentCount === 0) return MIN_USEFUL_ATTEMPT_MS;
    if (this.recentMedianMs === undefined) {
      const sorted = this.recentSuccessMs.slice(0, this.recentCount).sort();
      const middle = this.recentCount >> 1;
      this.recentMedianMs = this.recentCount % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
    }
    const cap = Math.min(this.options.attemptTimeoutMs, this.options.requestDeadlineMs ?? this.options.attemptTimeoutMs) / 2;
    return Math.max(MIN_USEFUL_ATTEMPT_MS, Math.min(this.recentMedianMs, cap));
  }

  private recordSuccess(durationMs: number): void {
    this.recentSuccessMs[this.recentNext] = durationMs;
    this.recentNext = (this.recentNext + 1) % RECENT_SUCCESSES;
    this.recentCount = Math.min(RECENT_SUCCESSES, this.recentCount + 1);
    this.recentMedianMs = undefined;
  }
}

/** A header's single value (undici gives arrays for repeated ones). */
export function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
