import type { Clock } from './clock.js';
import { applyEdit, type EditedRequest, type ReplayEdit } from './dlq-edit.js';
import type { AttemptRecord, RelayAnswer, RequestTarget } from './domain.js';
import { DeliveryUnknownError, EditHistoryFullError, NotFoundError, ReplayInProgressError, RouteGoneError, ServiceUnavailableError } from './errors.js';
import { keyScope } from './idempotency/key.js';
import type { KeyReservations } from './idempotency/reservations.js';
import type { WorkerLease } from './queue/worker-pool.js';
import type { RelayEvents } from './relay-events.js';
import { deliveryOf } from './resilience/classify.js';
import type { RetryResult } from './resilience/retry.js';
import type { RoutedRequest, RoutePipeline, RouteTable } from './routes/route-pipeline.js';
import type { HeaderVault } from './secrets/header-vault.js';
import { toAnswer, toStored } from './stored-answer.js';
import type { DlqEdit, DlqEntry, RelayStore } from './storage/types.js';
import { exhaustedError, exhaustedStatus, refusedError } from './unanswered.js';

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

export interface DlqReplayDeps {
  routes: RouteTable;
  /** Wrapped by guardStore: a backend failure arrives as StoreUnavailableError (503), already logged. */
  store: RelayStore;
  events: RelayEvents;
  clock: Clock;
  vault: HeaderVault;
  requestDeadlineMs: number;
  keys: KeyReservations;
  /** The route's pipeline (retry, attempts) on a worker of its pool: the same calls a synchronous request makes. */
  callDownstream(request: RoutedRequest, deadlineAt: number, lease: WorkerLease): Promise<RetryResult>;
  /** True once shutdown began: no new replay starts. */
  isClosing(): boolean;
}

/** Edited replays one entry's history keeps; past it, an edit is refused (the history is an audit trail, never trimmed). */
const MAX_EDITS_PER_ENTRY = 50;

/** `POST /dlq/:id/replay`: a dead-lettered request through its route's pipeline again, as sent or edited. */
export class DlqReplay {
  constructor(private readonly deps: DlqReplayDeps) {}

  /**
   * Runs a DLQ entry through its route's pipeline again. On a definitive answer
   * the entry leaves the DLQ and its key replays that answer from now on;
   * otherwise the new attempts are appended and the 502/504 is thrown. One replay
   * of an entry at a time, across instances.
   */
  async replay(id: string, options: ReplayOptions = {}): Promise<{ answer: RelayAnswer; entry: DlqEntry; edit: DlqEdit | null }> {
    if (this.deps.isClosing()) throw new ServiceUnavailableError('The relay is shutting down and accepts no new work.');
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
    const reservation = await this.deps.keys.reserve(edited.keyScope, edited.fingerprint, ownsKey ? entry.jobId : null);
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
        await this.deps.keys.release(reservation);
        throw new ReplayInProgressError('The entry was deleted or taken by another replay while this one started.');
      }
    }
    const deadlineAt = clock.now() + this.deps.requestDeadlineMs;
    const request: RoutedRequest = {
      route,
      target,
      body: edited.body,
      headers: edited.headers,
      sendKey: edited.sendKey,
      keyScope: edited.keyScope,
      fingerprint: edited.fingerprint,
      // The side the entry's first delivery had (its job's, or its own request's, which is the entry's id).
      canaryId: entry.jobId ?? entry.id,
    };
    let result: RetryResult;
    try {
      result = await route.pool.run((lease) => this.deps.callDownstream(request, deadlineAt, lease), { deadlineAt });
    } catch (error) {
      await this.deps.keys.release(reservation);
      throw error;
    }
    if (result.kind === 'answered') {
      await this.deps.keys.complete(reservation, result.response);
      await store.dlq.remove(entry.id);
      const answer = { ...toAnswer(result.response), attempts: result.attempts.length, replayed: false };
      await this.resolveJob(entry, result.attempts, answer);
      events.emit('dlq', { action: 'replayed' });
      return { answer, entry, edit };
    }
    await this.deps.keys.release(reservation);
    if (result.kind === 'aborted') throw new ServiceUnavailableError('The relay stopped before the downstream answered.');
    // The entry stays as it was: nothing reached the downstream.
    if (result.kind === 'refused') throw refusedError(result);
    const status = exhaustedStatus(result);
    await store.dlq.recordFailedReplay(entry.id, result.attempts, result.lastError, status, clock.now());
    events.emit('dlq', { action: 'replay_failed' });
    throw exhaustedError(result, entry.id);
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
}
