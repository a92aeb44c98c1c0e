import { CircuitOpenError, RateLimitedError, ResponseTooLargeError, UpstreamFailedError, UpstreamTimeoutError, type RelayError } from './errors.js';
import { deliveryOf } from './resilience/classify.js';
import type { RetryResult } from './resilience/retry.js';

// What the client is told when the pipeline gave no definitive answer: synchronous requests and DLQ replays alike.

/** 504 when the last attempt timed out, else 502. */
export function exhaustedStatus(result: Extract<RetryResult, { kind: 'exhausted' }>): number {
  return result.lastTimedOut ? 504 : 502;
}

/** The 502/504 (or RESPONSE_TOO_LARGE) problem of a request whose attempts ran out. */
export function exhaustedError(result: Extract<RetryResult, { kind: 'exhausted' }>, dlqId: string | null): RelayError {
  if (result.tooLarge) {
    return new ResponseTooLargeError(`${result.lastError}; the answer was not passed on and its key was released.`, {
      attempts: result.attempts.length,
      dlqId,
    });
  }
  const details = { attempts: result.attempts.length, lastError: result.lastError, dlqId, delivery: deliveryOf(result.attempts) };
  return result.lastTimedOut ? new UpstreamTimeoutError(details) : new UpstreamFailedError(details);
}

/** The 503 (breaker open) or 429 (rate limited) of a request a protection refused before any attempt. */
export function refusedError(result: Extract<RetryResult, { kind: 'refused' }>): RelayError {
  const { refusal } = result;
  return refusal.code === 'CIRCUIT_OPEN' ? new CircuitOpenError(refusal.retryAfterMs) : new RateLimitedError(refusal.retryAfterMs);
}
