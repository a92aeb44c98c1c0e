import type { AttemptError } from '../downstream/client.js';
import type { Delivery, SentState } from '../domain.js';

/** The contract's transient statuses: retried (subject to the method rule), never stored under a key. */
const RETRYABLE_STATUSES = new Set([408, 429, 500, 502, 503, 504]);
/** Answers that prove the request was not processed: any method may be sent again. */
const NOT_PROCESSED_STATUSES = new Set([429, 503]);
/** RFC 9110 §9.2.2: sending these twice has the effect of sending them once. */
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

export type Classification =
  /** 2xx, or a definitive non-retryable answer (3xx, 4xx except 408/429): passed through and stored. */
  | { kind: 'definitive' }
  /** Worth another attempt. */
  | { kind: 'transient'; reason: string }
  /**
   * Another attempt will not help (e.g. 501), or may not be made: a POST without
   * a key after an ambiguous failure (`ambiguous`), which might run twice.
   */
  | { kind: 'permanent'; reason: string; ambiguous?: boolean }
  /** The caller gave up; stop without an answer. */
  | { kind: 'aborted' };

/** What decides whether a failed attempt may be repeated: the method, and whether a key goes out with it. */
export interface RetrySafety {
  method: string;
  /** An idempotency key is sent with every attempt, so the downstream can dedupe. */
  keyed: boolean;
}

const ANY_METHOD: RetrySafety = { method: 'GET', keyed: true };

export function isIdempotentMethod(method: string): boolean {
  return IDEMPOTENT_METHODS.has(method);
}

/** Repeating an attempt that may have been processed is safe only for idempotent methods or with a key. */
function safeToRepeat(safety: RetrySafety): boolean {
  return safety.keyed || IDEMPOTENT_METHODS.has(safety.method);
}

export function classifyStatus(status: number, safety: RetrySafety = ANY_METHOD): Classification {
  const reason = `HTTP ${status}`;
  if (RETRYABLE_STATUSES.has(status)) {
    if (NOT_PROCESSED_STATUSES.has(status) || safeToRepeat(safety)) return { kind: 'transient', reason };
    return { kind: 'permanent', reason, ambiguous: true };
  }
  if (status >= 500) return { kind: 'permanent', reason };
  return { kind: 'definitive' };
}

export function classifyError(error: AttemptError, safety: RetrySafety = ANY_METHOD): Classification {
  switch (error.code) {
    case 'ATTEMPT_ABORTED':
      return { kind: 'aborted' };
    case 'RESPONSE_TOO_LARGE':
      // The same request would get the same answer: not worth another attempt.
      return { kind: 'permanent', reason: error.message };
    case 'ATTEMPT_TIMEOUT':
    case 'CONNECTION_FAILED': {
      const reason = error.code === 'ATTEMPT_TIMEOUT' ? error.message : `connection failed (${error.causeCode})`;
      if (error.sent === 'no' || safeToRepeat(safety)) return { kind: 'transient', reason };
      return { kind: 'permanent', reason, ambiguous: true };
    }
  }
}

export function isAttemptError(error: unknown): error is AttemptError {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ATTEMPT_TIMEOUT' || code === 'CONNECTION_FAILED' || code === 'ATTEMPT_ABORTED' || code === 'RESPONSE_TOO_LARGE';
}

/** Whether one attempt may have been processed by the downstream. */
export function mayHaveBeenProcessed(attempt: { sent?: SentState; status?: number }): boolean {
  if (attempt.sent === 'unknown') return true;
  if (attempt.status === undefined) return false;
  return RETRYABLE_STATUSES.has(attempt.status) && !NOT_PROCESSED_STATUSES.has(attempt.status);
}

/**
 * What a client can know of a failed request from its attempts: `unknown` if any
 * may have been processed, `not_sent` if none left the relay, else `failed` (the
 * downstream answered every attempt with a refusal).
 */
export function deliveryOf(attempts: ReadonlyArray<{ sent?: SentState; status?: number }>): Delivery {
  if (attempts.some(mayHaveBeenProcessed)) return 'unknown';
  if (attempts.every((attempt) => attempt.sent === 'no')) return 'not_sent';
  return 'failed';
}
