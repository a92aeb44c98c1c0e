import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import { MIGRATIONS, SCHEMA_VERSION } from '../../src/storage/sqlite/migrations.js';
import { InvalidCursorError, type AttemptRecord, type RelayStore } from '../../src/storage/types.js';
import { buryEntry, newDlqEntry, newJob } from '../contract/contract-helpers.js';
import { storeContractTests } from '../contract/store-contract.js';

const dir = mkdtempSync(join(tmpdir(), 'relay-sqlite-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const freshPath = (): string => join(dir, `${randomUUID()}.db`);

storeContractTests('SqliteStore (:memory:)', () => openSqliteStore({ path: ':memory:' }));

let lastPath = '';
storeContractTests(
  'SqliteStore (file)',
  () => {
    lastPath = freshPath();
    return openSqliteStore({ path: lastPath });
  },
  { reopen: () => openSqliteStore({ path: lastPath }) },
);

describe('SqliteStore specifics', () => {
  it('a file database is in WAL mode', async () => {
    const path = freshPath();
    const store = openSqliteStore({ path });
    try {
      // journal_mode=WAL is persistent, so a second connection sees it.
      const probe = new Database(path, { readonly: true });
      expect(probe.pragma('journal_mode', { simple: true })).toBe('wal');
      probe.close();
    } finally {
      await store.close();
    }
  });

  it('ping proves the store can write: a store opened read-only fails it, and still reads', async () => {
    const path = freshPath();
    const writable = openSqliteStore({ path });
    const entry = await writable.dlq.add(newDlqEntry(Date.now()));
    await writable.ping();
    await writable.close();

    const readOnly = openSqliteStore({ path, readonly: true });
    try {
      await expect(readOnly.ping()).rejects.toThrow(/readonly/i);
      expect((await readOnly.dlq.get(entry.id))?.id).toBe(entry.id);
    } finally {
      await readOnly.close();
    }
  });

  it('a read-only store refuses a database it would have to migrate', () => {
    const path = freshPath();
    const db = new Database(path);
    db.exec(MIGRATIONS[0] as string);
    db.pragma('user_version = 1');
    db.close();
    expect(() => openSqliteStore({ path, readonly: true })).toThrow(/cannot migrate/);
  });

  it('a new file database uses incremental auto-vacuum', async () => {
    const path = freshPath();
    await openSqliteStore({ path }).close();
    const probe = new Database(path, { readonly: true });
    expect(probe.pragma('auto_vacuum', { simple: true })).toBe(2);
    probe.close();
  });

  it('a small database made without auto-vacuum is switched to it at open', async () => {
    const path = freshPath();
    const old = new Database(path);
    old.exec(MIGRATIONS[0] as string);
    old.pragma('user_version = 1');
    expect(old.pragma('auto_vacuum', { simple: true })).toBe(0);
    old.close();
    await openSqliteStore({ path }).close();
    const probe = new Database(path, { readonly: true });
    expect(probe.pragma('auto_vacuum', { simple: true })).toBe(2);
    probe.close();
  });

  it('the file shrinks after a purge of many large rows', { timeout: 15_000 }, async () => {
    const path = freshPath();
    const now = 1_700_000_000_000;
    let store = openSqliteStore({ path });
    const body = Buffer.alloc(64 * 1024, 0x5a);
    for (let i = 0; i < 150; i++) await store.dlq.add(newDlqEntry(now, { body }));
    for (let i = 0; i < 50; i++) {
      const job = newJob(now, { body });
      await store.jobs.enqueue(job);
      const [lease] = await store.jobs.lease({ now, leaseMs: 60_000, limit: 1 });
      await store.jobs.complete(job.id, lease?.token ?? '', { attempts: [], response: { status: 200, headers: {}, body }, now });
    }
    // Closing checkpoints the WAL into the file, so its size is the database's.
    await store.close();
    const full = statSync(path).size;
    expect(full).toBeGreaterThan(200 * body.length);

    store = openSqliteStore({ path });
    expect(await store.dlq.purgeOlderThan(now + 1)).toBe(150);
    expect(await store.jobs.purgeFinishedBefore(now + 1)).toBe(50);
    await store.close();
    const purged = statSync(path).size;
    expect(purged).toBeLessThan(full / 10);
  });

  it('opening a path in a missing directory creates the directory', async () => {
    const path = join(dir, randomUUID(), 'nested', 'relay.db');
    const store = openSqliteStore({ path });
    await store.ping();
    await store.close();
    expect(existsSync(path)).toBe(true);
  });

  it('records the schema version and reopens without migrating again', async () => {
    const path = freshPath();
    await openSqliteStore({ path }).close();
    const store = openSqliteStore({ path });
    await store.close();
    const probe = new Database(path, { readonly: true });
    expect(probe.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    probe.close();
  });

  it('refuses a database written by a newer schema', () => {
    const path = freshPath();
    const db = new Database(path);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => openSqliteStore({ path })).toThrow(/newer than this relay understands/);
  });

  it('purgeExpired deletes exactly the expired records and counts them', async () => {
    const store = openSqliteStore({ path: ':memory:' });
    try {
      const now = 1_700_000_000_000;
      for (const [key, ttlMs] of [['a', 1_000], ['b', 2_000], ['c', 10_000]] as const) {
        await store.idempotency.reserve(key, 'fp', { now, leaseMs: 500, ttlMs });
      }
      expect(await store.idempotency.purgeExpired(now + 2_000)).toBe(2);
      expect(await store.idempotency.purgeExpired(now + 2_000)).toBe(0);
      // The one left still holds its key (its lease ended unanswered), until its own ttl.
      expect((await store.idempotency.reserve('c', 'fp', { now: now + 2_000, leaseMs: 500, ttlMs: 1 })).kind).toBe('outcome_unknown');
      expect((await store.idempotency.reserve('a', 'fp', { now: now + 2_000, leaseMs: 500, ttlMs: 1 })).kind).toBe('reserved');
    } finally {
      await store.close();
    }
  });

  it('a cursor with junk appended is rejected, not silently decoded', async () => {
    const store = openSqliteStore({ path: ':memory:' });
    try {
      for (let i = 0; i < 3; i++) await store.dlq.add(newDlqEntry(i, { idempotencyKey: null, fingerprint: null }));
      const { nextCursor } = await store.dlq.list({ limit: 1 });
      expect(nextCursor).not.toBeNull();
      // Node's base64 decoder skips characters outside the alphabet, and '=' padding.
      for (const tampered of [`${nextCursor}!`, `${nextCursor}==`, ` ${nextCursor}`]) {
        await expect(store.dlq.list({ limit: 1, cursor: tampered })).rejects.toBeInstanceOf(InvalidCursorError);
      }
    } finally {
      await store.close();
    }
  });

  it('a DLQ entry and a queued job written before kill -9 are there after restart', { timeout: 5_000 }, async () => {
    const path = freshPath();
    const childScript = fileURLToPath(new URL('../fixtures/sqlite-crash-child.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', childScript, path], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    try {
      const [id = '', jobId = ''] = (await firstLine(child.stdout, child.stderr)).split(' ');
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
      // The entry is still only in the WAL: recovery, not a checkpoint on close, must bring it back.
      expect(statSync(`${path}-wal`).size).toBeGreaterThan(0);

      const store = openSqliteStore({ path });
      try {
        const entry = await store.dlq.get(id);
        expect(entry?.body.toString('utf8')).toBe('{"survives":"kill -9"}');
        expect(entry?.status).toBe(504);
        expect(await store.jobs.get(jobId)).toMatchObject({ state: 'queued', priority: 'high' });
        expect((await store.jobs.lease({ now: Date.now(), leaseMs: 1_000, limit: 5 })).map((l) => l.job.id)).toEqual([jobId]);
      } finally {
        await store.close();
      }
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});

describe('SqliteStore jobs and DLQ specifics', () => {
  const now = 1_700_000_000_000;

  async function withStore(test: (store: RelayStore) => Promise<void>): Promise<void> {
    const store = openSqliteStore({ path: ':memory:' });
    try {
      await test(store);
    } finally {
      await store.close();
    }
  }

  it('lease judges expiry by `now`: taken over at exactly leaseMs, not a millisecond before', () =>
    withStore(async (store) => {
      const job = newJob(now);
      await store.jobs.enqueue(job);
      const [first] = await store.jobs.lease({ now, leaseMs: 1_000, limit: 5 });
      expect(await store.jobs.lease({ now: now + 999, leaseMs: 1_000, limit: 5 })).toEqual([]);
      const [second] = await store.jobs.lease({ now: now + 1_000, leaseMs: 1_000, limit: 5 });
      expect(second?.job.id).toBe(job.id);
      expect(second?.token).not.toBe(first?.token);
    }));

  it('jobs of the same priority and availableAt are leased in the order they were enqueued', () =>
    withStore(async (store) => {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const job = newJob(now);
        ids.push(job.id);
        await store.jobs.enqueue(job);
      }
      const leases = await store.jobs.lease({ now, leaseMs: 1_000, limit: 5 });
      expect(leases.map((l) => l.job.id)).toEqual(ids);
    }));

  it('an expired lease competes by priority with queued jobs', () =>
    withStore(async (store) => {
      const high = newJob(now, { priority: 'high' });
      await store.jobs.enqueue(high);
      await store.jobs.lease({ now, leaseMs: 1_000, limit: 1 });
      const low = newJob(now + 500, { priority: 'low' });
      await store.jobs.enqueue(low);
      const leases = await store.jobs.lease({ now: now + 2_000, leaseMs: 1_000, limit: 2 });
      expect(leases.map((l) => l.job.id)).toEqual([high.id, low.id]);
    }));

  it('fractional times from a fake clock or a computed backoff are stored, rounded up', () =>
    withStore(async (store) => {
      const job = newJob(now + 0.25);
      await store.jobs.enqueue(job);
      const [lease] = await store.jobs.lease({ now: now + 1.5, leaseMs: 999.5, limit: 1 });
      const update = { attempts: [], lastError: '503', availableAt: now + 100.2, now: now + 2.7 };
      expect(await store.jobs.reschedule(job.id, lease?.token ?? '', update)).toBe(true);
      expect(await store.jobs.get(job.id)).toMatchObject({ state: 'queued', availableAt: now + 101 });
      expect(await store.jobs.lease({ now: now + 100.5, leaseMs: 1_000, limit: 1 })).toEqual([]);
      expect(await store.jobs.lease({ now: now + 101, leaseMs: 1_000, limit: 1 })).toHaveLength(1);
    }));

  it('lease names a bad limit or leaseMs', () =>
    withStore(async (store) => {
      await expect(store.jobs.lease({ now, leaseMs: 1_000, limit: 0 })).rejects.toThrow('got `0`');
      await expect(store.jobs.lease({ now, leaseMs: -5, limit: 1 })).rejects.toThrow('got `-5`');
    }));

  it('a bury that fails half-way leaves no DLQ entry and the job still leased', () =>
    withStore(async (store) => {
      const job = newJob(now);
      await store.jobs.enqueue(job);
      const [lease] = await store.jobs.lease({ now, leaseMs: 60_000, limit: 1 });
      if (lease === undefined) throw new Error('expected a lease');
      // JSON.stringify throws on a BigInt, after the DLQ row is inserted and before the job is marked dead.
      const unserialisable = [{ at: new Date(now).toISOString(), outcome: 'timeout', durationMs: 1n }] as unknown as AttemptRecord[];
      const dlq = buryEntry(lease.job, now + 10);
      await expect(store.jobs.bury(job.id, lease.token, { attempts: unserialisable, response: null, dlq })).rejects.toThrow();
      expect(await store.dlq.size()).toBe(0);
      expect(await store.jobs.get(job.id)).toMatchObject({ state: 'in_flight', dlqId: null });
      expect(await store.jobs.bury(job.id, lease.token, { attempts: dlq.attempts, response: null, dlq })).not.toBeNull();
    }));

  it('redrive leaves a job that is already queued or in flight alone, and still removes the entry', () =>
    withStore(async (store) => {
      const queued = newJob(now, { priority: 'high' });
      await store.jobs.enqueue(queued);
      const [lease] = await store.jobs.lease({ now, leaseMs: 60_000, limit: 1 });
      const entry = await store.dlq.add(newDlqEntry(now, { keyScope: queued.keyScope, fingerprint: queued.fingerprint }));

      const redriven = await store.dlq.redrive(entry.id, { now: now + 10, newJobId: 'unused', newJobKey: 'unused' });
      expect(redriven).toMatchObject({ id: queued.id, state: 'in_flight', redrives: 0 });
      expect(await store.dlq.get(entry.id)).toBeNull();
      // The worker's lease was not broken.
      const response = { status: 200, headers: {}, body: Buffer.alloc(0) };
      expect(await store.jobs.complete(queued.id, lease?.token ?? '', { attempts: [], response, now: now + 20 })).toBe(true);
    }));

  it('redrive of a synchronous entry onto a job with more redrives keeps the higher count', () =>
    withStore(async (store) => {
      const input = newJob(now);
      await store.jobs.enqueue(input);
      // Bury, redrive, bury again: the job has one redrive behind it.
      for (const at of [now, now + 10]) {
        const [lease] = await store.jobs.lease({ now: at, leaseMs: 60_000, limit: 1 });
        if (lease === undefined) throw new Error('expected a lease');
        const dlq = buryEntry(lease.job, at + 1);
        const entry = await store.jobs.bury(input.id, lease.token, { attempts: [], response: null, dlq });
        if (at === now) await store.dlq.redrive(entry?.id ?? '', { now: at + 2, newJobId: 'unused', newJobKey: 'unused' });
      }
      expect((await store.jobs.get(input.id))?.redrives).toBe(1);

      const sync = await store.dlq.add(newDlqEntry(now + 20, { keyScope: input.keyScope, fingerprint: input.fingerprint }));
      const redriven = await store.dlq.redrive(sync.id, { now: now + 30, newJobId: 'unused', newJobKey: 'unused' });
      expect(redriven).toMatchObject({ id: input.id, state: 'queued', redrives: 2 });
    }));

  it('a filter with a bad value is rejected naming it', () =>
    withStore(async (store) => {
      await expect(store.dlq.list({ limit: 1, filter: { redrivesBelow: 1.5 } })).rejects.toThrow('got `1.5`');
      await expect(store.dlq.list({ limit: 1, filter: { reason: 'gone' as never } })).rejects.toThrow('got `gone`');
    }));

  it('two relay processes leasing from one file never take the same job', { timeout: 15_000 }, async () => {
    const path = freshPath();
    const store = openSqliteStore({ path });
    const enqueued = new Set<string>();
    try {
      for (let i = 0; i < 200; i++) {
        const job = newJob(now);
        enqueued.add(job.id);
        await store.jobs.enqueue(job);
      }
    } finally {
      await store.close();
    }

    const childScript = fileURLToPath(new URL('../fixtures/sqlite-crash-child.ts', import.meta.url));
    const workers = [0, 1].map(() => {
      const child = spawn(process.execPath, ['--import', 'tsx', childScript, path, 'lease-worker'], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
      child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
      const ready = new Promise<void>((resolve, reject) => {
        child.stdout.on('data', () => out.startsWith('ready\n') && resolve());
        child.once('exit', () => reject(new Error(`worker exited before it was ready: ${err}`)));
      });
      const done = new Promise<string[]>((resolve, reject) =>
        child.once('exit', (code) =>
          code === 0 ? resolve(out.split('\n').slice(1).filter(Boolean)) : reject(new Error(`worker failed (${code}): ${err}`)),
        ),
      );
      return { child, ready, done };
    });
    try {
      await Promise.all(workers.map((w) => w.ready));
      for (const { child } of workers) child.stdin.end('go\n');
      const [a, b] = await Promise.all(workers.map((w) => w.done));
      const all = [...(a ?? []), ...(b ?? [])];
      expect(all).toHaveLength(200);
      expect(new Set(all)).toEqual(enqueued);
      // Otherwise one worker did it all and nothing competed.
      expect(a?.length).toBeGreaterThan(0);
      expect(b?.length).toBeGreaterThan(0);
    } finally {
      for (const { child } of workers) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});

/** Resolves with the child's first stdout line; rejects with its stderr if it exits first. */
function firstLine(stdout: NodeJS.ReadableStream, stderr: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
    stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      const newline = out.indexOf('\n');
      if (newline !== -1) resolve(out.slice(0, newline).trim());
    });
    stdout.once('end', () => reject(new Error(`child exited without an id: ${err}`)));
  });
}
