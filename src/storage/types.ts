/**
 * The storage interface every backend implements (SQLite and Redis).
 * The relay never talks to a datastore directly: a backend that passes
 * `test/contract/store-contract.ts` is done.
 *
 * Every method is async even where SQLite is synchronous, so that a networked
 * backend fits the same shape. Times are epoch milliseconds passed in by the
 * caller (`now`), so that tests can control the clock.
 */

import type { AttemptRecord, Priority, RequestTarget } from '../domain.js';

// Domain words live in ../domain.ts; re-exported so that code naming them through storage keeps compiling.
export type { AttemptRecord, Priority, RequestTarget } from '../domain.js';

/** A downstream answer worth keeping: what a replay sends back. */
export interface StoredResponse {
  status: number;
  /** Only the headers a replay must repeat (content-type); lower-case names. */
  headers: Record<string, string>;
  body: Buffer;
}

export type ReserveResult =
  /** The key was free (no record, or one past its ttl): the caller owns it until `complete` or `release`. */
  | { kind: 'reserved'; token: string }
  /** Another request with the same key and fingerprint holds a live lease. */
  | { kind: 'in_flight' }
  /**
   * A request with the same key and fingerprint held it and its lease ended before
   * it recorded an answer (its relay died, or lost the store, perhaps after the
   * downstream answered): it may or may not have run, so nothing is reserved and it
   * is never run again by itself. Stays so until the record's ttl ends, its holder
   * completes (a late `complete` still lands) or releases it, or `forget` drops it.
   */
  | { kind: 'outcome_unknown' }
  /** The key already has a definitive answer for this fingerprint. */
  | { kind: 'completed'; response: StoredResponse }
  /** The key exists (in flight or completed, or held by a job) with a different fingerprint. */
  | { kind: 'mismatch' }
  /**
   * The key belongs to an async job with the same fingerprint: nothing reserved.
   * `response` is the job's stored answer: set once delivered (the key's answer),
   * and on a dead job whose downstream gave a definitive non-retryable one.
   */
  | { kind: 'job'; jobId: string; state: JobState; response: StoredResponse | null };

export interface ReserveOptions {
  now: number;
  /** How long the holder is expected to take: past it, the key reads `outcome_unknown` (never taken over). */
  leaseMs: number;
  /** How long the whole record lives (an unknown outcome included), and later its answer from `complete`. */
  ttlMs: number;
}

/**
 * Synchronous requests' keys. Keys are opaque scoped keys (route + credential HMAC
 * + the client's key, built by the caller) and share one key space with the jobs'
 * `keyScope`: a key held by a job is never reserved, and a job is never enqueued
 * under a key a synchronous request holds or answered.
 */
export interface IdempotencyStore {
  /** Atomically: take the key, or report why not. Records past their ttl count as absent. */
  reserve(key: string, fingerprint: string, options: ReserveOptions): Promise<ReserveResult>;
  /**
   * Store the definitive answer under the key, only if `token` still holds it, also
   * after its lease ended (a late answer beats an unknown outcome). false otherwise:
   * completed already, released, forgotten, past its ttl, or the key went to a job.
   */
  complete(key: string, token: string, response: StoredResponse, options: { now: number; ttlMs: number }): Promise<boolean>;
  /** Give the key back without an answer (the relay's own failure): the same key may be sent again. No-op unless `token` owns it. */
  release(key: string, token: string): Promise<void>;
  /**
   * Drop the key's synchronous record whatever its state (an operator's decision on
   * an `outcome_unknown` key: the next request with it runs). A job's hold on the key
   * is untouched. true if a record was there (one past its ttl that no purge has
   * reached yet may count). Forgetting a live lease lets a resend run beside its holder,
   * whose `complete` then returns false: check with `reserve` first.
   */
  forget(key: string): Promise<boolean>;
  /** Remove expired records; returns how many went. Backends with native expiry may return 0. */
  purgeExpired(now: number): Promise<number>;
}

export interface NewDlqEntry {
  /**
   * The entry's id, when the caller must know it before storing (it is the
   * associated data of the entry's encrypted header values). An id already in the
   * DLQ is refused with {@link DuplicateIdError}.
   * @default a random UUID
   */
  id?: string;
  /** Where and how the request goes (route, method, path). */
  request: RequestTarget;
  /** The request's scoped idempotency key (see {@link IdempotencyStore}); null without a key. */
  keyScope: string | null;
  idempotencyKey: string | null;
  /** The request fingerprint under that key (so a replay can take the key as the same request). null without a key. */
  fingerprint: string | null;
  /** The request body exactly as the client sent it. */
  body: Buffer;
  /** The headers that were forwarded to the downstream (lower-case names). */
  headers: Record<string, string>;
  attempts: AttemptRecord[];
  lastError: string;
  /** The status the relay answered with (502 or 504), or the downstream's for a permanent failure. */
  status: number;
  /** Why it failed: `permanent` (another attempt will not help) or `transient` (may be redriven). */
  reason: DlqReason;
  /** What exactly ran out. */
  cause: DlqCause;
  /** The async job this entry came from; null for a synchronous request. */
  jobId: string | null;
  /** How many times this request was already redriven from the DLQ (carried over, for the redrive cap). */
  redrives: number;
  now: number;
}

