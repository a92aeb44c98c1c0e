import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A SQLite file path in the OS temp dir that no other test (or run) uses. */
export function tempDbPath(label = 'relay'): string {
  return join(tmpdir(), `${label}-${process.pid}-${randomUUID()}.db`);
}

/** Removes the database and its WAL side files; missing files are fine. */
export function removeDb(path: string): void {
  for (const file of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) rmSync(file, { force: true });
}
