import { afterEach, describe, expect, it } from 'vitest';
import { openSqliteStore } from '../src/storage/sqlite/sqlite-store.js';
import { relayPost, useRelays } from './helpers/integrity.js';
import { expectProblem } from './helpers/problem.js';
import { killStartedRelayProcesses, spawnRelayProcess } from './helpers/relay-process.js';
import { removeDb, tempDbPath } from './helpers/temp-db.js';
import { uniqueKey } from './helpers/test-relay.js';

// Issue 15, items 5 (/ready proves the store can write) and 10 (admin behind a proxy, token rules).

const start = useRelays();
const dbFiles: string[] = [];
afterEach(async () => {
  await killStartedRelayProcesses();
  for (const path of dbFiles.splice(0)) removeDb(path);
});

/** A migrated SQLite file, closed again: what an operator would mount read-only. */
async function migratedDbFile(): Promise<string> {
  const path = tempDbPath('integrity-ro');
  dbFiles.push(path);
  await openSqliteStore({ path }).close();
  return path;
}

describe('readiness proves the SQLite store can write', () => {
  it('/ready is 503 fail on a SQLite store that reads but cannot write, and a keyed request gets a 503 problem, never a 500', async () => {
    const path = await migratedDbFile();
    const store = openSqliteStore({ path, readonly: true } as Parameters<typeof openSqliteStore>[0]);
    const t = await start('sqlite', { overrides: { store } });

    const ready = await t.http.get('/ready');
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ status: 'fail' });

    const keyed = await relayPost(t, { n: 1 }, { key: uniqueKey('ro') });
    expectProblem(keyed, 503);
  });

  it('/ready is 200 on the same file opened for writing', async () => {
    const path = await migratedDbFile();
    const t = await start('sqlite', { overrides: { store: openSqliteStore({ path }) } });
    expect((await t.http.get('/ready')).status).toBe(200);
  });
});

describe('admin routes behind a reverse proxy (no ADMIN_TOKEN)', () => {
  it('GET /dlq from loopback carrying X-Forwarded-For: 1.2.3.4 is refused 403', async () => {
    const t = await start('sqlite');
    expect((await t.http.get('/dlq')).status).toBe(200);
    expectProblem(await t.http.get('/dlq').set('X-Forwarded-For', '1.2.3.4'), 403);
  });

  it('GET /dlq from loopback carrying Forwarded: for=1.2.3.4 is refused 403', async () => {
    const t = await start('sqlite');
    expectProblem(await t.http.get('/dlq').set('Forwarded', 'for=1.2.3.4;proto=https'), 403);
  });

  it('POST /dlq/redrive and GET /jobs through a proxy are refused 403 too', async () => {
    const t = await start('sqlite');
    expectProblem(await t.http.post('/dlq/redrive').set('X-Forwarded-For', '1.2.3.4').set('content-type', 'application/json').send('{}'), 403);
    expectProblem(await t.http.get('/jobs').set('X-Forwarded-For', '10.0.0.7'), 403);
  });
});

describe('ADMIN_TOKEN is checked at start-up', () => {
  /** Starts a real relay process and waits for it to exit (or, wrongly, to listen). */
  async function startRefused(token: string): Promise<{ code: number | null; output: string[] }> {
    const relay = spawnRelayProcess({ ADMIN_TOKEN: token, SQLITE_PATH: ':memory:' });
    const outcome = await Promise.race([
      relay.exited.then((exit) => ({ exit })),
      relay.waitForLog((line) => typeof line.port === 'number', 15_000).then(
        (line) => ({ listening: line.port }),
        () => relay.exited.then((exit) => ({ exit })),
      ),
    ]);
    if ('listening' in outcome) {
      await relay.kill('SIGKILL');
      expect.fail(`the relay started (listening on port ${String(outcome.listening)}) with ADMIN_TOKEN=${JSON.stringify(token)}`);
    }
    const output = `${relay.stderr()}${relay.otherStdout()}`.split('\n').filter((line) => line.trim() !== '');
    return { code: outcome.exit.code, output: [...output, ...relay.logs.map((line) => JSON.stringify(line))] };
  }

  it.each([
    ['only 8 characters', 's3cr3t!x'],
    ['a space', 'correct horse battery staple'],
    ['a tab', 'abcdefgh\tijklmnopq'],
  ])('a token with %s makes the relay exit 1 with one line naming ADMIN_TOKEN, without printing the token', async (_what, token) => {
    const { code, output } = await startRefused(token);
    expect(code).toBe(1);
    expect(output, output.join('\n')).toHaveLength(1);
    expect(output[0]).toContain('ADMIN_TOKEN');
    expect(output[0]).not.toContain(token);
    expect(output[0]).not.toMatch(/\n\s+at /);
  });
});
