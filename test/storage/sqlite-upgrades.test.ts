import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { LEGACY_TARGET } from '../../src/domain.js';
import { MIGRATIONS } from '../../src/storage/sqlite/migrations.js';
import { openSqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import { newJob } from '../contract/contract-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'relay-sqlite-upgrade-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const freshPath = (): string => join(dir, `${randomUUID()}.db`);

/** Databases an older relay left behind, opened by this one: every row still reads, and nothing is lost. */
describe('SqliteStore upgrades', () => {
  const now = 1_700_000_000_000;

  it('a DLQ written by schema version 1 reads back with the defaults after the upgrade', async () => {
    const path = freshPath();
    const old = new Database(path);
    old.exec(MIGRATIONS[0] as string);
    old.pragma('user_version = 1');
    old.prepare(
      `INSERT INTO dlq (id, created_at, updated_at, idempotency_key, fingerprint, body, headers, attempts, last_error, status)
       VALUES ('old-entry', '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.000Z', 'k', 'fp', X'7B7D', '{}', '[]', '503', 502)`,
    ).run();
    old.close();

    const store = openSqliteStore({ path });
    try {
      expect(await store.dlq.get('old-entry')).toMatchObject({
        id: 'old-entry',
        request: LEGACY_TARGET,
        reason: 'transient',
        cause: 'attempts_exhausted',
        jobId: null,
        redrives: 0,
      });
      expect((await store.jobs.enqueue(newJob(now))).kind).toBe('created');
    } finally {
      await store.close();
    }
  });

  it('jobs and DLQ entries written by schema version 2 read back with the legacy request target', async () => {
    const path = freshPath();
    const old = new Database(path);
    for (const step of MIGRATIONS.slice(0, 2)) old.exec(step);
    old.pragma('user_version = 2');
    old.prepare(
      `INSERT INTO dlq (id, created_at, updated_at, idempotency_key, fingerprint, body, headers, attempts, last_error, status)
       VALUES ('v2-entry', '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.000Z', NULL, NULL, X'7B7D', '{}', '[]', '503', 502)`,
    ).run();
    old.prepare(
      `INSERT INTO jobs (id, state, priority, idempotency_key, fingerprint, body, headers, created_at, updated_at, available_at)
       VALUES ('v2-job', 'queued', 'normal', 'v2-key', 'fp', X'7B7D', '{}', 1, 1, 1)`,
    ).run();
    old.close();

    const store = openSqliteStore({ path });
    try {
      expect((await store.dlq.get('v2-entry'))?.request).toEqual(LEGACY_TARGET);
      expect((await store.jobs.get('v2-job'))?.request).toEqual(LEGACY_TARGET);
    } finally {
      await store.close();
    }
  });

  it('the upgrade that adds usage counters starts them from the rows already there', async () => {
    const path = freshPath();
    const old = new Database(path);
    for (const step of MIGRATIONS.slice(0, 5)) old.exec(step);
    old.pragma('user_version = 5');
    const insertJob = old.prepare(
      `INSERT INTO jobs (id, state, priority, idempotency_key, fingerprint, body, headers, created_at, updated_at, available_at)
       VALUES (?, ?, 'normal', ?, 'fp', ?, '{}', 1, 1, 1)`,
    );
    insertJob.run('queued', 'queued', 'k1', Buffer.alloc(10));
    insertJob.run('in-flight', 'in_flight', 'k2', Buffer.alloc(20));
    insertJob.run('delivered', 'delivered', 'k3', Buffer.alloc(40));
    old.prepare(
      `INSERT INTO dlq (id, created_at, updated_at, body, headers, attempts, last_error, status)
       VALUES ('e', '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.000Z', ?, '{}', '[]', '503', 502)`,
    ).run(Buffer.alloc(7));
    old.close();

    const store = openSqliteStore({ path });
    try {
      expect(await store.jobs.usage()).toEqual({ queued: 2, queuedBytes: 30 });
      expect(await store.dlq.usage()).toEqual({ count: 1, bytes: 7 });
      expect(await store.jobs.purgeFinishedBefore(Date.now())).toBe(1);
      expect(await store.jobs.usage()).toEqual({ queued: 2, queuedBytes: 30 });
    } finally {
      await store.close();
    }
  });

  it('the upgrade to one key space scopes old jobs and entries by their key, and keeps the usage counters running', async () => {
    const path = freshPath();
    const old = new Database(path);
    for (const step of MIGRATIONS.slice(0, 6)) old.exec(step);
    old.pragma('user_version = 6');
    old.prepare(
      `INSERT INTO jobs (id, state, priority, idempotency_key, fingerprint, body, headers, created_at, updated_at, available_at)
       VALUES ('old-job', 'queued', 'normal', 'old-key', 'fp', X'00112233', '{}', 1, 1, 1)`,
    ).run();
    old.prepare(
      `INSERT INTO dlq (id, created_at, updated_at, idempotency_key, fingerprint, body, headers, attempts, last_error, status)
       VALUES ('old-entry', '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.000Z', 'old-key', 'fp', X'7B7D', '{}', '[]', '503', 502)`,
    ).run();
    old.close();

    const store = openSqliteStore({ path });
    try {
      expect(await store.jobs.get('old-job')).toMatchObject({ keyScope: 'old-key', idempotencyKey: 'old-key' });
      expect(await store.dlq.get('old-entry')).toMatchObject({ keyScope: 'old-key', idempotencyKey: 'old-key' });
      const lease = { now, leaseMs: 1_000, ttlMs: 60_000 };
      expect(await store.idempotency.reserve('old-key', 'fp', lease)).toMatchObject({ kind: 'job', jobId: 'old-job' });
      // The downstream key alone no longer has to be unique.
      expect((await store.jobs.enqueue(newJob(now, { idempotencyKey: 'old-key', body: Buffer.alloc(6) }))).kind).toBe('created');
      expect(await store.jobs.usage()).toEqual({ queued: 2, queuedBytes: 10 });
      expect(await store.dlq.redrive('old-entry', { now, newJobId: 'unused', newJobKey: 'unused' })).toMatchObject({ id: 'old-job' });
    } finally {
      await store.close();
    }
  });
});
