import { randomUUID } from 'node:crypto';
import type { Database } from 'better-sqlite3';
import { assertId } from '../arguments.js';
import { DuplicateIdError, type DlqCause, type DlqEdit, type DlqEntry, type DlqReason, type DlqSummary, type NewDlqEntry } from '../types.js';
import { decodeRequestTarget, encodeRequestTarget } from '../request-target.js';
import { parseAttempts, parseHeaders, toIso } from './json-columns.js';

/** A `dlq` row as SELECT {@link DLQ_COLUMNS} returns it. */
export interface DlqRow {
  seq: number;
  id: string;
  created_at: string;
  updated_at: string;
  request: string | null;
  key_scope: string | null;
  idempotency_key: string | null;
  fingerprint: string | null;
  body: Buffer;
  headers: string;
  attempts: string;
  last_error: string;
  status: number;
  replays: number;
  reason: DlqReason;
  cause: DlqCause;
  job_id: string | null;
  redrives: number;
  edits: string;
}

const COLUMNS_BUT_BODY = `seq, id, created_at, updated_at, request, key_scope, idempotency_key, fingerprint,
  headers, attempts, last_error, status, replays, reason, cause, job_id, redrives, edits`;

export const DLQ_COLUMNS = `${COLUMNS_BUT_BODY}, body`;

/** A listing's row: `length()` of a BLOB comes from the record header, so the body's pages are never read. */
export const DLQ_SUMMARY_COLUMNS = `${COLUMNS_BUT_BODY}, length(body) AS body_bytes`;

export type DlqSummaryRow = Omit<DlqRow, 'body'> & { body_bytes: number };

export function toDlqEntry(row: DlqRow): DlqEntry {
  return { ...withoutBody(row), body: row.body };
}

export function toDlqSummary(row: DlqSummaryRow): DlqSummary {
  return { ...withoutBody(row), bodyBytes: row.body_bytes };
}

function withoutBody(row: Omit<DlqRow, 'body'>): Omit<DlqEntry, 'body'> {
  return {
    id: row.id,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    request: decodeRequestTarget(row.request),
    keyScope: row.key_scope,
    idempotencyKey: row.idempotency_key,
    fingerprint: row.fingerprint,
    headers: parseHeaders(row.headers),
    attempts: parseAttempts(row.attempts),
    lastError: row.last_error,
    status: row.status,
    replays: row.replays,
    reason: row.reason,
    cause: row.cause,
    jobId: row.job_id,
    redrives: row.redrives,
    edits: JSON.parse(row.edits) as DlqEdit[],
  };
}

type InsertParams = [
  string, string, string, string, string | null, string | null, string | null, Buffer, string, string, string, number,
  DlqReason, DlqCause, string | null, number,
];

/**
 * The one way a row enters the DLQ: `add`, and `bury` inside its own transaction.
 * Returns a function that inserts an entry under its given id or a fresh random one.
 * @throws DuplicateIdError when the given id is taken.
 */
export function prepareDlqInsert(db: Database): (entry: NewDlqEntry) => DlqEntry {
  const insert = db.prepare<InsertParams, DlqRow>(
    `INSERT INTO dlq
       (id, created_at, updated_at, request, key_scope, idempotency_key, fingerprint, body, headers, attempts, last_error, status,
        replays, reason, cause, job_id, redrives)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)
     ON CONFLICT (id) DO NOTHING
     RETURNING ${DLQ_COLUMNS}`,
  );
  return (entry) => {
    if (entry.id !== undefined) assertId('id', entry.id);
    const id = entry.id ?? randomUUID();
    const at = toIso(entry.now);
    const row = insert.get(
      id,
      at,
      at,
      encodeRequestTarget(entry.request),
      // ?? null: a caller written before scopes existed.
      entry.keyScope ?? null,
      entry.idempotencyKey,
      entry.fingerprint,
      entry.body,
      JSON.stringify(entry.headers),
      JSON.stringify(entry.attempts),
      entry.lastError,
      entry.status,
      entry.reason,
      entry.cause,
      entry.jobId,
      entry.redrives,
    );
    // The id is the only constraint an insert can hit (seq is ours).
    if (row === undefined) throw new DuplicateIdError(id);
    return toDlqEntry(row);
  };
}
