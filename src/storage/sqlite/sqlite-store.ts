import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { RelayStore } from '../types.js';
import { createSqliteDlqStore } from './dlq.js';
import { createSqliteIdempotencyStore } from './idempotency.js';
import { createSqliteJobStore } from './jobs.js';
import { SCHEMA_VERSION, migrate } from './migrations.js';
import { enableIncrementalVacuum } from './vacuum.js';

export interface SqliteStoreOptions {
  /** A file path (its directory is created if missing) or `:memory:`. */
  path: string;
  /**
   * How long a write waits for another connection's lock before failing with SQLITE_BUSY.
   * @default 5000
   */
  busyTimeoutMs?: number;
  /**
   * `NORMAL` survives a killed process; `FULL` also survives a power cut or OS
   * crash, at the price of an fsync on every commit (two per keyed request).
   * @default 'NORMAL'
   */
  synchronous?: 'NORMAL' | 'FULL';
  /**
   * Open an existing, already migrated database for reading only (inspection);
   * `ping()` then fails, so a relay never reports ready on such a store.
   * @default false
   */
  readonly?: boolean;
}

/**
 * Open (creating and migrating if needed) the embedded SQLite store.
 *
 * Size: the file uses incremental auto-vacuum, and every purge that deleted rows
 * gives the freed pages back, so the file shrinks after retention runs instead of
 * staying at its high-water mark (see `vacuum.ts` for databases made before).
 *
 * Durability: file databases use WAL with `synchronous = NORMAL` by default. A
 * commit is then in the WAL file (the OS page cache) before `run()` returns, so
 * `kill -9` of the relay loses nothing; only an OS crash or power cut can roll back
 * the last few commits, and even then the database stays consistent. Guarding
 * against that too costs an fsync per commit, so it is opt-in (`synchronous: 'FULL'`).
 */
export function openSqliteStore(options: SqliteStoreOptions): RelayStore {
  const { path, busyTimeoutMs = 5000, synchronous = 'NORMAL', readonly = false } = options;
  const inMemory = path === ':memory:' || path === '';
  if (!inMemory && !readonly) mkdirSync(dirname(path), { recursive: true });

  const db = new Database(path, { readonly, fileMustExist: readonly });
  try {
    // Before anything else: switching to WAL itself needs a lock another process may hold.
    db.pragma(`busy_timeout = ${Math.max(0, Math.trunc(busyTimeoutMs))}`);
    if (readonly) {
      assertMigrated(db);
    } else {
      enableIncrementalVacuum(db);
      // An in-memory database cannot use WAL (it reports 'memory'); nothing to survive anyway.
      if (!inMemory) db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${synchronous}`);
      migrate(db);
    }
  } catch (error) {
    db.close();
    throw error;
  }

  const idempotency = createSqliteIdempotencyStore(db);
  const dlq = createSqliteDlqStore(db);
  const jobs = createSqliteJobStore(db);
  // A write, not a read: a store that answers reads but refuses writes (a read-only
  // file, a full disk, a lock held for good) cannot take a single request.
  const touchProbe = db.prepare<[number]>(
    `INSERT INTO probe (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at`,
  );

  return {
    idempotency,
    dlq,
    jobs,
    async ping() {
      // Throws "The database connection is not open" once closed, which readiness wants.
      touchProbe.run(Date.now());
    },
    async close() {
      if (db.open) db.close();
    },
  };
}

/** A read-only store cannot migrate: it opens only a database at exactly this relay's schema. */
function assertMigrated(db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version !== SCHEMA_VERSION) {
    throw new Error(`SQLite schema version ${version} is not this relay's (${SCHEMA_VERSION}); a read-only store cannot migrate it`);
  }
}
