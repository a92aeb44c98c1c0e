import type { AttemptError } from '../downstream/client.js';

/** The contract's transient statuses: retried, never stored under a key. */
const RETRYABLE_STATUSES = new Set([408, 429, 500, 502, 503, 504]);

export type Classification =
  /** 2xx, or a definitive non-retryable answer (3xx, 4xx except 408/429): passed through and stored. */
  | { kind: 'definitive' }
  /** Worth another attempt. */
  | { kind: 'transient'; reason: string }
  /** A failure another attempt will not fix (e.g. 501): goes to the DLQ at once. */
  | { kind: 'permanent'; reason: string }
  /** The caller gave up; stop without an answer. */
  | { kind: 'aborted' };

export function classifyStatus(status: number): Classification {
  if (RETRYABLE_STATUSES.has(status)) return { kind: 'transient', reason: `HTTP ${status}` };
  if (status >= 500) return { kind: 'permanent', reason: `HTTP ${status}` };
  return { kind: 'definitive' };
}

export function classifyError(error: AttemptError): Classification {
  switch (error.code) {
    case 'ATTEMPT_TIMEOUT':
      return { kind: 'transient', reason: error.message };
    case 'CONNECTION_FAILED':
      return { kind: 'transient', reason: `connection failed (${error.causeCode})` };
    case 'ATTEMPT_ABORTED':
      return { kind: 'aborted' };
  }
}

export function isAttemptError(error: unknown): error is AttemptError {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ATTEMPT_TIMEOUT' || code === 'CONNECTION_FAILED' || code === 'ATTEMPT_ABORTED';
}
