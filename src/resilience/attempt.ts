import type { Clock } from '../clock.js';
import type { DownstreamResponse } from '../downstream/client.js';
import type { AttemptRecord } from '../domain.js';
import { classifyError, classifyStatus, isAttemptError, type RetrySafety } from './classify.js';
import { isRefusal, type Refusal } from './refusal.js';

/** What a call through a route's protections returns when a downstream answered. */
export type CallResponse = DownstreamResponse & { upstream?: string; callMs?: number };

/** One call: throws a Refusal when nothing was sent, an AttemptError when no answer came. */
export type CallFn = () => Promise<CallResponse>;

export type AttemptResult =
  /** A definitive answer (2xx-3xx, or a 4xx that is not retried). */
  | { kind: 'answered'; response: CallResponse; record: AttemptRecord }
  /** No definitive answer; `retryable` says whether another attempt is allowed for this method and key. */
  | {
      kind: 'failed';
      record: AttemptRecord;
      retryable: boolean;
      reason: string;
      timedOut: boolean;
      /** The answer, when the downstream gave one (a 503 with Retry-After...). */
      response?: CallResponse;
      /** RESPONSE_TOO_LARGE: the answer was cut off. */
      tooLarge: boolean;
    }
  /** A protection refused the call (breaker open, rate limited): nothing was sent, not an attempt. */
  | { kind: 'refused'; refusal: Refusal }
  /** The caller's signal fired. */
  | { kind: 'aborted'; record: AttemptRecord };

/** A breaker's word on one downstream for one attempt: a call, a half-open probe, or none (open). */
export type BreakerDecision = 'allowed' | 'probe' | 'open';

/**
 * Watches one attempt (tracing): the call sends its `traceparent` instead of
 * the request's, it hears each breaker's decision in the order the downstreams
 * are tried, and `end` how the attempt went.
 */
export interface AttemptWatcher {
  readonly traceparent: string;
  breaker(upstream: string, decision: BreakerDecision): void;
  end(result: AttemptResult): void;
}

/** Hands out a watcher for each attempt of one request; absent when nothing watches. */
export interface AttemptWatch {
  /** `backoffMs`: the backoff waited before this attempt (0 for the first). */
  attempt(attemptNumber: number, backoffMs: number): AttemptWatcher;
}

/**
 * The one attempt: synchronous requests (through the retry loop), async jobs
 * (one per lease), replays and redrives all make their calls here, so each
 * records an attempt and judges it the same way.
 */
export async function runAttempt(call: CallFn, safety: RetrySafety, clock: Clock): Promise<AttemptResult> {
  const startedAt = clock.now();
  const at = new Date(startedAt).toISOString();
  let response: CallResponse;
  try {
    response = await call();
  } catch (error) {
    if (isRefusal(error)) return { kind: 'refused', refusal: error };
    if (!isAttemptError(error)) throw error;
    const record: AttemptRecord = {
      at,
      outcome:
        error.code === 'ATTEMPT_TIMEOUT'
          ? 'timeout'
          : error.code === 'ATTEMPT_ABORTED'
            ? 'aborted'
            : error.code === 'RESPONSE_TOO_LARGE'
              ? 'too_large'
              : 'connection_error',
      durationMs: clock.now() - startedAt,
      error: error.message,
      sent: error.sent,
    };
    if (error.code === 'RESPONSE_TOO_LARGE') record.status = error.status;
    const classification = classifyError(error, safety);
    if (classification.kind === 'aborted') return { kind: 'aborted', record };
    return {
      kind: 'failed',
      record,
      retryable: classification.kind === 'transient',
      reason: classification.kind === 'definitive' ? error.message : classification.reason,
      timedOut: error.code === 'ATTEMPT_TIMEOUT',
      tooLarge: error.code === 'RESPONSE_TOO_LARGE',
    };
  }
  const record: AttemptRecord = {
    at,
    outcome: response.status < 400 ? 'success' : 'http_error',
    status: response.status,
    durationMs: clock.now() - startedAt,
    sent: 'yes',
    ...(response.upstream !== undefined ? { upstream: response.upstream } : {}),
  };
  const classification = classifyStatus(response.status, safety);
  if (classification.kind === 'definitive') return { kind: 'answered', response, record };
  const reason = classification.kind === 'aborted' ? `HTTP ${response.status}` : classification.reason;
  return { kind: 'failed', record, retryable: classification.kind === 'transient', reason, timedOut: false, response, tooLarge: false };
}