/** What `jobs.bury` is given for the DLQ: the rest it copies from the job itself. */
export type JobDlqEntry = Omit<NewDlqEntry, 'jobId' | 'redrives' | 'request' | 'keyScope'>;

export type DlqReason = 'permanent' | 'transient';
export type DlqCause =
  /** permanent: a non-retryable downstream answer (e.g. 501, or a 4xx to an async job). */
  | 'non_retryable'
  /** transient: every attempt failed. */
  | 'attempts_exhausted'
  /** transient: the request deadline left no room for another attempt. */
  | 'deadline'
  /** transient: the last attempt timed out. */
  | 'timeout'
  /** transient: the circuit breaker opened during the retries. */
  | 'breaker_open'
  /** transient: the retry budget was spent. */
  | 'retry_budget';

export interface DlqEntry {
  id: string;
  /** ISO-8601 */
  createdAt: string;
  /** ISO-8601, changes when attempts are appended */
  updatedAt: string;
  /** Entries stored before routes existed read as `LEGACY_TARGET`. */
  request: RequestTarget;
  /** Entries stored before key scopes existed read their `idempotencyKey` here. */
  keyScope: string | null;
  idempotencyKey: string | null;
  fingerprint: string | null;
  body: Buffer;
  headers: Record<string, string>;
  attempts: AttemptRecord[];
  lastError: string;
  status: number;
  /** How many times the entry was replayed without success. */
  replays: number;
  reason: DlqReason;
  cause: DlqCause;
  jobId: string | null;
  /** Times this request was moved back to the job queue from the DLQ. */
  redrives: number;
  /** Edited replays tried on this entry, oldest first; the fields above stay the original request. */
  edits: DlqEdit[];
}

/**
 * One edited replay (`POST /dlq/:id/replay` with changes), recorded before the
 * changed request is sent. It never holds a secret header's value, nor the new
 * body itself (the entry keeps the original; the quota counts only that).
 */
export interface DlqEdit {
  /** ISO-8601 */
  at: string;
  /** The X-Request-Id of the replay request that made the edit (the log line that tells who). */
  requestId: string | null;
  /** Which parts of the request were changed. */
  changed: Array<'body' | 'contentType' | 'headers' | 'idempotencyKey'>;
  /** Size and SHA-256 (hex) of the body that was sent, when it changed. */
  body?: { bytes: number; sha256: string };
  contentType?: string;
  /** Added or replaced headers (lower-case names); secret ones as `[redacted]`. */
  headers?: Record<string, string>;
  /** The key the changed request went out under; null: none. Absent: the entry's own. */
  idempotencyKey?: string | null;
  /** Index in `attempts` of this replay's first attempt (attempts from there on are the changed request's, until the next edit). */
  firstAttempt: number;
}

/** Which entries a listing or a redrive selects; every given field must match. */
export interface DlqFilter {
  reason?: DlqReason;
  /** Only entries last updated at or before this epoch ms (age / cool-down). */
  updatedBefore?: number;
  /** Only entries with fewer redrives than this (the automatic redrive cap). */
  redrivesBelow?: number;
}

/** An entry as a listing shows it: everything but the body, which is never loaded, and its size. */
export type DlqSummary = Omit<DlqEntry, 'body'> & { bodyBytes: number };

export interface DlqPage {
  items: DlqSummary[];
  /** Opaque; pass back as `cursor` for the next page. null when this is the last page. */
  nextCursor: string | null;
}

export type ReplayClaim =
  /** The caller holds the entry's replay until `releaseReplay(id, token)` or the lease ends. */
  | { kind: 'claimed'; token: string }
  /** Another replay holds a live claim. */
  | { kind: 'busy' }
  /** No such entry. */
  | { kind: 'absent' };

