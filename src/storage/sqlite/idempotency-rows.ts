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
  /** Drops a record whatever its state: one past its ttl before a job takes its key, or `forget`. */
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

/**
 * What the record means at `now`: `absent` once past its ttl; an in-flight record
 * whose lease ended is `outcome_unknown` (its holder may have been answered and died
 * before recording it), and keeps its key until its ttl, its holder's `complete`
 * or `release`, or `forget`.
 */
export type RecordStatus = 'absent' | 'completed' | 'in_flight' | 'outcome_unknown';

export function recordStatus(row: IdempotencyRow | undefined, now: number): RecordStatus {
  if (row === undefined || row.expires_at <= now) return 'absent';
  if (row.state === 'completed') return 'completed';
  return (row.lease_expires_at ?? 0) > now ? 'in_flight' : 'outcome_unknown';
}

export function toResponse(row: { status: number | null; headers: string | null; body: Buffer | null }): StoredResponse {
  return {
    status: row.status ?? 0,
    headers: row.headers === null ? {} : (JSON.parse(row.headers) as Record<string, string>),
    body: row.body ?? Buffer.alloc(0),
  };
}
