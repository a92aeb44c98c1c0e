import type { Database } from 'better-sqlite3';

/**
 * The schema, one step per entry: entry `i` moves the database from
 * `user_version = i` to `i + 1`. Append new steps; never edit a shipped one,
 * because databases in the field have already run it. Exported so that a test
 * can build a database as an older relay left it.
 */
export const MIGRATIONS: readonly string[] = [
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
  // 2: why an entry failed and where it came from (DLQ redrive), and the durable job queue.
  `
  -- Rows from before this step were all synchronous requests that ran out of attempts.
  ALTER TABLE dlq ADD COLUMN reason TEXT NOT NULL DEFAULT 'transient'
    CHECK (reason IN ('permanent', 'transient'));
  -- No CHECK on cause: SQLite cannot change a CHECK without rebuilding the table,
  -- and new causes are expected; the TypeScript type guards the values.
  ALTER TABLE dlq ADD COLUMN cause TEXT NOT NULL DEFAULT 'attempts_exhausted';
  ALTER TABLE dlq ADD COLUMN job_id TEXT;
  ALTER TABLE dlq ADD COLUMN redrives INTEGER NOT NULL DEFAULT 0;
  -- Listing by reason walks this in seq order; the others are checked row by row.
  CREATE INDEX dlq_reason_seq ON dlq (reason, seq);
  -- Retention (purgeOlderThan) and the updatedBefore filter.
  CREATE INDEX dlq_updated_at ON dlq (updated_at);

  -- seq is the rowid: creation order, the last tie-break when leasing.
  -- Times are epoch ms (INTEGER), converted to ISO-8601 on the way out.
  CREATE TABLE jobs (
    seq               INTEGER PRIMARY KEY,
    id                TEXT    NOT NULL UNIQUE,
    state             TEXT    NOT NULL CHECK (state IN ('queued', 'in_flight', 'delivered', 'dead')),
    priority          TEXT    NOT NULL CHECK (priority IN ('high', 'normal', 'low')),
    -- Generated, so it can never disagree with priority; ascending = more urgent.
    priority_rank     INTEGER NOT NULL GENERATED ALWAYS AS
                        (CASE priority WHEN 'high' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END) VIRTUAL,
    idempotency_key   TEXT    NOT NULL UNIQUE,
    fingerprint       TEXT    NOT NULL,
    body              BLOB    NOT NULL,
    headers           TEXT    NOT NULL,
    attempts          TEXT    NOT NULL DEFAULT '[]',
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    available_at      INTEGER NOT NULL,
    lease_token       TEXT,
    lease_expires_at  INTEGER,
    response_status   INTEGER,
    response_headers  TEXT,
    response_body     BLOB,
    last_error        TEXT,
    dlq_id            TEXT,
    redrives          INTEGER NOT NULL DEFAULT 0
  ) STRICT;
  -- lease() walks this in order for both halves: queued jobs (stopping after
  -- limit rows), and in_flight ones, which are few (about one per worker), so no
  -- separate index on lease_expires_at.
  CREATE INDEX jobs_lease ON jobs (state, priority_rank, available_at);
  -- purgeFinishedBefore() and counts().
  CREATE INDEX jobs_state_updated_at ON jobs (state, updated_at);
  `,
  // 3: where each stored request goes (route, method, path), as JSON text.
  `
  -- NULL on rows from before routes existed: they read as the legacy target (POST to the default route).
  ALTER TABLE dlq ADD COLUMN request TEXT;
  ALTER TABLE jobs ADD COLUMN request TEXT;
  `,
  // 4: who is replaying a DLQ entry by hand, and until when (one replay at a time).
  `
  ALTER TABLE dlq ADD COLUMN replay_token TEXT;
  ALTER TABLE dlq ADD COLUMN replay_expires_at INTEGER;
  `,
  // 5: the row readiness rewrites to prove the store still takes writes.
  `
  CREATE TABLE probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
  ) STRICT;
  `,
  // 6: what the queue and the DLQ hold, kept by triggers in the statement that changes
  // it, so that a quota check reads one row instead of summing every body.
  `
  CREATE TABLE usage (
    name  TEXT    PRIMARY KEY CHECK (name IN ('jobs', 'dlq')),
    count INTEGER NOT NULL,
    bytes INTEGER NOT NULL
  ) STRICT;
  -- 'jobs' counts the jobs queued or in flight; 'dlq' every entry.
  INSERT INTO usage (name, count, bytes)
    SELECT 'jobs', COUNT(*), COALESCE(SUM(length(body)), 0) FROM jobs WHERE state IN ('queued', 'in_flight');
  INSERT INTO usage (name, count, bytes) SELECT 'dlq', COUNT(*), COALESCE(SUM(length(body)), 0) FROM dlq;

  CREATE TRIGGER jobs_usage_insert AFTER INSERT ON jobs
    WHEN NEW.state IN ('queued', 'in_flight')
  BEGIN
    UPDATE usage SET count = count + 1, bytes = bytes + length(NEW.body) WHERE name = 'jobs';
  END;
  CREATE TRIGGER jobs_usage_delete AFTER DELETE ON jobs
    WHEN OLD.state IN ('queued', 'in_flight')
  BEGIN
    UPDATE usage SET count = count - 1, bytes = bytes - length(OLD.body) WHERE name = 'jobs';
  END;
  -- Only a move into or out of queued/in_flight changes anything (a lease or a
  -- reschedule does not); bodies are never updated.
  CREATE TRIGGER jobs_usage_enter AFTER UPDATE OF state ON jobs
    WHEN NEW.state IN ('queued', 'in_flight') AND OLD.state NOT IN ('queued', 'in_flight')
  BEGIN
    UPDATE usage SET count = count + 1, bytes = bytes + length(NEW.body) WHERE name = 'jobs';
  END;
  CREATE TRIGGER jobs_usage_leave AFTER UPDATE OF state ON jobs
    WHEN OLD.state IN ('queued', 'in_flight') AND NEW.state NOT IN ('queued', 'in_flight')
  BEGIN
    UPDATE usage SET count = count - 1, bytes = bytes - length(OLD.body) WHERE name = 'jobs';
  END;
  CREATE TRIGGER dlq_usage_insert AFTER INSERT ON dlq
  BEGIN
    UPDATE usage SET count = count + 1, bytes = bytes + length(NEW.body) WHERE name = 'dlq';
  END;
  CREATE TRIGGER dlq_usage_delete AFTER DELETE ON dlq
  BEGIN
    UPDATE usage SET count = count - 1, bytes = bytes - length(OLD.body) WHERE name = 'dlq';
  END;
  `,
  // 7: one key space for synchronous requests and jobs. Jobs deduplicate on their
  // scoped key; the key forwarded to the downstream is no longer unique (two
  // clients may send the same one). SQLite cannot drop a UNIQUE, so the table is
  // rebuilt, and with it its indexes and the usage triggers of step 6.
  `
  CREATE TABLE jobs_v7 (
    seq               INTEGER PRIMARY KEY,
    id                TEXT    NOT NULL UNIQUE,
    state             TEXT    NOT NULL CHECK (state IN ('queued', 'in_flight', 'delivered', 'dead')),
    priority          TEXT    NOT NULL CHECK (priority IN ('high', 'normal', 'low')),
    priority_rank     INTEGER NOT NULL GENERATED ALWAYS AS
                        (CASE priority WHEN 'high' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END) VIRTUAL,
    request           TEXT,
    key_scope         TEXT    NOT NULL UNIQUE,
    idempotency_key   TEXT    NOT NULL,
    fingerprint       TEXT    NOT NULL,
    body              BLOB    NOT NULL,
    headers           TEXT    NOT NULL,
    attempts          TEXT    NOT NULL DEFAULT '[]',
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    available_at      INTEGER NOT NULL,
    lease_token       TEXT,
    lease_expires_at  INTEGER,
    response_status   INTEGER,
    response_headers  TEXT,
    response_body     BLOB,
    last_error        TEXT,
    dlq_id            TEXT,
    redrives          INTEGER NOT NULL DEFAULT 0
  ) STRICT;
  -- Jobs from before scopes were deduplicated on their key alone: that is their scope.
  INSERT INTO jobs_v7
    (seq, id, state, priority, request, key_scope, idempotency_key, fingerprint, body, headers, attempts,
     created_at, updated_at, available_at, lease_token, lease_expires_at, response_status, response_headers,
     response_body, last_error, dlq_id, redrives)
  SELECT seq, id, state, priority, request, idempotency_key, idempotency_key, fingerprint, body, headers, attempts,
     created_at, updated_at, available_at, lease_token, lease_expires_at, response_status, response_headers,
     response_body, last_error, dlq_id, redrives
    FROM jobs;
  DROP TABLE jobs;
  ALTER TABLE jobs_v7 RENAME TO jobs;
  CREATE INDEX jobs_lease ON jobs (state, priority_rank, available_at);
  CREATE INDEX jobs_state_updated_at ON jobs (state, updated_at);
  CREATE TRIGGER jobs_usage_insert AFTER INSERT ON jobs
    WHEN NEW.state IN ('queued', 'in_flight')
  BEGIN
    UPDATE usage SET count = count + 1, bytes = bytes + length(NEW.body) WHERE name = 'jobs';
  END;
  CREATE TRIGGER jobs_usage_delete AFTER DELETE ON jobs
    WHEN OLD.state IN ('queued', 'in_flight')
  BEGIN
    UPDATE usage SET count = count - 1, bytes = bytes - length(OLD.body) WHERE name = 'jobs';
  END;
  CREATE TRIGGER jobs_usage_enter AFTER UPDATE OF state ON jobs
    WHEN NEW.state IN ('queued', 'in_flight') AND OLD.state NOT IN ('queued', 'in_flight')
  BEGIN
    UPDATE usage SET count = count + 1, bytes = bytes + length(NEW.body) WHERE name = 'jobs';
  END;
  CREATE TRIGGER jobs_usage_leave AFTER UPDATE OF state ON jobs
    WHEN OLD.state IN ('queued', 'in_flight') AND NEW.state NOT IN ('queued', 'in_flight')
  BEGIN
    UPDATE usage SET count = count - 1, bytes = bytes - length(OLD.body) WHERE name = 'jobs';
  END;

  -- Entries from before scopes: their key was the whole key (null stays null: no key).
  ALTER TABLE dlq ADD COLUMN key_scope TEXT;
  UPDATE dlq SET key_scope = idempotency_key;
  `,
  // 8: the history of edited replays of a DLQ entry (a JSON array), beside the original request it keeps.
  `
  ALTER TABLE dlq ADD COLUMN edits TEXT NOT NULL DEFAULT '[]';
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
