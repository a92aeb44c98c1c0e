import type { Database, Statement } from 'better-sqlite3';
import type { StoredResponse } from '../types.js';

/** An `idempotency` row: a synchronous request's hold on a scoped key, and later its answer. */
export interface IdempotencyRow {
  fingerprint: string;
  state: 'in_flight' | 'completed';
  lease_expires_at: number | null;
  expires_at: number;
  status: number | null;
  headers: string | null;
  body: Buffer | null;
}

/** The statements both the idempotency store and job enqueue (one key space) use. */
export interface IdempotencyStatements {
  select: Statement<[string], IdempotencyRow>;
  /** Drops a record whatever its state: a job taking over a key whose holder's lease lapsed. */
  remove: Statement<[string]>;
}

export function prepareIdempotencyStatements(db: Database): IdempotencyStatements {
  return {
    select: db.prepare(
      `SELECT fingerprint, state, lease_expires_at, expires_at, status, headers, body
         FROM idempotency WHERE key = ?`,
    ),
    remove: db.prepare(`DELETE FROM idempotency WHERE key = ?`),
  };
}

/** Whether the record still holds its key at `now`: not expired, and answered or under a live lease. */
export function holdsKey(row: IdempotencyRow, now: number): boolean {
  if (row.expires_at <= now) return false;
  return row.state === 'completed' || (row.lease_expires_at ?? 0) > now;
}

export function toResponse(row: { status: number | null; headers: string | null; body: Buffer | null }): StoredResponse {
  return {
    status: row.status ?? 0,
    headers: row.headers === null ? {} : (JSON.parse(row.headers) as Record<string, string>),
    body: row.body ?? Buffer.alloc(0),
  };
}
