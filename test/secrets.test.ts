import { randomUUID } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { startProviderSimulator } from '../src/sim/providers.js';
import { useProcessTestScope } from './helpers/process-test-scope.js';
import { deleteKeysWithPrefix, redisForTests, redisUrl } from './helpers/redis.js';
import { startRelayProcess } from './helpers/relay-process.js';
import { eventually } from './helpers/test-relay.js';

const SECRET_KEY = Buffer.alloc(32, 42).toString('base64');
const CLIENT_SECRET = 'client-bearer-7f3a9c';
const ROUTE_SECRET = 'sk_live_route_5d2e81';
const URL_PASSWORD = 'url-pw-c0ffee';
const QUERY_SECRET = 'query-token-bead01';
const SECRETS = [CLIENT_SECRET, ROUTE_SECRET, URL_PASSWORD, QUERY_SECRET, SECRET_KEY];

const available = await redisForTests();
const { tempDb, defer } = useProcessTestScope('relay-secrets');
const TEST_TIMEOUT_MS = 40_000;

/** Everything a secret could leak into that an operator or a thief would read. */
async function everythingVisible(url: string, logs: unknown[]): Promise<string> {
  const get = async (path: string) => (await fetch(`${url}${path}`)).text();
  const dlq = JSON.parse(await get('/dlq')) as { items: Array<{ id: string }> };
  const entries = await Promise.all(dlq.items.map((item) => get(`/dlq/${item.id}`)));
  return [await get('/stats'), await get('/metrics'), await get('/routes'), await get('/dlq'), ...entries, JSON.stringify(logs)].join('\n');
}

/** The relay's env with a routes file (written beside `dbPath`, removed after the test): a route with credentials, and a failing one. */
function routesEnv(dbPath: string, echoUrl: string, failingUrl: string): Record<string, string> {
  const { port } = new URL(echoUrl);
  const routesFile = `${dbPath}.routes.json`;
  writeFileSync(
    routesFile,
    JSON.stringify({
      routes: [
        { name: 'echo', target: `http://user:${URL_PASSWORD}@127.0.0.1:${port}/`, headers: { set: { 'X-Api-Key': '${ROUTE_SECRET}' } }, clients: ['app-token-for-secrets'] },
        { name: 'down', target: failingUrl, retry: { maxAttempts: 1 }, headers: { secret: ['X-Partner-Signature'] } },
      ],
    }),
  );
  defer(() => rmSync(routesFile, { force: true }));
  return {
    ROUTES_FILE: routesFile,
    ROUTE_SECRET,
    RELAY_SECRET_KEY: SECRET_KEY,
    JOB_LEASE_MS: '2000',
    DOWNSTREAM_TIMEOUT_MS: '1000',
    JOB_POLL_MS: '50',
    LOG_LEVEL: 'debug',
  };
}

