import { randomUUID } from 'node:crypto';
import type { Database } from 'better-sqlite3';
import type { IdempotencyStore, JobState, ReserveOptions, ReserveResult } from '../types.js';
import { prepareIdempotencyStatements, recordStatus, toResponse } from './idempotency-rows.js';
import { reclaimFreePages } from './vacuum.js';

/**
 * Idempotency records in the `idempotency` table, sharing one key space with the
 * jobs' `key_scope`. Statements are prepared once here because `reserve` and
 * `complete` run on every keyed relay request.
 */
export function createSqliteIdempotencyStore(db: Database): IdempotencyStore {
  const records = prepareIdempotencyStatements(db);
  // Not the body: a key held by a job is answered from these columns alone.
  const selectJob = db.prepare<[string], JobHold>(
    `SELECT id, state, fingerprint, response_status AS status, response_headers AS headers, response_body AS body
       FROM jobs WHERE key_scope = ?`,
  );
  // REPLACE: a record past its ttl may still be there (purges run now and then).
  const upsertInFlight = db.prepare<[string, string, string, number, number]>(
    `INSERT OR REPLACE INTO idempotency
       (key, fingerprint, state, token, lease_expires_at, expires_at, status, headers, body)
     VALUES (?, ?, 'in_flight', ?, ?, ?, NULL, NULL, NULL)`,
  );
  const markCompleted = db.prepare<[number, string, Buffer, number, string, string]>(
    `UPDATE idempotency
        SET state = 'completed', token = NULL, lease_expires_at = NULL,
            status = ?, headers = ?, body = ?, expires_at = ?
      WHERE key = ? AND state = 'in_flight' AND token = ?`,
  );
  const deleteInFlight = db.prepare<[string, string]>(
    `DELETE FROM idempotency WHERE key = ? AND state = 'in_flight' AND token = ?`,
  );
  const deleteExpired = db.prepare<[number]>(`DELETE FROM idempotency WHERE expires_at <= ?`);

  // IMMEDIATE takes the write lock before the read, so two processes sharing the
  // file cannot both see the key free and both reserve it.
  const reserveTx = db.transaction(
    (key: string, fingerprint: string, { now, leaseMs, ttlMs }: ReserveOptions): ReserveResult => {
      // A job holds its key for as long as the job exists.
      const job = selectJob.get(key);
      if (job !== undefined) {
        if (job.fingerprint !== fingerprint) return { kind: 'mismatch' };
        return { kind: 'job', jobId: job.id, state: job.state, response: job.status === null ? null : toResponse(job) };
      }
      const row = records.select.get(key);
      const status = recordStatus(row, now);
      if (row === undefined || status === 'absent') {
        const token = randomUUID();
        upsertInFlight.run(key, fingerprint, token, now + leaseMs, now + ttlMs);
        return { kind: 'reserved', token };
      }
      if (row.fingerprint !== fingerprint) return { kind: 'mismatch' };
      if (status === 'completed') return { kind: 'completed', response: toResponse(row) };
      return { kind: status };
    },
  );

  return {
    async reserve(key, fingerprint, options) {
      return reserveTx.immediate(key, fingerprint, options);
    },
    async complete(key, token, response, { now, ttlMs }) {
      const result = markCompleted.run(
        response.status,
        JSON.stringify(response.headers),
        response.body,
        now + ttlMs,
        key,
        token,
      );
      return result.changes === 1;
    },
    async release(key, token) {
      deleteInFlight.run(key, token);
    },
    async forget(key) {
      return records.remove.run(key).changes === 1;
    },
    async purgeExpired(now) {
      const deleted = deleteExpired.run(now).changes;
      reclaimFreePages(db, deleted);
      return deleted;
    },
  };
}

interface JobHold {
  id: string;
  state: JobState;
  fingerprint: string;
  status: number | null;
  headers: string | null;
  body: Buffer | null;
}
