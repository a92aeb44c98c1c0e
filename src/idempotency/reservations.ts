import type { Clock } from '../clock.js';
import type { RelayAnswer } from '../domain.js';
import { IdempotencyHeldByJobError, IdempotencyInFlightError, IdempotencyMismatchError, IdempotencyOutcomeUnknownError } from '../errors.js';
import type { RelayEvents } from '../relay-events.js';
import type { CallResponse } from '../resilience/attempt.js';
import { fromStored, toAnswer, toStored } from '../stored-answer.js';
import type { RelayStore } from '../storage/types.js';

/** A reserved key, or none. */
export type Reservation = { key: string; token: string } | null;

export interface KeyReservationsDeps {
  store: Pick<RelayStore, 'idempotency'>;
  events: RelayEvents;
  clock: Clock;
  /** A holder's lease is its deadline plus a margin: it cannot outlive it. */
  requestDeadlineMs: number;
  idempotencyTtlMs: number;
}

/** How often, and how far apart, the record of an answer is written before giving up. */
const COMPLETE_TRIES = 5;
const COMPLETE_BACKOFF_MS = 200;

/**
 * One Idempotency-Key's life around a call, for synchronous requests and DLQ
 * replays alike: reserve it (or replay its answer, or refuse), then record the
 * definitive answer under it, or release it for a resend.
 */
export class KeyReservations {
  constructor(private readonly deps: KeyReservationsDeps) {}

  async reserve(key: string | undefined, fingerprint: string | undefined, ownJobId: string | null = null): Promise<Reservation | { replay: RelayAnswer }> {
    if (key === undefined || fingerprint === undefined) return null;
    const now = this.deps.clock.now();
    const result = await this.deps.store.idempotency.reserve(key, fingerprint, {
      now,
      // A holder cannot outlive its deadline; the margin covers the last attempt's answer being stored.
      leaseMs: this.deps.requestDeadlineMs + 5_000,
      ttlMs: this.deps.idempotencyTtlMs,
    });
    switch (result.kind) {
      case 'reserved':
        this.deps.events.emit('idempotency', { result: 'miss' });
        return { key, token: result.token };
      case 'completed':
        this.deps.events.emit('idempotency', { result: 'hit' });
        return { replay: { ...fromStored(result.response), attempts: 0, replayed: true } };
      case 'job':
        if (result.jobId === ownJobId && result.state !== 'delivered') return null;
        if (result.state === 'delivered' && result.response) {
          this.deps.events.emit('idempotency', { result: 'hit' });
          return { replay: { ...fromStored(result.response), attempts: 0, replayed: true } };
        }
        this.deps.events.emit('idempotency', { result: 'conflict' });
        throw new IdempotencyHeldByJobError(result.jobId);
      default:
        refuseKey(result.kind, this.deps.events);
    }
  }

  /**
   * Records the answer under the key. The downstream has answered: losing the
   * record would let a resend run the request again, so a failed write is tried
   * again a few times (about a second in all) before the client gets its answer anyway.
   */
  async complete(reservation: Reservation, response: CallResponse): Promise<void> {
    if (!reservation) return;
    const stored = toStored(toAnswer(response));
    for (let attempt = 1; attempt <= COMPLETE_TRIES; attempt++) {
      try {
        await this.deps.store.idempotency.complete(reservation.key, reservation.token, stored, {
          now: this.deps.clock.now(),
          ttlMs: this.deps.idempotencyTtlMs,
        });
        return;
      } catch {
        if (attempt < COMPLETE_TRIES) await new Promise((resolve) => setTimeout(resolve, COMPLETE_BACKOFF_MS * attempt).unref());
      }
    }
  }

  async release(reservation: Reservation): Promise<void> {
    if (!reservation) return;
    try {
      await this.deps.store.idempotency.release(reservation.key, reservation.token);
    } catch {
      // The lease expires by itself; the key is only blocked until then.
    }
  }
}

/**
 * A key the client may not use now, counted and refused the same way for
 * synchronous requests and jobs: still running (409), used for another request
 * (422), or its first run's outcome unknown.
 */
export function refuseKey(kind: 'in_flight' | 'mismatch' | 'outcome_unknown', events: RelayEvents): never {
  switch (kind) {
    case 'in_flight':
      events.emit('idempotency', { result: 'conflict' });
      throw new IdempotencyInFlightError('A request with this Idempotency-Key is still being processed; retry shortly.');
    case 'mismatch':
      events.emit('idempotency', { result: 'mismatch' });
      throw new IdempotencyMismatchError('This Idempotency-Key was already used with a different request.');
    case 'outcome_unknown':
      events.emit('idempotency', { result: 'unknown' });
      throw new IdempotencyOutcomeUnknownError();
  }
}
