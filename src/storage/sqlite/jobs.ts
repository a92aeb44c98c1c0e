import { randomUUID } from 'node:crypto';
import type { Database } from 'better-sqlite3';
import type { AttemptRecord, EnqueueResult, JobDlqEntry, JobLease, JobState, JobStore, NewJob, QueueLimits, StoredResponse } from '../types.js';
import { assertLeaseMs, assertLimit, assertQueueLimits } from '../arguments.js';
import { interruptedAttempt } from '../interrupted-attempt.js';
import { decodeRequestTarget, encodeRequestTarget } from '../request-target.js';
import { prepareDlqInsert } from './dlq-rows.js';
import { prepareIdempotencyStatements, recordStatus, toResponse } from './idempotency-rows.js';
import { appendAttempts, wholeMs } from './json-columns.js';
import { JOB_COLUMNS, prepareJobStatements, toJob, type JobRow } from './job-rows.js';
import { reclaimFreePages } from './vacuum.js';

const STATES: readonly JobState[] = ['queued', 'in_flight', 'delivered', 'dead'];

/**
 * The durable job queue in the `jobs` table. Every read-then-write runs in an
 * IMMEDIATE transaction: two relays may share the file, and the write lock taken
 * before the read is what stops both from leasing (or burying) the same job.
 */
