import { randomUUID } from 'node:crypto';
import type { Database } from 'better-sqlite3';
import type { AttemptRecord, DlqEntry, DlqStore } from '../types.js';
import { decodeCursor, encodeCursor } from './cursor.js';

interface DlqRow {
  seq: number;
  id: string;
  created_at: string;
  updated_at: string;
  idempotency_key: string | null;
  fingerprint: string | null;
  body: Buffer;
  headers: string;
  attempts: string;
  last_error: string;
  status: number;
  replays: number;
}

const COLUMNS = `seq, id, created_at, updated_at, idempotency_key, fingerprint,
  body, headers, attempts, last_error, status, replays`;

/** The dead-letter queue in the `dlq` table, ordered by its `seq` column. */
export function createSqliteDlqStore(db: Database): DlqStore {
  const insert = db.prepare<
    [string, string, string, string | null, string | null, Buffer, string, string, string, number],
    DlqRow
  >(
    `INSERT INTO dlq
       (id, created_at, updated_at, idempotency_key, fingerprint, body, headers, attempts, last_error, status, replays)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)
     RETURNING ${COLUMNS}`,
  );
  const selectById = db.prepare<[string], DlqRow>(`SELECT ${COLUMNS} FROM dlq WHERE id = ?`);
  const selectPage = db.prepare<[number, number], DlqRow>(
    `SELECT ${COLUMNS} FROM dlq WHERE seq > ? ORDER BY seq LIMIT ?`,
  );
  const updateAfterReplay = db.prepare<[string, string, number, string, string], DlqRow>(
    `UPDATE dlq
        SET attempts = ?, last_error = ?, status = ?, updated_at = ?, replays = replays + 1
      WHERE id = ?
      RETURNING ${COLUMNS}`,
  );
  const deleteById = db.prepare<[string]>(`DELETE FROM dlq WHERE id = ?`);
  const count = db.prepare<[], { n: number }>(`SELECT COUNT(*) AS n FROM dlq`);

  // Read-modify-write of the attempts array: IMMEDIATE so a concurrent replay in
  // another process cannot lose our appended attempts.
  const recordFailedReplayTx = db.transaction(
    (id: string, attempts: AttemptRecord[], lastError: string, status: number, now: number): DlqEntry | null => {
      const row = selectById.get(id);
      if (row === undefined) return null;
      const all = [...parseAttempts(row.attempts), ...attempts];
      const updated = updateAfterReplay.get(JSON.stringify(all), lastError, status, new Date(now).toISOString(), id);
      return updated === undefined ? null : toEntry(updated);
    },
  );

  return {
    async add(entry) {
      const at = new Date(entry.now).toISOString();
      const row = insert.get(
        randomUUID(),
        at,
        at,
        entry.idempotencyKey,
        entry.fingerprint,
        entry.body,
        JSON.stringify(entry.headers),
        JSON.stringify(entry.attempts),
        entry.lastError,
        entry.status,
      );
      if (row === undefined) throw new Error('DLQ insert returned no row');
      return toEntry(row);
    },
    async get(id) {
      const row = selectById.get(id);
      return row === undefined ? null : toEntry(row);
    },
    async list({ limit, cursor }) {
      if (!Number.isSafeInteger(limit) || limit < 1) {
        throw new RangeError(`Expected \`limit\` to be an integer from 1 and up, got \`${limit}\``);
      }
      const after = cursor === undefined ? 0 : decodeCursor(cursor);
      // One extra row tells us whether another page exists without a COUNT.
      const rows = selectPage.all(after, limit + 1);
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        items: page.map(toEntry),
        nextCursor: rows.length > limit && last !== undefined ? encodeCursor(last.seq) : null,
      };
    },
    async recordFailedReplay(id, attempts, lastError, status, now) {
      return recordFailedReplayTx.immediate(id, attempts, lastError, status, now);
    },
    async remove(id) {
      return deleteById.run(id).changes === 1;
    },
    async size() {
      return count.get()?.n ?? 0;
    },
  };
}

function parseAttempts(json: string): AttemptRecord[] {
  return JSON.parse(json) as AttemptRecord[];
}

function toEntry(row: DlqRow): DlqEntry {
  return {
    id: row.id,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    idempotencyKey: row.idempotency_key,
    fingerprint: row.fingerprint,
    body: row.body,
    headers: JSON.parse(row.headers) as Record<string, string>,
    attempts: parseAttempts(row.attempts),
    lastError: row.last_error,
    status: row.status,
    replays: row.replays,
  };
}