export interface DlqStore {
  /** @throws DuplicateIdError when `entry.id` is given and already taken. */
  add(entry: NewDlqEntry): Promise<DlqEntry>;
  get(id: string): Promise<DlqEntry | null>;
  /**
   * Oldest first, without the bodies (`get` has them). An unknown or malformed
   * cursor throws `InvalidCursorError`.
   */
  list(options: { limit: number; cursor?: string; filter?: DlqFilter }): Promise<DlqPage>;
  /** A failed replay: append its attempts, replace lastError/status, bump `replays`. null if absent. */
  recordFailedReplay(id: string, attempts: AttemptRecord[], lastError: string, status: number, now: number): Promise<DlqEntry | null>;
  /**
   * Take the entry's replay for `leaseMs` from `now`: at most one holder at a time
   * across every process sharing the store. A claim whose lease has ended (its
   * holder died) may be taken over; expiry is judged by `now`, as idempotency leases are.
   */
  claimReplay(id: string, options: { now: number; leaseMs: number }): Promise<ReplayClaim>;
  /** Give the claim back. No-op unless `token` holds it (a takeover happened, or the entry is gone). */
  releaseReplay(id: string, token: string): Promise<void>;
  /**
   * Append `edit` to the entry's history, only while `token` holds its replay
   * claim. The entry otherwise stays as it was (body, size, `updatedAt`). null
   * (and no change) when the entry is gone or the claim is not `token`'s.
   */
  recordEdit(id: string, token: string, edit: DlqEdit): Promise<DlqEntry | null>;
  /** true if it existed. */
  remove(id: string): Promise<boolean>;
  size(): Promise<number>;
  /** How many entries and how many body bytes the DLQ holds (kept as counters, not counted). */
  usage(): Promise<{ count: number; bytes: number }>;
  /**
   * Atomically take the entry out of the DLQ and put its request back on the job
   * queue (state `queued`, available at `now`, `redrives` = entry.redrives + 1).
   * The entry's own job is requeued when `jobId` is set and the job exists; a job
   * already holding the entry's key scope is requeued likewise; otherwise a new job
   * is created with id `newJobId`, the entry's request, key scope and key (each
   * `newJobKey` when the entry has none), fingerprint (or `newJobKey`), body and
   * headers, priority `normal`; a client's later resend of the key finds that job.
   * null when the entry is gone (someone else moved or deleted it), or while a replay holds it (claimReplay).
   */
  redrive(id: string, options: { now: number; newJobId: string; newJobKey: string }): Promise<Job | null>;
  /** Delete entries last updated before `before` (epoch ms, the retention period); returns how many went. */
  purgeOlderThan(before: number): Promise<number>;
}

export type JobState = 'queued' | 'in_flight' | 'delivered' | 'dead';

/** A request accepted with `Prefer: respond-async`: stored before the 202, delivered at least once. */
export interface Job {
  id: string;
  state: JobState;
  priority: Priority;
  /** Jobs stored before routes existed read as `LEGACY_TARGET`. */
  request: RequestTarget;
  /** The scoped key the job holds in the one key space (jobs from before scopes: their `idempotencyKey`). */
  keyScope: string;
  /** Always set: the key forwarded to the downstream (the client's, or one the relay made up). */
  idempotencyKey: string;
  fingerprint: string;
  body: Buffer;
  /** Headers to forward (lower-case names). */
  headers: Record<string, string>;
  /** Every attempt so far, across leases and redrives. */
  attempts: AttemptRecord[];
  /** ISO-8601 */
  createdAt: string;
  /** ISO-8601 */
  updatedAt: string;
  /** Epoch ms from which a queued job may be leased. */
  availableAt: number;
  /** The downstream's definitive answer (delivered, or dead on a permanent one). */
  response: StoredResponse | null;
  lastError: string | null;
  /** Set while the job is dead. */
  dlqId: string | null;
  redrives: number;
}

export interface NewJob {
  id: string;
  request: RequestTarget;
  /**
   * The scoped key jobs deduplicate on, shared with synchronous requests' keys
   * (see {@link IdempotencyStore}); a caller without a client key passes one of its own.
   */
  keyScope: string;
  /** The key forwarded to the downstream. */
  idempotencyKey: string;
  fingerprint: string;
  body: Buffer;
  headers: Record<string, string>;
  priority: Priority;
  now: number;
  /**
   * Create the job already leased (in_flight) to the caller for this many ms, so
   * that no worker takes it while the caller makes its first attempts itself
   * (`Prefer: respond-async, wait=N`). The result's `token` then settles it like a
   * lease's; past `holdMs` it is taken over as a dead worker's job is.
   * @default undefined (queued, available at `now`)
   */
  holdMs?: number;
}