export function createSqliteJobStore(db: Database): JobStore {
  const shared = prepareJobStatements(db);
  const records = prepareIdempotencyStatements(db);
  const insertDlq = prepareDlqInsert(db);

  // Each half is capped at `limit` on its own index before the merge, so a deep
  // queue costs `limit` rows, not a sort of everything leasable.
  const selectLeasable = db.prepare<{ now: number; limit: number }, JobRow>(
    `SELECT * FROM (
       SELECT ${JOB_COLUMNS}, priority_rank FROM jobs
        WHERE state = 'queued' AND available_at <= @now
        ORDER BY priority_rank, available_at, seq LIMIT @limit)
     UNION ALL
     SELECT * FROM (
       SELECT ${JOB_COLUMNS}, priority_rank FROM jobs
        WHERE state = 'in_flight' AND lease_expires_at <= @now
        ORDER BY priority_rank, available_at, seq LIMIT @limit)
     ORDER BY priority_rank, available_at, seq
     LIMIT @limit`,
  );
  // @attempts: null keeps them (a queued job); a take-over passes them with the interrupted one appended.
  const markLeased = db.prepare<{ seq: number; token: string; expiresAt: number; now: number; attempts: string | null }, JobRow>(
    `UPDATE jobs
        SET state = 'in_flight', lease_token = @token, lease_expires_at = @expiresAt, updated_at = @now,
            attempts = COALESCE(@attempts, attempts)
      WHERE seq = @seq
      RETURNING ${JOB_COLUMNS}`,
  );
  // A token holds its job until someone else leases it, even past lease_expires_at:
  // a slow worker that finishes before the takeover still counts.
  const selectHeld = db.prepare<[string, string], JobRow>(
    `SELECT ${JOB_COLUMNS} FROM jobs WHERE id = ? AND state = 'in_flight' AND lease_token = ?`,
  );
  const markDelivered = db.prepare<{ seq: number; attempts: string; status: number; headers: string; body: Buffer; now: number }>(
    `UPDATE jobs
        SET state = 'delivered', attempts = @attempts, updated_at = @now,
            response_status = @status, response_headers = @headers, response_body = @body,
            lease_token = NULL, lease_expires_at = NULL, dlq_id = NULL
      WHERE seq = @seq`,
  );
  const markQueued = db.prepare<{ seq: number; attempts: string; lastError: string; availableAt: number; now: number }>(
    `UPDATE jobs
        SET state = 'queued', attempts = @attempts, last_error = @lastError,
            available_at = @availableAt, updated_at = @now,
            lease_token = NULL, lease_expires_at = NULL
      WHERE seq = @seq`,
  );
  const markDead = db.prepare<{
    seq: number;
    attempts: string;
    status: number | null;
    headers: string | null;
    body: Buffer | null;
    lastError: string;
    dlqId: string;
    now: number;
  }>(
    `UPDATE jobs
        SET state = 'dead', attempts = @attempts, last_error = @lastError, dlq_id = @dlqId, updated_at = @now,
            response_status = @status, response_headers = @headers, response_body = @body,
            lease_token = NULL, lease_expires_at = NULL
      WHERE seq = @seq`,
  );
  const selectDead = db.prepare<[string], JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE id = ? AND state = 'dead'`);
  const countByState = db.prepare<[], { state: JobState; n: number }>(
    `SELECT state, COUNT(*) AS n FROM jobs GROUP BY state`,
  );
  const deleteFinished = db.prepare<[number]>(
    `DELETE FROM jobs WHERE state IN ('delivered', 'dead') AND updated_at < ?`,
  );

  // One key space: a job, or a synchronous request's record, may hold the scope.
  const enqueueTx = db.transaction((job: NewJob, keyScope: string, limits: QueueLimits | undefined): EnqueueResult => {
    const held = shared.selectByScope.get(keyScope);
    if (held !== undefined) {
      return held.fingerprint === job.fingerprint ? { kind: 'existing', job: toJob(held) } : { kind: 'mismatch' };
    }
    const record = records.select.get(keyScope);
    const status = recordStatus(record, job.now);
    if (record !== undefined && status !== 'absent') {
      if (record.fingerprint !== job.fingerprint) return { kind: 'mismatch' };
      return status === 'completed' ? { kind: 'answered', response: toResponse(record) } : { kind: status };
    }
    if (limits !== undefined) {
      const { count, bytes } = shared.usage.get('jobs') ?? { count: 0, bytes: 0 };
      if (count >= limits.maxQueued) return { kind: 'full', reason: 'count' };
      if (bytes + job.body.length > limits.maxQueuedBytes) return { kind: 'full', reason: 'bytes' };
    }
    // Past its ttl but not yet purged: it must not outlive the job's hold on the key.
    if (record !== undefined) records.remove.run(keyScope);
    const row = shared.insert.get({
      id: job.id,
      priority: job.priority,
      request: encodeRequestTarget(job.request),
      keyScope,
      idempotencyKey: job.idempotencyKey,
      fingerprint: job.fingerprint,
      body: job.body,
      headers: JSON.stringify(job.headers),
      attempts: '[]',
      lastError: null,
      now: wholeMs(job.now),
      redrives: 0,
    });
    if (row === undefined) throw new Error('job insert returned no row');
    if (job.holdMs === undefined) return { kind: 'created', job: toJob(row) };
    const token = randomUUID();
    const leased = markLeased.get({ seq: row.seq, token, expiresAt: wholeMs(job.now + job.holdMs), now: wholeMs(job.now), attempts: null });
    if (leased === undefined) throw new Error(`job ${job.id} vanished inside its enqueue transaction`);
    return { kind: 'created', job: toJob(leased), token };
  });

  const leaseTx = db.transaction((now: number, leaseMs: number, limit: number): JobLease[] =>
    selectLeasable.all({ now, limit }).map((candidate) => {
      const token = randomUUID();
      const attempts = candidate.state === 'in_flight' ? appendAttempts(candidate.attempts, [interruptedAttempt(now)]) : null;
      const row = markLeased.get({ seq: candidate.seq, token, expiresAt: wholeMs(now + leaseMs), now: wholeMs(now), attempts });
      if (row === undefined) throw new Error(`job ${candidate.id} vanished inside its lease transaction`);
      return { job: toJob(row), token };
    }),
  );

  const deliver = (row: { seq: number; attempts: string }, attempts: AttemptRecord[], response: StoredResponse, now: number): true => {
    markDelivered.run({
      seq: row.seq,
      attempts: appendAttempts(row.attempts, attempts),
      status: response.status,
      headers: JSON.stringify(response.headers),
      body: response.body,
      now: wholeMs(now),
    });
    return true;
  };

  const completeTx = db.transaction(
    (id: string, token: string, attempts: AttemptRecord[], response: StoredResponse, now: number): boolean => {
      const row = selectHeld.get(id, token);
      return row !== undefined && deliver(row, attempts, response, now);
    },
  );

  // Same row shape as complete() leaves; dlq_id goes because its entry is gone after the replay.
  const deliverDeadTx = db.transaction((id: string, attempts: AttemptRecord[], response: StoredResponse, now: number): boolean => {
    const row = selectDead.get(id);
    return row !== undefined && deliver(row, attempts, response, now);
  });

  const rescheduleTx = db.transaction(
    (id: string, token: string, attempts: AttemptRecord[], lastError: string, availableAt: number, now: number): boolean => {
      const row = selectHeld.get(id, token);
      if (row === undefined) return false;
      markQueued.run({
        seq: row.seq,
        attempts: appendAttempts(row.attempts, attempts),
        lastError,
        availableAt: wholeMs(availableAt),
        now: wholeMs(now),
      });
      return true;
    },
  );

  const buryTx = db.transaction(
    (
      id: string,
      token: string,
      attempts: AttemptRecord[],
      response: StoredResponse | null,
      dlq: JobDlqEntry,
    ) => {
      const row = selectHeld.get(id, token);
      if (row === undefined) return null;
      const entry = insertDlq({
        ...dlq,
        jobId: row.id,
        redrives: row.redrives,
        request: decodeRequestTarget(row.request),
        keyScope: row.key_scope,
      });
      markDead.run({
        seq: row.seq,
        attempts: appendAttempts(row.attempts, attempts),
        status: response?.status ?? null,
        headers: response === null ? null : JSON.stringify(response.headers),
        body: response?.body ?? null,
        lastError: dlq.lastError,
        dlqId: entry.id,
        now: wholeMs(dlq.now),
      });
      return entry;
    },
  );

  return {
    async enqueue(job, limits) {
      if (limits !== undefined) assertQueueLimits(limits);
      if (job.holdMs !== undefined) assertLeaseMs(job.holdMs);
      // ?? idempotencyKey: a caller written before key scopes, whose key was the whole key.
      return enqueueTx.immediate(job, job.keyScope ?? job.idempotencyKey, limits);
    },
    async usage() {
      const { count, bytes } = shared.usage.get('jobs') ?? { count: 0, bytes: 0 };
      return { queued: count, queuedBytes: bytes };
    },
    async get(id) {
      const row = shared.selectById.get(id);
      return row === undefined ? null : toJob(row);
    },
    async lease({ now, leaseMs, limit }) {
      assertLimit(limit);
      assertLeaseMs(leaseMs);
      return leaseTx.immediate(now, leaseMs, limit);
    },
    async complete(id, token, { attempts, response, now }) {
      return completeTx.immediate(id, token, attempts, response, now);
    },
    async reschedule(id, token, { attempts, lastError, availableAt, now }) {
      return rescheduleTx.immediate(id, token, attempts, lastError, availableAt, now);
    },
    async bury(id, token, { attempts, response, dlq }) {
      return buryTx.immediate(id, token, attempts, response, dlq);
    },
    async markDelivered(id, { attempts, response, now }) {
      return deliverDeadTx.immediate(id, attempts, response, now);
    },
    async counts() {
      const counts = Object.fromEntries(STATES.map((state) => [state, 0])) as Record<JobState, number>;
      for (const { state, n } of countByState.all()) counts[state] = n;
      return counts;
    },
    async purgeFinishedBefore(before) {
      const deleted = deleteFinished.run(before).changes;
      reclaimFreePages(db, deleted);
      return deleted;
    },
  };
}
