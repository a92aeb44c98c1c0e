import { randomUUID } from 'node:crypto';
import { abortControllerForMany } from './abort.js';
import type { Clock } from './clock.js';
import { applyEdit, type EditedRequest, type ReplayEdit } from './dlq-edit.js';
import type { AttemptRecord, Priority, RequestTarget } from './domain.js';
import {
  CircuitOpenError,
  DeadlineExceededError,
  DeliveryUnknownError,
  EditHistoryFullError,
  IdempotencyHeldByJobError,
  IdempotencyInFlightError,
  IdempotencyMismatchError,
  IdempotencyOutcomeUnknownError,
  NotFoundError,
  RateLimitedError,
  RelayError,
  ReplayInProgressError,
  ResponseTooLargeError,
  RouteGoneError,
  ServiceUnavailableError,
  UpstreamFailedError,
  UpstreamTimeoutError,
} from './errors.js';
import { keyScope } from './idempotency/key.js';
import type { WaitSignal, WorkerLease } from './queue/worker-pool.js';
import type { Tracing } from './observability/tracing.js';
import type { RelayEvents } from './relay-events.js';
import { deliveryOf } from './resilience/classify.js';
import type { AttemptWatch, CallResponse } from './resilience/attempt.js';
import type { RetryResult } from './resilience/retry.js';
import type { RoutedRequest, RoutePipeline, RouteTable } from './routes/route-pipeline.js';
import type { HeaderVault } from './secrets/header-vault.js';
import { toStored } from './stored-answer.js';
import type { DlqEdit, DlqEntry, RelayStore, StoredResponse } from './storage/types.js';

export interface RelayRequest extends RoutedRequest {
  /** Fires when the client disconnects (listened to only while the request waits in the queue). */
  signal: WaitSignal;
  /** Epoch ms the request arrived: the deadline counts from here. */
  receivedAt: number;
  /** Queue class (X-Relay-Priority). @default 'normal' */
  priority?: Priority;
  /** Called when a worker takes the request (it counts as admitted from then on). */
  onAdmitted?: () => void;
  /** The request's span (tracing on): each attempt gets a child span and sends its traceparent. */
  trace?: AttemptWatch | undefined;
}

export interface RelayAnswer {
  status: number;
  /** End-to-end headers of the downstream's answer (lower-case; arrays for repeated ones). */
  headers: Record<string, string | string[]>;
  body: Buffer;
  /** Downstream attempts made for this answer (0 for a replay). */
  attempts: number;
  replayed: boolean;
  /** Which upstream answered (`primary`, `fallback-1`...); absent for a replay. */
  upstream?: string;
}

/** What an operator may change when replaying a DLQ entry. */
export interface ReplayOptions {
  /** Replay a keyless entry whose first delivery may have been processed (or send an edit of one under a new key). */
  force?: boolean;
  /** Send a changed request instead of the stored one; the entry keeps the original and records the change. */
  edit?: ReplayEdit;
  /** The replay request's X-Request-Id, recorded with an edit. */
  requestId?: string;
  /** The relay's key for scoping idempotency keys to a credential; needed when an edit sends under a new key. */
  credentialKey?: Buffer;
}

export interface RelayServiceDeps {
  routes: RouteTable;
  /** Wrapped by guardStore: a backend failure arrives as StoreUnavailableError (503), already logged. */
  store: RelayStore;
  events: RelayEvents;
  clock: Clock;
  vault: HeaderVault;
  requestDeadlineMs: number;
  idempotencyTtlMs: number;
  /** OpenTelemetry tracing; undefined when OTEL_EXPORTER_OTLP_ENDPOINT is unset. */
  tracing?: Tracing | undefined;
}

/** A reserved key, or none. */
type Reservation = { key: string; token: string } | null;

/** How often, and how far apart, the record of an answer is written before giving up. */
const COMPLETE_TRIES = 5;
const COMPLETE_BACKOFF_MS = 200;
/** Edited replays one entry's history keeps; past it, an edit is refused (the history is an audit trail, never trimmed). */
const MAX_EDITS_PER_ENTRY = 50;

/**
 * Synchronous requests and DLQ replays, in the order fixed here:
 * idempotency reservation -> the route's pipeline (queue, retry, attempts) ->
 * store the definitive answer under the key, or quarantine in the DLQ.
 */
export class RelayService {
  /** Aborts in-flight attempts when shutdown's grace runs out. */
  private readonly hardStop = abortControllerForMany();
  private closing = false;

  constructor(private readonly deps: RelayServiceDeps) {}

