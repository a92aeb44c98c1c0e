import { abortControllerForMany } from './abort.js';
import type { Clock } from './clock.js';
import type { DownstreamResponse, ForwardRequest } from './downstream/client.js';
import type { UpstreamSet } from './downstream/upstreams.js';
import {
  CircuitOpenError,
  DeadlineExceededError,
  IdempotencyInFlightError,
  IdempotencyMismatchError,
  NotFoundError,
  RateLimitedError,
  RelayError,
  ServiceUnavailableError,
  UpstreamFailedError,
  UpstreamTimeoutError,
} from './errors.js';
import type { WaitSignal, WorkerLease, WorkerPool } from './queue/worker-pool.js';
import type { RelayEvents } from './relay-events.js';
import type { RetryManager, RetryResult } from './resilience/retry.js';
import type { AttemptRecord, DlqEntry, Priority, RelayStore, StoredResponse } from './storage/types.js';

export interface RelayRequest {
  body: Buffer;
  /** Lower-case names; exactly the headers to forward. */
  forwardHeaders: Record<string, string>;
  idempotencyKey: string | undefined;
  fingerprint: string | undefined;
  /** Fires when the client disconnects (listened to only while the request waits in the queue). */
  signal: WaitSignal;
  /** Epoch ms the request arrived: the deadline counts from here. */
  receivedAt: number;
  /** Queue class (X-Relay-Priority). @default 'normal' */
  priority?: Priority;
  /** Called when a worker takes the request (it counts as admitted from then on). */
  onAdmitted?: () => void;
}

export interface RelayAnswer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** Downstream attempts made for this answer (0 for a replay). */
  attempts: number;
  replayed: boolean;
  /** Which downstream answered (`primary`, `fallback-1`...); absent for a replay. */
  upstream?: string;
}

export interface RelayServiceDeps {
  pool: WorkerPool;
  retry: RetryManager;
  upstreams: UpstreamSet;
  /** Wrapped by guardStore: a backend failure arrives as StoreUnavailableError (503), already logged. */
  store: RelayStore;
  events: RelayEvents;
  clock: Clock;
  requestDeadlineMs: number;
  idempotencyTtlMs: number;
}

/** A reserved key, or none. */
type Reservation = { key: string; token: string } | null;

/**
 * The pipeline, in the one place its order is fixed:
 * idempotency reservation -> queue (bulkhead) -> retry(timeout(downstream call))
 * -> store the definitive answer, or quarantine in the DLQ.
 */
export class RelayService {
  /** Aborts in-flight attempts when shutdown's grace runs out. */
  private readonly hardStop = abortControllerForMany();
  private closing = false;

  constructor(private readonly deps: RelayServiceDeps) {}

  get isClosing(): boolean {
    return this.closing;
  }

  async handle(request: RelayRequest): Promise<RelayAnswer> {
    if (this.closing) throw new ServiceUnavailableError('The relay is shutting down and accepts no new work.');
    // Most requests carry no key: reserve() would answer null at once, but calling it costs a promise and an await.
    const keyed = request.idempotencyKey !== undefined && request.fingerprint !== undefined;
    if (!keyed) this.refuseWhileOpen();
    const reservation = keyed ? await this.reserve(request.idempotencyKey, request.fingerprint) : null;
    // A finished key replays its stored answer even during an outage: the downstream is not involved.
    if (reservation && 'replay' in reservation) return reservation.replay;
    if (keyed) {
      try {
        this.refuseWhileOpen();
      } catch (error) {
        await this.release(reservation);
        throw error;
      }
    }
    const deadlineAt = request.receivedAt + this.deps.requestDeadlineMs;
    let result: RetryResult;
    try {
      result = await this.deps.pool.run(
        (lease) => {
          request.onAdmitted?.();
          return this.callDownstream(request, deadlineAt, lease);
        },
        { signal: request.signal, deadlineAt, priority: request.priority ?? 'normal' },
      );
    } catch (error) {
      await this.release(reservation);
      throw error;
    }
    if (result.kind === 'answered') {
      if (reservation) await this.complete(reservation, result.response);
      return { ...toAnswer(result.response), attempts: result.attempts.length, replayed: false };
    }
    await this.release(reservation);
    if (result.kind === 'aborted') throw new ServiceUnavailableError('The relay stopped before the downstream answered.');
    if (result.kind === 'refused') throw refusedError(result);
    if (result.attempts.length === 0) {
      throw new DeadlineExceededError(
        'The request deadline left less time than the downstream takes to answer (its recent median) before the first attempt; the downstream was not called.',
      );
    }
    const dlqId = await this.quarantine(request, result);
    throw exhaustedError(result, dlqId);
  }

