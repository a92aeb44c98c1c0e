import { randomUUID } from 'node:crypto';
import type { Database, Statement } from 'better-sqlite3';
import type { AttemptRecord, DlqEntry, DlqFilter, DlqStore, Job, ReplayClaim } from '../types.js';
import { assertDlqFilter, assertEpochMs, assertLeaseMs, assertLimit } from '../arguments.js';
import { decodeCursor, encodeCursor } from '../cursor.js';
import {
  DLQ_COLUMNS,
  DLQ_SUMMARY_COLUMNS,
  prepareDlqInsert,
  toDlqEntry,
  toDlqSummary,
  type DlqRow,
  type DlqSummaryRow,
} from './dlq-rows.js';
import { prepareJobStatements, toJob } from './job-rows.js';
import { appendAttempts, toIso, wholeMs } from './json-columns.js';
import { reclaimFreePages } from './vacuum.js';

type PageParams = { after: number; limit: number; reason?: string; updatedBefore?: string; redrivesBelow?: number };

/** The dead-letter queue in the `dlq` table, ordered by its `seq` column. */
export function createSqliteDlqStore(db: Database): DlqStore {
  const insert = prepareDlqInsert(db);
  const jobs = prepareJobStatements(db);
  const selectById = db.prepare<[string], DlqRow>(`SELECT ${DLQ_COLUMNS} FROM dlq WHERE id = ?`);
  // A replay holding the entry owns its delivery: a redrive now would send the request a second time.
  const replayHeld = db.prepare<[string, number], { held: number }>(`SELECT 1 AS held FROM dlq WHERE id = ? AND replay_expires_at > ?`);
  const updateAfterReplay = db.prepare<[string, string, number, string, string], DlqRow>(
    `UPDATE dlq
        SET attempts = ?, last_error = ?, status = ?, updated_at = ?, replays = replays + 1
      WHERE id = ?
      RETURNING ${DLQ_COLUMNS}`,
  );
  const deleteById = db.prepare<[string]>(`DELETE FROM dlq WHERE id = ?`);
  const claim = db.prepare<{ id: string; token: string; now: number; expiresAt: number }>(
    `UPDATE dlq SET replay_token = @token, replay_expires_at = @expiresAt
      WHERE id = @id AND (replay_token IS NULL OR replay_expires_at <= @now)`,
  );
  const exists = db.prepare<[string], { one: number }>(`SELECT 1 AS one FROM dlq WHERE id = ?`);
  const unclaim = db.prepare<[string, string]>(
    `UPDATE dlq SET replay_token = NULL, replay_expires_at = NULL WHERE id = ? AND replay_token = ?`,
  );
  // json_insert appends without reading the array into JavaScript; only the claim's holder may.
  const appendEdit = db.prepare<[string, string, string], DlqRow>(
    `UPDATE dlq SET edits = json_insert(edits, '$[#]', json(?))
      WHERE id = ? AND replay_token = ?
      RETURNING ${DLQ_COLUMNS}`,
  );
  const deleteUpdatedBefore = db.prepare<[string]>(`DELETE FROM dlq WHERE updated_at < ?`);
  const count = db.prepare<[], { n: number }>(`SELECT COUNT(*) AS n FROM dlq`);

  // One statement per combination of filter fields (eight at most), so that each
  // gets a plan for exactly its conditions; `? IS NULL OR ...` would defeat the indexes.
  const pageStatements = new Map<string, Statement<PageParams, DlqSummaryRow>>();
  function pageStatement(filter: DlqFilter): Statement<PageParams, DlqSummaryRow> {
    const conditions = ['seq > @after'];
    if (filter.reason !== undefined) conditions.push('reason = @reason');
    // ISO-8601 text from toISOString() sorts like the times it names.
    if (filter.updatedBefore !== undefined) conditions.push('updated_at <= @updatedBefore');
    if (filter.redrivesBelow !== undefined) conditions.push('redrives < @redrivesBelow');
    const where = conditions.join(' AND ');
    let statement = pageStatements.get(where);
    if (statement === undefined) {
      statement = db.prepare(`SELECT ${DLQ_SUMMARY_COLUMNS} FROM dlq WHERE ${where} ORDER BY seq LIMIT @limit`);
      pageStatements.set(where, statement);
    }
    return statement;
  }

  // Read-modify-write of the attempts array: IMMEDIATE so a concurrent replay in
  // another process cannot lose our appended attempts.
  const recordFailedReplayTx = db.transaction(
    (id: string, attempts: AttemptRecord[], lastError: string, status: number, now: number): DlqEntry | null => {
      const row = selectById.get(id);
      if (row === undefined) return null;
      const updated = updateAfterReplay.get(appendAttempts(row.attempts, attempts), lastError, status, toIso(now), id);
      return updated === undefined ? null : toDlqEntry(updated);
    },
  );

  // Delete and requeue in one IMMEDIATE transaction: whoever deletes the entry
  // first is the only one who moves it.
  const redriveTx = db.transaction((id: string, at: number, newJobId: string, newJobKey: string): Job | null => {
    const now = wholeMs(at);
    const entry = selectById.get(id);
    if (entry === undefined || replayHeld.get(id, now) !== undefined) return null;
    deleteById.run(id);

    const job =
      (entry.job_id === null ? undefined : jobs.selectById.get(entry.job_id)) ??
      // A job already holding the key scope (the same key resent as a job).
      (entry.key_scope === null ? undefined : jobs.selectByScope.get(entry.key_scope));
    if (job !== undefined) {
      // Already on its way (e.g. the same key resent as a job): requeuing would
      // break a live worker's lease and deliver the request twice.
      if (job.state === 'queued' || job.state === 'in_flight') return toJob(job);
      // max: an entry from a synchronous request must not reset a job's redrive cap.
      const requeued = jobs.requeue.get({ seq: job.seq, now, redrives: Math.max(entry.redrives, job.redrives) + 1 });
      if (requeued === undefined) throw new Error(`job ${job.id} vanished inside its redrive transaction`);
      return toJob(requeued);
    }

    const created = jobs.insert.get({
      id: newJobId,
      priority: 'normal',
      request: entry.request,
      // The entry's scope, so that the client's own resend of its key finds this job.
      keyScope: entry.key_scope ?? newJobKey,
      idempotencyKey: entry.idempotency_key ?? newJobKey,
      fingerprint: entry.fingerprint ?? newJobKey,
      body: entry.body,
      headers: entry.headers,
      // The history travels with the request, as it does for a job redriven in place.
      attempts: entry.attempts,
      lastError: entry.last_error,
      now,
      redrives: entry.redrives + 1,
    });
    if (created === undefined) throw new Error('job insert returned no row');
    return toJob(created);
  });

  // IMMEDIATE: the update and the existence check that explains a refusal see one state.
  const claimTx = db.transaction((id: string, now: number, leaseMs: number): ReplayClaim => {
    const token = randomUUID();
    if (claim.run({ id, token, now: wholeMs(now), expiresAt: wholeMs(now + leaseMs) }).changes === 1) {
      return { kind: 'claimed', token };
    }
    return exists.get(id) === undefined ? { kind: 'absent' } : { kind: 'busy' };
  });

  return {
    async add(entry) {
      return insert(entry);
    },
    async get(id) {
      const row = selectById.get(id);
      return row === undefined ? null : toDlqEntry(row);
    },
    async list({ limit, cursor, filter = {} }) {
      assertLimit(limit);
      assertDlqFilter(filter);
      const after = cursor === undefined ? 0 : decodeCursor(cursor);
      const params: PageParams = { after, limit: limit + 1 };
      if (filter.reason !== undefined) params.reason = filter.reason;
      if (filter.updatedBefore !== undefined) params.updatedBefore = toIso(filter.updatedBefore);
      if (filter.redrivesBelow !== undefined) params.redrivesBelow = filter.redrivesBelow;
      // One extra row tells us whether another page exists without a COUNT.
      const rows = pageStatement(filter).all(params);
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        items: page.map(toDlqSummary),
        nextCursor: rows.length > limit && last !== undefined ? encodeCursor(last.seq) : null,
      };
    },
    async recordFailedReplay(id, attempts, lastError, status, now) {
      return recordFailedReplayTx.immediate(id, attempts, lastError, status, now);
    },
    async claimReplay(id, { now, leaseMs }) {
      assertEpochMs('now', now);
      assertLeaseMs(leaseMs);
      return claimTx.immediate(id, now, leaseMs);
    },
    async releaseReplay(id, token) {
      unclaim.run(id, token);
    },
    async recordEdit(id, token, edit) {
      const row = appendEdit.get(JSON.stringify(edit), id, token);
      return row === undefined ? null : toDlqEntry(row);
    },
    async remove(id) {
      return deleteById.run(id).changes === 1;
    },
    async size() {
      return count.get()?.n ?? 0;
    },
    async usage() {
      return jobs.usage.get('dlq') ?? { count: 0, bytes: 0 };
    },
    async redrive(id, { now, newJobId, newJobKey }) {
      return redriveTx.immediate(id, now, newJobId, newJobKey);
    },
    async purgeOlderThan(before) {
      assertEpochMs('before', before);
      const deleted = deleteUpdatedBefore.run(toIso(before)).changes;
      reclaimFreePages(db, deleted);
      return deleted;
    },
  };
}