  get isClosing(): boolean {
    return this.closing;
  }

  /** The relay's tracer, for the edge that opens a request's span; undefined: tracing off. */
  get tracing(): Tracing | undefined {
    return this.deps.tracing;
  }

  async handle(request: RelayRequest): Promise<RelayAnswer> {
    if (this.closing) throw new ServiceUnavailableError('The relay is shutting down and accepts no new work.');
    const { route } = request;
    const keyed = request.keyScope !== undefined && request.fingerprint !== undefined;
    request.canaryId ??= randomUUID();
    if (!keyed) refuseWhileOpen(route, request.canaryId);
    const reservation = keyed ? await this.reserve(request.keyScope, request.fingerprint) : null;
    // A finished key replays its stored answer even during an outage: the downstream is not involved.
    if (reservation && 'replay' in reservation) return reservation.replay;
    if (keyed) {
      try {
        refuseWhileOpen(route, request.canaryId);
      } catch (error) {
        await this.release(reservation);
        throw error;
      }
    }
    const deadlineAt = request.receivedAt + this.deps.requestDeadlineMs;
    let result: RetryResult;
    try {
      result = await route.pool.run(
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
   * Runs a DLQ entry through its route's pipeline again. On a definitive answer
   * the entry leaves the DLQ and its key replays that answer from now on;
   * otherwise the new attempts are appended and the 502/504 is thrown. One replay
   * of an entry at a time, across instances.
   */
  async replay(id: string, options: ReplayOptions = {}): Promise<{ answer: RelayAnswer; entry: DlqEntry; edit: DlqEdit | null }> {
    if (this.closing) throw new ServiceUnavailableError('The relay is shutting down and accepts no new work.');
    const { store, clock } = this.deps;
    const entry = await store.dlq.get(id);
    if (!entry) throw new NotFoundError(`No dead-letter entry with id ${JSON.stringify(id)}.`);
    const route = this.deps.routes.get(entry.request.route);
    if (!route) throw new RouteGoneError(`The route ${JSON.stringify(entry.request.route)} of this entry no longer exists.`);
    const { edit } = options;
    // Only the entry's own key lets the downstream tell a second delivery from the first.
    const sendsEntryKey = entry.idempotencyKey !== null && (edit?.idempotencyKey === undefined || edit.idempotencyKey === entry.idempotencyKey);
    if (!sendsEntryKey && deliveryOf(entry.attempts) === 'unknown' && !options.force) {
      throw new DeliveryUnknownError(
        entry.idempotencyKey === null
          ? 'This request went out without an idempotency key and its first delivery may have been processed; replay it with {"force": true} if running it twice is acceptable.'
          : 'The first delivery of this request may have been processed, and an edit under another key is a new operation the downstream cannot tell from it; add {"force": true} if running both is acceptable.',
      );
    }
    if (edit && entry.edits.length >= MAX_EDITS_PER_ENTRY) {
      throw new EditHistoryFullError(`This entry was already replayed with ${entry.edits.length} edits; delete it and send the request afresh.`);
    }
    // Secrets sealed under the entry's origin (its job, or the entry itself): 422 when they cannot be read back.
    // A header the edit replaces need not be: an entry whose secret was dropped is replayed with the secret given afresh.
    const origin = entry.jobId ?? entry.id;
    const replaced = new Set(Object.keys(edit?.headers ?? {}));
    const stored = Object.fromEntries(Object.entries(entry.headers).filter(([name]) => !replaced.has(name)));
    const target = { ...entry.request, path: this.deps.vault.openPath(entry.request.path, origin, 422) };
    const { credentialKey } = options;
    const request = applyEdit(
      {
        entry,
        target,
        headers: this.deps.vault.open(stored, origin, 422),
        route: { name: route.name, keyHeader: route.keyHeader, secretHeaders: route.secretHeaders, generatesKeys: route.spec.idempotency.generate },
        scopeOf: (credential, key) => {
          if (credentialKey === undefined) throw new Error('An edit under a new idempotency key needs ReplayOptions.credentialKey');
          return keyScope(route.name, credentialKey, credential, key);
        },
      },
      edit ?? {},
    );
    const claim = await store.dlq.claimReplay(id, { now: clock.now(), leaseMs: this.deps.requestDeadlineMs + 5_000 });
    if (claim.kind === 'absent') throw new NotFoundError(`No dead-letter entry with id ${JSON.stringify(id)}.`);
    if (claim.kind === 'busy') throw new ReplayInProgressError('Another replay of this entry is running; retry when it has finished.');
    try {
      return await this.replayClaimed(entry, route, target, request, { token: claim.token, requestId: options.requestId ?? null });
    } finally {
      await store.dlq.releaseReplay(id, claim.token).catch(() => undefined);
    }
  }

  private async replayClaimed(
    entry: DlqEntry,
    route: RoutePipeline,
    target: RequestTarget,
    edited: EditedRequest,
    claim: { token: string; requestId: string | null },
  ): Promise<{ answer: RelayAnswer; entry: DlqEntry; edit: DlqEdit | null }> {
    const { store, clock, events } = this.deps;
    // A dead job's entry: the job itself holds the key, and its delivery below records the answer.
    // An edit under a new key is a new operation: refused, or answered from the key's record, like any request.
    const ownsKey = edited.keyScope === (entry.keyScope ?? undefined);
    const reservation = await this.reserve(edited.keyScope, edited.fingerprint, ownsKey ? entry.jobId : null);
    if (reservation && 'replay' in reservation) {
      // This key was already delivered (a client re-sent it, or an earlier replay sent this very edit): the entry is obsolete, not to be sent twice.
      await store.dlq.remove(entry.id);
      await this.resolveJob(entry, [], reservation.replay);
      events.emit('dlq', { action: 'replayed' });
      return { answer: reservation.replay, entry, edit: null };
    }
    let edit: DlqEdit | null = null;
    if (edited.record) {
      edit = { ...edited.record, at: new Date(clock.now()).toISOString(), requestId: claim.requestId, firstAttempt: entry.attempts.length };
      // Recorded before sending: the history shows an edited request may have gone out even if this process dies mid-send.
      if ((await store.dlq.recordEdit(entry.id, claim.token, edit)) === null) {
        await this.release(reservation);
        throw new ReplayInProgressError('The entry was deleted or taken by another replay while this one started.');
      }
    }
    const deadlineAt = clock.now() + this.deps.requestDeadlineMs;
    const request: RelayRequest = {
      route,
      target,
      body: edited.body,
      headers: edited.headers,
      sendKey: edited.sendKey,
      keyScope: edited.keyScope,
      fingerprint: edited.fingerprint,
      signal: new AbortController().signal,
      receivedAt: clock.now(),
      // The side the entry's first delivery had (its job's, or its own request's, which is the entry's id).
      canaryId: entry.jobId ?? entry.id,
    };
    let result: RetryResult;
    try {
      result = await route.pool.run((lease) => this.callDownstream(request, deadlineAt, lease), { deadlineAt });
    } catch (error) {
      await this.release(reservation);
      throw error;
    }
    if (result.kind === 'answered') {
      await this.complete(reservation, result.response);
      await store.dlq.remove(entry.id);
      const answer = { ...toAnswer(result.response), attempts: result.attempts.length, replayed: false };
      await this.resolveJob(entry, result.attempts, answer);
      events.emit('dlq', { action: 'replayed' });
      return { answer, entry, edit };
    }
    await this.release(reservation);
    if (result.kind === 'aborted') throw new ServiceUnavailableError('The relay stopped before the downstream answered.');
    // The entry stays as it was: nothing reached the downstream.
    if (result.kind === 'refused') throw refusedError(result);
    const status = exhaustedStatus(result);
    await store.dlq.recordFailedReplay(entry.id, result.attempts, result.lastError, status, clock.now());
    events.emit('dlq', { action: 'replay_failed' });
    throw exhaustedError(result, entry.id);
  }

  /** Fires when shutdown's grace runs out: attempts still running are aborted (the Prefer wait flow listens too). */
  get hardStopSignal(): AbortSignal {
    return this.hardStop.signal;
  }

  /** REQUEST_DEADLINE_MS: a request's whole budget, counted from its arrival. */
  get requestDeadlineMs(): number {
    return this.deps.requestDeadlineMs;
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
    try {
      if (await this.deps.store.jobs.markDelivered(jobId, { attempts, response: toStored(answer), now: this.deps.clock.now() })) {
        this.deps.events.emit('job', { action: 'delivered' });
      }
    } catch {
      // The downstream answered and the entry is gone; only the job's status lags behind.
    }
  }

  private callDownstream(request: RelayRequest, deadlineAt: number, lease: WorkerLease): Promise<RetryResult> {
    const { route, target } = request;
    const forward = { method: target.method, path: target.path, headers: request.headers, body: request.body };
    return route.retry.execute(
      ({ signal, timeoutMs, watcher }) => route.downstreams.send(forward, { timeoutMs, deadlineAt, signal, watcher, canaryId: request.canaryId }),
      // A request sleeping in backoff holds no worker: the concurrency limit counts calls to the downstream.
      {
        deadlineAt,
        signal: this.hardStop.signal,
        suspend: lease.suspend,
        safety: { method: target.method, keyed: request.sendKey !== undefined },
        watch: request.trace,
        canaryId: request.canaryId,
      },
    );
  }

  private async reserve(key: string | undefined, fingerprint: string | undefined, ownJobId: string | null = null): Promise<Reservation | { replay: RelayAnswer }> {
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
      case 'in_flight':
        this.deps.events.emit('idempotency', { result: 'conflict' });
        throw new IdempotencyInFlightError('A request with this Idempotency-Key is still being processed; retry shortly.');
      case 'mismatch':
        this.deps.events.emit('idempotency', { result: 'mismatch' });
        throw new IdempotencyMismatchError('This Idempotency-Key was already used with a different request.');
      case 'outcome_unknown':
        this.deps.events.emit('idempotency', { result: 'unknown' });
        throw new IdempotencyOutcomeUnknownError();
    }
  }

  /**
   * Records the answer under the key. The downstream has answered: losing the
   * record would let a resend run the request again, so a failed write is tried
   * again a few times (about a second in all) before the client gets its answer anyway.
   */
  private async complete(reservation: Reservation, response: CallResponse): Promise<void> {
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

  private async release(reservation: Reservation): Promise<void> {
    if (!reservation) return;
    try {
      await this.deps.store.idempotency.release(reservation.key, reservation.token);
    } catch {
      // The lease expires by itself; the key is only blocked until then.
    }
  }

  private async quarantine(request: RelayRequest, result: Extract<RetryResult, { kind: 'exhausted' }>): Promise<string | null> {
    // The request's canary id: a redrive (a job with the entry's id) and a replay keep the request's canary side.
    const id = request.canaryId ?? randomUUID();
    try {
      // Without RELAY_SECRET_KEY the entry keeps no secret: its replay is refused (422) rather than sent without it.
      const { headers } = this.deps.vault.seal(request.headers, request.route.secretHeaders, id);
      const { path } = this.deps.vault.sealPath(request.target.path, id);
      const entry = await this.deps.store.dlq.add({
        id,
        request: { ...request.target, path },
        keyScope: request.keyScope ?? null,
        idempotencyKey: request.sendKey ?? null,
        fingerprint: request.fingerprint ?? null,
        body: request.body ?? Buffer.alloc(0),
        headers,
        attempts: result.attempts,
        lastError: result.lastError,
        status: exhaustedStatus(result),
        reason: result.cause === 'non_retryable' ? 'permanent' : 'transient',
        cause: result.cause,
        jobId: null,
        redrives: 0,
        now: this.deps.clock.now(),
      });
      this.deps.events.emit('dlq', {
        action: 'added',
        id: entry.id,
        route: request.route.name,
        reason: entry.reason,
        status: exhaustedStatus(result),
        attempts: result.attempts.length,
        lastError: result.lastError,
        jobId: null,
      });
      return entry.id;
    } catch {
      // The client still learns the request failed (and may resend it); only the quarantine copy is missing.
      return null;
    }
  }
}

/**
 * Fail fast at the door while every breaker of the route is open: the request
 * would only be refused once a worker took it. (Not before the body is read:
 * answering with the body unread makes Node close the keep-alive connection, and
 * the client's reconnects cost more than reading a small body.)
 */
function refuseWhileOpen(route: RoutePipeline, canaryId: string | undefined): void {
  const openForMs = route.downstreams.allOpenForMs(canaryId);
  if (openForMs !== null) throw new CircuitOpenError(openForMs);
}

function exhaustedStatus(result: Extract<RetryResult, { kind: 'exhausted' }>): number {
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

function refusedError(result: Extract<RetryResult, { kind: 'refused' }>): RelayError {
  const { refusal } = result;
  return refusal.code === 'CIRCUIT_OPEN' ? new CircuitOpenError(refusal.retryAfterMs) : new RateLimitedError(refusal.retryAfterMs);
}

function toAnswer(response: CallResponse): Omit<RelayAnswer, 'attempts' | 'replayed'> {
  const answer: Omit<RelayAnswer, 'attempts' | 'replayed'> = { status: response.status, headers: response.headers, body: response.body };
  if (response.upstream !== undefined) answer.upstream = response.upstream;
  return answer;
}

function fromStored(stored: StoredResponse): Omit<RelayAnswer, 'attempts' | 'replayed'> {
  return { status: stored.status, headers: stored.headers, body: stored.body };
}