describe('secrets at rest and in transit', () => {
  it(
    "an async request with the client's Authorization is delivered with it after kill -9 and a restart, and no secret is stored or shown in clear",
    async () => {
      // A fixed answer: an echo of the request would carry its credentials back in the provider's own answer.
      const echo = await startProviderSimulator({ kind: 'echo', answer: { status: 200, json: { sent: true } } });
      defer(() => echo.close());
      const down = await startProviderSimulator({ kind: 'echo', failRate: 1, failure: { status: 503 } });
      defer(() => down.close());
      const SQLITE_PATH = tempDb();
      const relayEnv = { ...routesEnv(SQLITE_PATH, echo.url, `${down.url}/`), SQLITE_PATH };

      // The downstream hangs: the job is in flight when the relay is killed.
      echo.hangNext(1);
      const first = await startRelayProcess(relayEnv);
      const accepted = await fetch(`${first.url}/relay/echo/v1/send?token=${QUERY_SECRET}&n=1`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', prefer: 'respond-async', authorization: `Bearer ${CLIENT_SECRET}`, 'x-relay-token': 'app-token-for-secrets' },
        body: '{"to":"a@example.com"}',
      });
      expect(accepted.status).toBe(202);
      const { jobId } = (await accepted.json()) as { jobId: string };
      // A synchronous failure with a secret header of the route lands in the DLQ.
      const failed = await fetch(`${first.url}/relay/down/x`, { method: 'POST', headers: { 'x-partner-signature': 'sig-never-shown', authorization: `Bearer ${CLIENT_SECRET}` }, body: 'a=1' });
      expect(failed.status).toBe(502);
      await eventually(() => echo.requests.length === 1, 5_000);
      await first.kill('SIGKILL');

      const second = await startRelayProcess(relayEnv);
      await eventually(async () => ((await (await fetch(`${second.url}/jobs/${jobId}`)).json()) as { state: string }).state === 'delivered', 10_000);
      const delivered = echo.requests.at(-1)!;
      expect(delivered.headers.authorization).toBe(`Bearer ${CLIENT_SECRET}`);
      expect(delivered.headers['x-api-key']).toBe(ROUTE_SECRET);
      expect(delivered.path).toBe(`/v1/send?token=${QUERY_SECRET}&n=1`);
      // The job's interrupted attempt and its delivery share one key, so the provider can dedupe.
      expect(echo.requests[0]!.headers['idempotency-key']).toBe(delivered.headers['idempotency-key']);

      const visible = await everythingVisible(second.url, [...first.logs, ...second.logs]);
      const job = await (await fetch(`${second.url}/jobs/${jobId}`)).text();
      // The attempt the dead relay had in flight is in the history, as interrupted.
      expect((JSON.parse(job) as { attempts: Array<{ outcome: string; sent?: string }> }).attempts).toEqual([
        expect.objectContaining({ outcome: 'interrupted', sent: 'unknown' }),
        expect.objectContaining({ outcome: 'success', sent: 'yes' }),
      ]);
      for (const secret of [...SECRETS, 'sig-never-shown']) {
        expect(visible + job, secret).not.toContain(secret);
      }
      expect(first.stderr() + second.stderr()).not.toContain(URL_PASSWORD);
      await second.kill('SIGTERM');
      // The database file (and its WAL) holds only sealed values.
      const files = [SQLITE_PATH, `${SQLITE_PATH}-wal`].map((path) => {
        try {
          return readFileSync(path).toString('latin1');
        } catch {
          return '';
        }
      });
      for (const secret of [CLIENT_SECRET, QUERY_SECRET, 'sig-never-shown', ROUTE_SECRET]) expect(files.join(''), secret).not.toContain(secret);
    },
    TEST_TIMEOUT_MS,
  );

  it.skipIf(!available)(
    'on Redis, the rows of a job and a DLQ entry hold secrets only sealed',
    async () => {
      const echo = await startProviderSimulator({ kind: 'echo', failRate: 1, failure: { status: 503 } });
      defer(() => echo.close());
      const prefix = `relay-secrets:${randomUUID()}:`;
      defer(() => deleteKeysWithPrefix(prefix));
      const env = routesEnv(tempDb(), `${echo.url}/`, `${echo.url}/`);
      const relay = await startRelayProcess({ ...env, STORE: 'redis', REDIS_URL: redisUrl, REDIS_PREFIX: prefix, JOB_MAX_ATTEMPTS: '1' });
      const headers = { authorization: `Bearer ${CLIENT_SECRET}`, 'x-partner-signature': 'sig-never-shown' };
      expect((await fetch(`${relay.url}/relay/down/x?api_key=${QUERY_SECRET}`, { method: 'POST', headers, body: 'a=1' })).status).toBe(502);
      const accepted = await fetch(`${relay.url}/relay/down/y?api_key=${QUERY_SECRET}`, { method: 'POST', headers: { ...headers, prefer: 'respond-async' }, body: 'b=2' });
      expect(accepted.status).toBe(202);
      const { jobId } = (await accepted.json()) as { jobId: string };
      await eventually(async () => ((await (await fetch(`${relay.url}/jobs/${jobId}`)).json()) as { state: string }).state === 'dead', 10_000);

      const redis = new Redis(redisUrl);
      try {
        let dump = '';
        for (const key of await redis.keys(`${prefix}*`)) {
          const type = await redis.type(key);
          if (type === 'hash') dump += JSON.stringify(await redis.hgetall(key));
          else if (type === 'string') dump += (await redis.get(key)) ?? '';
        }
        expect(dump).toContain('enc:v1:');
        for (const secret of [CLIENT_SECRET, QUERY_SECRET, 'sig-never-shown']) expect(dump, secret).not.toContain(secret);
      } finally {
        redis.disconnect();
      }
      const visible = await everythingVisible(relay.url, relay.logs);
      for (const secret of [...SECRETS, 'sig-never-shown']) expect(visible, secret).not.toContain(secret);
    },
    TEST_TIMEOUT_MS,
  );
});
