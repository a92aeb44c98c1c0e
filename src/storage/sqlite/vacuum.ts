import type { Database } from 'better-sqlite3';

/**
 * Largest database that is rebuilt (VACUUM) at open to switch it to incremental
 * auto-vacuum: VACUUM copies the whole file and holds the write lock meanwhile,
 * which is nothing for a young database and too long a start-up for a big one.
 * A bigger one keeps its mode until an operator runs `PRAGMA auto_vacuum =
 * INCREMENTAL; VACUUM;` on it once.
 */
const VACUUM_AT_OPEN_MAX_BYTES = 64 * 1024 * 1024;

const INCREMENTAL = 2;

/**
 * Makes the file give back the pages purges free (`auto_vacuum = INCREMENTAL`).
 * The mode only takes effect on a database with no tables yet, or through one
 * VACUUM, which cannot run inside a transaction: hence here, at open, before the
 * migrations and the switch to WAL, rather than in a migration step.
 */
export function enableIncrementalVacuum(db: Database): void {
  if (db.pragma('auto_vacuum', { simple: true }) === INCREMENTAL) return;
  const pages = db.pragma('page_count', { simple: true }) as number;
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  db.pragma('auto_vacuum = INCREMENTAL');
  if (pages === 0 || pages * pageSize > VACUUM_AT_OPEN_MAX_BYTES) return;
  try {
    db.exec('VACUUM');
  } catch (error) {
    // Another relay holds the file: the next open tries again. Anything else is real.
    if ((error as { code?: string }).code !== 'SQLITE_BUSY') throw error;
  }
}

/** After a purge that deleted rows: hand the freed pages back to the file system. */
export function reclaimFreePages(db: Database, deleted: number): void {
  if (deleted > 0) db.pragma('incremental_vacuum');
}