export type EnqueueResult =
  /** Stored; the caller may answer 202. `token` (with `holdMs`) holds its lease. */
  | { kind: 'created'; job: Job; token?: string }
  /** A job with this key scope and fingerprint already exists: answer with it (no new job). */
  | { kind: 'existing'; job: Job }
  /** A synchronous request with this key scope and fingerprint was answered: nothing stored. */
  | { kind: 'answered'; response: StoredResponse }
  /** A synchronous request with this key scope holds a live lease: nothing stored (409). */
  | { kind: 'in_flight' }
  /** A synchronous request with this key scope and fingerprint held it past its lease, unanswered: nothing stored (see {@link ReserveResult}). */
  | { kind: 'outcome_unknown' }
  /** A job or a synchronous request holds this key scope for a different fingerprint (422). */
  | { kind: 'mismatch' }
  /** The queue is at one of its `QueueLimits`: nothing stored (429). */
  | { kind: 'full'; reason: 'count' | 'bytes' };

/** Caps on the jobs waiting or in flight, checked atomically with the enqueue. */
export interface QueueLimits {
  /** A new job is refused while this many are queued or in flight. */
  maxQueued: number;
  /** A new job is refused when their body bytes plus its own would exceed this. */
  maxQueuedBytes: number;
}

/** A job taken by a worker: only the holder of `token` may finish it, until the lease expires. */
export interface JobLease {
  job: Job;
  token: string;
}

export interface JobStore {
  /**
   * Atomically create the job, or report what already holds its key scope (a job,
   * or a synchronous request's record: live, answered, or `outcome_unknown` once its
   * lease ended, never taken over, as `idempotency.reserve` answers).
   * With `limits`, a new job (not an existing one) is refused with `full` when the queue is at them.
   */
  enqueue(job: NewJob, limits?: QueueLimits): Promise<EnqueueResult>;
  /** What the jobs waiting or in flight hold: how many, and their body bytes (kept as counters, not counted). */
  usage(): Promise<{ queued: number; queuedBytes: number }>;
  get(id: string): Promise<Job | null>;
  /**
   * Take up to `limit` jobs for `leaseMs`: queued jobs whose `availableAt` <= `now`,
   * and in_flight jobs whose lease has expired (their worker died). Higher priority
   * first, then oldest `availableAt`. Each becomes in_flight with a fresh token.
   * A job taken over from a dead worker gets that worker's attempt appended in the
   * same atomic step (`interruptedAttempt(now)`: outcome `interrupted`, sent
   * `unknown`), so it counts towards the job's attempt limit.
   * A backend may judge lease expiry by its own clock (Redis) rather than `now`.
   */
  lease(options: { now: number; leaseMs: number; limit: number }): Promise<JobLease[]>;
  /** Delivered: append `attempts`, keep `response`. false (and no change) unless `token` still holds the lease. */
  complete(id: string, token: string, update: { attempts: AttemptRecord[]; response: StoredResponse; now: number }): Promise<boolean>;
  /** Back to queued until `availableAt`, appending `attempts`. false unless `token` holds the lease. */
  reschedule(
    id: string,
    token: string,
    update: { attempts: AttemptRecord[]; lastError: string; availableAt: number; now: number },
  ): Promise<boolean>;
  /**
   * Dead: append `attempts`, keep `response` (if any), and add `dlq` (with this job's
   * id, redrives, request and key scope) to the DLQ in the same atomic step. Returns
   * the DLQ entry, or null (and no change) unless `token` holds the lease.
   */
  bury(
    id: string,
    token: string,
    update: { attempts: AttemptRecord[]; response: StoredResponse | null; dlq: JobDlqEntry },
  ): Promise<DlqEntry | null>;
  /**
   * A dead job whose DLQ entry was replayed successfully by hand: delivered, with
   * `attempts` appended and `response` kept, `dlqId` cleared. false (no change)
   * unless the job exists and is dead.
   */
  markDelivered(id: string, update: { attempts: AttemptRecord[]; response: StoredResponse; now: number }): Promise<boolean>;
  /** Jobs per state (dashboards, the anti-stampede drain). */
  counts(): Promise<Record<JobState, number>>;
  /** Delete delivered and dead jobs last updated before `before`; returns how many went. */
  purgeFinishedBefore(before: number): Promise<number>;
}

export interface RelayStore {
  readonly idempotency: IdempotencyStore;
  readonly dlq: DlqStore;
  readonly jobs: JobStore;
  /** Throws unless the store can take a write (readiness): one cheap write, not a read. */
  ping(): Promise<void>;
  /** Idempotent. */
  close(): Promise<void>;
}

export class InvalidCursorError extends Error {
  readonly code = 'INVALID_CURSOR';
  constructor(cursor: string) {
    super(`Invalid cursor: ${JSON.stringify(cursor.slice(0, 64))}`);
  }
}

/** A caller-chosen id (`NewDlqEntry.id`) that another record already has. */
export class DuplicateIdError extends Error {
  readonly code = 'DUPLICATE_ID';
  constructor(id: string) {
    super(`Id already taken: ${JSON.stringify(id.slice(0, 64))}`);
  }
}
