import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import { SCHEMA_VERSION } from '../../src/storage/sqlite/migrations.js';
import { InvalidCursorError } from '../../src/storage/types.js';
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
      expect((await store.idempotency.reserve('c', 'fp', { now: now + 2_000, leaseMs: 500, ttlMs: 1 })).kind).toBe('reserved');
    } finally {
      await store.close();
    }
  });

  it('a cursor with junk appended is rejected, not silently decoded', async () => {
    const store = openSqliteStore({ path: ':memory:' });
    try {
      for (let i = 0; i < 3; i++) {
        await store.dlq.add({
          idempotencyKey: null,
          fingerprint: null,
          body: Buffer.from('{}'),
          headers: {},
          attempts: [],
          lastError: 'x',
          status: 502,
          now: i,
        });
      }
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

  it('a DLQ entry written before kill -9 is there after restart', { timeout: 5_000 }, async () => {
    const path = freshPath();
    const childScript = fileURLToPath(new URL('../fixtures/sqlite-crash-child.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', childScript, path], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    try {
      const id = await firstLine(child.stdout, child.stderr);
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
      // The entry is still only in the WAL: recovery, not a checkpoint on close, must bring it back.
      expect(statSync(`${path}-wal`).size).toBeGreaterThan(0);

      const store = openSqliteStore({ path });
      try {
        const entry = await store.dlq.get(id);
        expect(entry?.body.toString('utf8')).toBe('{"survives":"kill -9"}');
        expect(entry?.status).toBe(504);
      } finally {
        await store.close();
      }
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
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
