import type { Database } from 'better-sqlite3';

/**
 * The schema, one step per entry: entry `i` moves the database from
 * `user_version = i` to `i + 1`. Append new steps; never edit a shipped one,
 * because databases in the field have already run it.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE idempotency (
    key              TEXT    PRIMARY KEY,
    fingerprint      TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('in_flight', 'completed')),
    token            TEXT,
    lease_expires_at INTEGER,
    expires_at       INTEGER NOT NULL,
    status           INTEGER,
    headers          TEXT,
    body             BLOB
  ) STRICT;
  CREATE INDEX idempotency_expires_at ON idempotency (expires_at);

  -- AUTOINCREMENT (not a plain rowid) so a deleted newest entry's seq is never
  -- handed out again: a cursor pointing at it must not skip the entry added next.
  CREATE TABLE dlq (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL UNIQUE,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    idempotency_key TEXT,
    fingerprint     TEXT,
    body            BLOB    NOT NULL,
    headers         TEXT    NOT NULL,
    attempts        TEXT    NOT NULL,
    last_error      TEXT    NOT NULL,
    status          INTEGER NOT NULL,
    replays         INTEGER NOT NULL DEFAULT 0
  ) STRICT;
  `,
];

/** The schema version this code expects (`PRAGMA user_version`). */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Bring the schema up to {@link SCHEMA_VERSION}. Each step and its version bump
 * commit together, so a crash mid-migration leaves the previous version intact.
 * Refuses a database written by a newer relay rather than guessing at its schema.
 */
export function migrate(db: Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new Error(
      `SQLite schema version ${current} is newer than this relay understands (${SCHEMA_VERSION}); upgrade the relay`,
    );
  }
  for (let version = current; version < SCHEMA_VERSION; version++) {
    const step = MIGRATIONS[version] as string;
    // IMMEDIATE: two relays starting on one file must not both run the same step.
    db.transaction(() => {
      const seen = db.pragma('user_version', { simple: true }) as number;
      if (seen !== version) return; // another process got here first
      db.exec(step);
      db.pragma(`user_version = ${version + 1}`);
    }).immediate();
  }
}
