import { TypedEmitter } from './events.js';
import type { BreakerState } from './resilience/circuit-breaker.js';
import type { AttemptRecord, Priority } from './domain.js';

/**
 * How one POST /relay ended, as stats and metrics count it.
 * - delivered: the downstream's definitive answer (2xx, or a non-retryable 4xx) was passed through
 * - failed: the relay gave up (502/504 after exhausted attempts, or the deadline passed in the queue)
 * - rejected: refused before reaching the downstream (429 queue full, 409, 422, 400/413/415, 503 shutting down, client gone)
 * - replayed: answered from the idempotency store (or an async duplicate answered with its existing job)
 * - accepted: stored as an async job and answered 202
 */
export type RequestOutcome = 'delivered' | 'failed' | 'rejected' | 'replayed' | 'accepted';

export interface RelayEventMap extends Record<string, unknown> {
  /** One relay request (any route) finished. */
  request: {
    /** The route's name (bounded: only configured names reach here). */
    route: string;
    outcome: RequestOutcome;
    status: number;
    durationMs: number;
    /** Downstream attempts made for it (0 if none). */
    attempts: number;
    /** True if it was admitted to the queue (the denominator of amplification). */
    admitted: boolean;
  };
  /** One attempt at the downstream finished. */
  attempt: {
    route: string;
    outcome: AttemptRecord['outcome'];
    status?: number;
    durationMs: number;
    /** Which downstream answered, when one did. */
    upstream?: string;
  };
  /** A retry was scheduled after a failed attempt. */
  retry: { route: string; retryNumber: number; delayMs: number; reason: string };
  /** `unknown`: the key's first request ended without a recorded outcome (IDEMPOTENCY_OUTCOME_UNKNOWN). */
  idempotency: { result: 'miss' | 'hit' | 'conflict' | 'mismatch' | 'unknown' };
  /** `added` names the entry, so an operator can find it from the log line (issue 11). */
  dlq: DlqAdded | { action: 'replayed' | 'replay_failed' | 'deleted' };
  /** An async job changed state (accepted with 202, delivered, back to the queue, dead in the DLQ, redriven from it). */
  job: { action: 'accepted' | 'delivered' | 'rescheduled' | 'dead' | 'redriven' };
  /** A downstream's circuit breaker changed state (also in shadow mode). */
  breaker: { route: string; upstream: string; from: BreakerState; to: BreakerState; reason: string };
  /** The adaptive concurrency limit moved. */
  aimd: { route: string; from: number; to: number; reason: string };
  /** A request was refused or evicted by the queue's priority shedding or because it was full. */
  shed: { route: string; priority: Priority; reason: 'queue_full' | 'low_priority_fill' | 'evicted' };
}

/** A request was quarantined in the DLQ: a failed synchronous request, or an async job that died. */
export interface DlqAdded {
  action: 'added';
  id: string;
  route: string;
  /** `transient` (redrivable) or `permanent`. */
  reason: string;
  /** The status the client got, or would have got (502, 504, or a non-retryable downstream status). */
  status: number;
  attempts: number;
  lastError: string;
  /** The async job that died, if it was one. */
  jobId: string | null;
}

export class RelayEvents extends TypedEmitter<RelayEventMap> {}
