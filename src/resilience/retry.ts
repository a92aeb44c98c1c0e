import { setTimeout as delay } from 'node:timers/promises';
import type { Clock, Random } from '../clock.js';
import type { DownstreamResponse } from '../downstream/client.js';
import type { AttemptRecord } from '../storage/types.js';
import { fullJitterDelayMs, parseRetryAfterMs } from './backoff.js';
import { classifyError, classifyStatus, isAttemptError } from './classify.js';

export interface RetryOptions {
  /** Attempts in total; 1 = no retry. @default 4 */
  maxAttempts: number;
  /** @default 100 */
  baseDelayMs: number;
  /** @default 2000 */
  maxDelayMs: number;
  /** Hard timeout of one attempt. @default 5000 */
  attemptTimeoutMs: number;
  clock: Clock;
  random: Random;
  /** Asked before each retry; false makes the failed attempt final (retry budget). */
  mayRetry?: () => boolean;
  /** Waits between attempts; rejects when `signal` aborts. Tests inject one that moves a fake clock. @default node:timers/promises setTimeout */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  onAttempt?: (record: AttemptRecord) => void;
  onRetry?: (event: { retryNumber: number; delayMs: number; reason: string }) => void;
}

export type AttemptFn = (context: { signal: AbortSignal; timeoutMs: number; attemptNumber: number }) => Promise<DownstreamResponse>;

export type RetryResult =
  /** The downstream gave a definitive answer (2xx or a non-retryable 4xx). */
  | { kind: 'answered'; response: DownstreamResponse; attempts: AttemptRecord[] }
  /** No definitive answer: attempts, deadline or budget ran out, or the failure was permanent. */
  | { kind: 'exhausted'; attempts: AttemptRecord[]; lastError: string; lastTimedOut: boolean; permanent: boolean }
  /** The caller's signal fired. */
  | { kind: 'aborted'; attempts: AttemptRecord[] };

/** Stops the retry loop early without being an attempt error: the deadline leaves no room. */
const MIN_USEFUL_ATTEMPT_MS = 1;

/**
 * Runs attempts with exponential backoff and full jitter until a definitive
 * answer, a permanent failure, maxAttempts, or the deadline. Never sleeps past
 * the deadline: a backoff (or a downstream Retry-After) that would end after it
 * makes the last failure final instead.
 */
export class RetryManager {
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;

  constructor(private readonly options: RetryOptions) {
    this.sleep = options.sleep ?? ((ms, signal) => delay(ms, undefined, { signal }));
  }

  async execute(attempt: AttemptFn, context: { deadlineAt: number; signal: AbortSignal }): Promise<RetryResult> {
    const { clock } = this.options;
    const attempts: AttemptRecord[] = [];
    for (let attemptNumber = 1; ; attemptNumber++) {
      const remainingMs = context.deadlineAt - clock.now();
      const timeoutMs = Math.min(this.options.attemptTimeoutMs, remainingMs);
      if (attemptNumber === 1 && remainingMs < MIN_USEFUL_ATTEMPT_MS) {
        return { kind: 'exhausted', attempts, lastError: 'deadline passed before the first attempt', lastTimedOut: true, permanent: false };
      }
      const startedAt = clock.now();
      let response: DownstreamResponse | undefined;
      let failure: { reason: string; timedOut: boolean; transient: boolean };
      try {
        response = await attempt({ signal: context.signal, timeoutMs, attemptNumber });
        const classification = classifyStatus(response.status);
        const record: AttemptRecord = {
          at: new Date(startedAt).toISOString(),
          outcome: response.status < 400 ? 'success' : 'http_error',
          status: response.status,
          durationMs: clock.now() - startedAt,
        };
        attempts.push(record);
        this.options.onAttempt?.(record);
        if (classification.kind === 'definitive') return { kind: 'answered', response, attempts };
        failure = { reason: `HTTP ${response.status}`, timedOut: false, transient: classification.kind === 'transient' };
      } catch (error) {
        if (!isAttemptError(error)) throw error;
        const classification = classifyError(error);
        const record: AttemptRecord = {
          at: new Date(startedAt).toISOString(),
          outcome: error.code === 'ATTEMPT_TIMEOUT' ? 'timeout' : error.code === 'ATTEMPT_ABORTED' ? 'aborted' : 'connection_error',
          durationMs: clock.now() - startedAt,
          error: error.message,
        };
        attempts.push(record);
        this.options.onAttempt?.(record);
        if (classification.kind === 'aborted') return { kind: 'aborted', attempts };
        failure = { reason: classification.kind === 'transient' ? classification.reason : error.message, timedOut: error.code === 'ATTEMPT_TIMEOUT', transient: true };
      }

      const exhausted = { kind: 'exhausted' as const, attempts, lastError: failure.reason, lastTimedOut: failure.timedOut, permanent: !failure.transient };
      if (!failure.transient || attemptNumber >= this.options.maxAttempts) return exhausted;

      const backoffMs = fullJitterDelayMs(attemptNumber - 1, this.options, this.options.random);
      const retryAfterMs = parseRetryAfterMs(response?.headers['retry-after'], clock.now());
      // Retry-After is the least delay the downstream asked for; jitter may only add to it.
      const delayMs = Math.max(backoffMs, retryAfterMs ?? 0);
      if (clock.now() + delayMs + MIN_USEFUL_ATTEMPT_MS >= context.deadlineAt) return exhausted;
      if (this.options.mayRetry && !this.options.mayRetry()) return exhausted;
      this.options.onRetry?.({ retryNumber: attemptNumber, delayMs, reason: failure.reason });
      if (delayMs > 0) {
        try {
          await this.sleep(delayMs, context.signal);
        } catch {
          return { kind: 'aborted', attempts };
        }
      }
      if (context.signal.aborted) return { kind: 'aborted', attempts };
    }
  }
}
