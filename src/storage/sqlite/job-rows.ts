import type { Database, Statement } from 'better-sqlite3';
import type { Job, JobState, Priority } from '../types.js';
import { decodeRequestTarget } from '../request-target.js';
import { parseAttempts, parseHeaders, toIso } from './json-columns.js';

/** A `jobs` row as SELECT {@link JOB_COLUMNS} returns it. */
export interface JobRow {
  seq: number;
  id: string;
  state: JobState;
  priority: Priority;
  request: string | null;
  key_scope: string;
  idempotency_key: string;
  fingerprint: string;
  body: Buffer;
  headers: string;
  attempts: string;
  created_at: number;
  updated_at: number;
  available_at: number;
  lease_token: string | null;
  lease_expires_at: number | null;
  response_status: number | null;
  response_headers: string | null;
  response_body: Buffer | null;
  last_error: string | null;
  dlq_id: string | null;
  redrives: number;
}

export const JOB_COLUMNS = `seq, id, state, priority, request, key_scope, idempotency_key, fingerprint, body, headers, attempts,
  created_at, updated_at, available_at, lease_token, lease_expires_at,
  response_status, response_headers, response_body, last_error, dlq_id, redrives`;

export function toJob(row: JobRow): Job {
  return {
    id: row.id,
    state: row.state,
    priority: row.priority,
    request: decodeRequestTarget(row.request),
    keyScope: row.key_scope,
    idempotencyKey: row.idempotency_key,
    fingerprint: row.fingerprint,
    body: row.body,
    headers: parseHeaders(row.headers),
    attempts: parseAttempts(row.attempts),
    createdAt: toIso(row.created_at),
    updatedAt: toIso(row.updated_at),
    availableAt: row.available_at,
    response:
      row.response_status === null
        ? null
        : {
            status: row.response_status,
            headers: row.response_headers === null ? {} : parseHeaders(row.response_headers),
            body: row.response_body ?? Buffer.alloc(0),
          },
    lastError: row.last_error,
    dlqId: row.dlq_id,
    redrives: row.redrives,
  };
}

/** Column values of a new queued job; `headers` and `attempts` are JSON text. */
export interface JobInsert {
  id: string;
  priority: Priority;
  /** JSON text, or null for the legacy target. */
  request: string | null;
  keyScope: string;
  idempotencyKey: string;
  fingerprint: string;
  body: Buffer;
  headers: string;
  attempts: string;
  lastError: string | null;
  now: number;
  redrives: number;
}

/** The statements both the job store and the DLQ's redrive use (each prepares its own copy). */
export interface JobStatements {
  selectById: Statement<[string], JobRow>;
  /** The job holding a key scope. */
  selectByScope: Statement<[string], JobRow>;
  insert: Statement<JobInsert, JobRow>;
  /** Back to queued at `now` with `redrives`: no lease, no DLQ link, no answer. */
  requeue: Statement<{ seq: number; now: number; redrives: number }, JobRow>;
  /** The `usage` row named `jobs` or `dlq` (kept by triggers, migration 6). */
  usage: Statement<['jobs' | 'dlq'], { count: number; bytes: number }>;
}

export function prepareJobStatements(db: Database): JobStatements {
  return {
    selectById: db.prepare(`SELECT ${JOB_COLUMNS} FROM jobs WHERE id = ?`),
    selectByScope: db.prepare(`SELECT ${JOB_COLUMNS} FROM jobs WHERE key_scope = ?`),
    insert: db.prepare(
      `INSERT INTO jobs
         (id, state, priority, request, key_scope, idempotency_key, fingerprint, body, headers, attempts,
          last_error, created_at, updated_at, available_at, redrives)
       VALUES (@id, 'queued', @priority, @request, @keyScope, @idempotencyKey, @fingerprint, @body, @headers, @attempts,
          @lastError, @now, @now, @now, @redrives)
       RETURNING ${JOB_COLUMNS}`,
    ),
    requeue: db.prepare(
      `UPDATE jobs
          SET state = 'queued', available_at = @now, updated_at = @now, redrives = @redrives,
              lease_token = NULL, lease_expires_at = NULL, dlq_id = NULL,
              response_status = NULL, response_headers = NULL, response_body = NULL
        WHERE seq = @seq
        RETURNING ${JOB_COLUMNS}`,
    ),
    usage: db.prepare(`SELECT count, bytes FROM usage WHERE name = ?`),
  };
}