  /**
   * Runs a DLQ entry through the pipeline again. On a definitive answer the entry
   * leaves the DLQ and its key replays that answer from now on; otherwise the new
   * attempts are appended and the 502/504 is thrown.
   */
  async replay(id: string): Promise<{ answer: RelayAnswer; entry: DlqEntry }> {
    if (this.closing) throw new ServiceUnavailableError('The relay is shutting down and accepts no new work.');
    const entry = await this.deps.store.dlq.get(id);
    if (!entry) throw new NotFoundError(`No dead-letter entry with id ${JSON.stringify(id)}.`);
    const reservation = await this.reserve(entry.idempotencyKey ?? undefined, entry.fingerprint ?? undefined);
    if (reservation && 'replay' in reservation) {
      // A client already re-sent this key and it was delivered: the entry is obsolete, not to be sent twice.
      await this.deps.store.dlq.remove(id);
      await this.resolveJob(entry, [], reservation.replay);
      this.deps.events.emit('dlq', { action: 'replayed' });
      return { answer: reservation.replay, entry };
    }
    const deadlineAt = this.deps.clock.now() + this.deps.requestDeadlineMs;
    const request: RelayRequest = {
      body: entry.body,
      forwardHeaders: entry.headers,
      idempotencyKey: entry.idempotencyKey ?? undefined,
      fingerprint: entry.fingerprint ?? undefined,
      signal: new AbortController().signal,
      receivedAt: this.deps.clock.now(),
    };
    let result: RetryResult;
    try {
      result = await this.deps.pool.run((lease) => this.callDownstream(request, deadlineAt, lease), { deadlineAt });
    } catch (error) {
      await this.release(reservation);
      throw error;
    }
    if (result.kind === 'answered') {
      await this.complete(reservation, result.response);
      await this.deps.store.dlq.remove(id);
      const answer = { ...toAnswer(result.response), attempts: result.attempts.length, replayed: false };
      await this.resolveJob(entry, result.attempts, answer);
      this.deps.events.emit('dlq', { action: 'replayed' });
      return { answer, entry };
    }
    await this.release(reservation);
    if (result.kind === 'aborted') throw new ServiceUnavailableError('The relay stopped before the downstream answered.');
    // The entry stays as it was: nothing reached the downstream.
    if (result.kind === 'refused') throw refusedError(result);
    const status = exhaustedStatus(result);
    await this.deps.store.dlq.recordFailedReplay(id, result.attempts, result.lastError, status, this.deps.clock.now());
    this.deps.events.emit('dlq', { action: 'replay_failed' });
    throw exhaustedError(result, id);
  }

  /**
   * Fail fast at the door while every breaker is open: the request would only be
   * refused once a worker took it. (Not before the body is read: answering with
   * the body unread makes Node close the keep-alive connection, and the client's
   * reconnects cost more than reading a small body.)
   */
  private refuseWhileOpen(): void {
    const openForMs = this.deps.upstreams.allOpenForMs();
    if (openForMs !== null) throw new CircuitOpenError(openForMs);
  }

  /** Stop taking new work; in-flight and queued requests go on. */
  beginShutdown(): void {
    this.closing = true;
  }

  /** Abort attempts still running (after the drain grace period). */
  abortInFlight(): void {
    this.hardStop.abort();
  }

  /** The entry came from an async job: the job is delivered now, or its client would poll a dead job forever. */
  private async resolveJob(entry: DlqEntry, attempts: AttemptRecord[], answer: Omit<RelayAnswer, 'attempts' | 'replayed'>): Promise<void> {
    if (entry.jobId === null) return;
    const jobId = entry.jobId;
    const response: StoredResponse = { status: answer.status, headers: answer.headers, body: answer.body };
    try {
      if (await this.deps.store.jobs.markDelivered(jobId, { attempts, response, now: this.deps.clock.now() })) {
        this.deps.events.emit('job', { action: 'delivered' });
      }
    } catch {
      // The downstream answered and the entry is gone; only the job's status lags behind.
    }
  }

  private callDownstream(request: RelayRequest, deadlineAt: number, lease: WorkerLease): Promise<RetryResult> {
    const forward: ForwardRequest = { body: request.body, headers: request.forwardHeaders };
    return this.deps.retry.execute(
      ({ signal, timeoutMs }) => this.deps.upstreams.send(forward, { timeoutMs, deadlineAt, signal }),
      // A request sleeping in backoff holds no worker: the concurrency limit counts calls to the downstream.
      { deadlineAt, signal: this.hardStop.signal, suspend: lease.suspend },
    );
  }

  private async reserve(key: string | undefined, fingerprint: string | undefined): Promise<Reservation | { replay: RelayAnswer }> {
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
      case 'in_flight':
        this.deps.events.emit('idempotency', { result: 'conflict' });
        throw new IdempotencyInFlightError('A request with this Idempotency-Key is still being processed; retry shortly.');
      case 'mismatch':
        this.deps.events.emit('idempotency', { result: 'mismatch' });
        throw new IdempotencyMismatchError('This Idempotency-Key was already used with a different request body or client.');
    }
  }

  private async complete(reservation: Reservation, response: DownstreamResponse): Promise<void> {
    if (!reservation) return;
    const stored: StoredResponse = { status: response.status, headers: contentTypeOnly(response.headers), body: response.body };
    try {
      await this.deps.store.idempotency.complete(reservation.key, reservation.token, stored, {
        now: this.deps.clock.now(),
        ttlMs: this.deps.idempotencyTtlMs,
      });
    } catch {
      // The downstream already answered: the client gets that answer even if it could not be stored.
    }
  }

  private async release(reservation: Reservation): Promise<void> {
    if (!reservation) return;
    try {
      await this.deps.store.idempotency.release(reservation.key, reservation.token);
    } catch {
      // The lease expires by itself; the key is only blocked until then.
    }
  }

  private async quarantine(request: RelayRequest, result: Extract<RetryResult, { kind: 'exhausted' }>): Promise<string | null> {
    try {
      const entry = await this.deps.store.dlq.add({
        idempotencyKey: request.idempotencyKey ?? null,
        fingerprint: request.fingerprint ?? null,
        body: request.body,
        headers: request.forwardHeaders,
        attempts: result.attempts,
        lastError: result.lastError,
        status: exhaustedStatus(result),
        reason: result.cause === 'non_retryable' ? 'permanent' : 'transient',
        cause: result.cause,
        jobId: null,
        redrives: 0,
        now: this.deps.clock.now(),
      });
      this.deps.events.emit('dlq', { action: 'added' });
      return entry.id;
    } catch {
      // The client still learns the request failed (and may resend it); only the quarantine copy is missing.
      return null;
    }
  }

}

function exhaustedStatus(result: Extract<RetryResult, { kind: 'exhausted' }>): number {
  return result.lastTimedOut ? 504 : 502;
}

function exhaustedError(result: Extract<RetryResult, { kind: 'exhausted' }>, dlqId: string | null): RelayError {
  const details = { attempts: result.attempts.length, lastError: result.lastError, dlqId };
  return result.lastTimedOut ? new UpstreamTimeoutError(details) : new UpstreamFailedError(details);
}

function refusedError(result: Extract<RetryResult, { kind: 'refused' }>): RelayError {
  const { refusal } = result;
  return refusal.code === 'CIRCUIT_OPEN' ? new CircuitOpenError(refusal.retryAfterMs) : new RateLimitedError(refusal.retryAfterMs);
}

function contentTypeOnly(headers: Record<string, string>): Record<string, string> {
  return headers['content-type'] ? { 'content-type': headers['content-type'] } : {};
}

function toAnswer(response: DownstreamResponse & { upstream?: string }): Omit<RelayAnswer, 'attempts' | 'replayed'> {
  const answer: Omit<RelayAnswer, 'attempts' | 'replayed'> = { status: response.status, headers: contentTypeOnly(response.headers), body: response.body };
  if (response.upstream !== undefined) answer.upstream = response.upstream;
  return answer;
}

function fromStored(stored: StoredResponse): Omit<RelayAnswer, 'attempts' | 'replayed'> {
  return { status: stored.status, headers: stored.headers, body: stored.body };
}
