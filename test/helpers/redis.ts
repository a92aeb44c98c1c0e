import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Redis } from 'ioredis';

/** Where the Redis tests connect: `REDIS_URL`, else the local default. */
export const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** `REQUIRE_REDIS=1` (CI): a missing Redis fails the run instead of skipping its tests. */
export const requireRedis = process.env.REQUIRE_REDIS === '1';

/** A client for test set-up and inspection that gives up at once instead of reconnecting. */
export function probeClient(url = redisUrl, timeoutMs = 2_000): Redis {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on('error', () => {}); // The awaited calls report failures.
  return client;
}

/** Whether Redis at `url` answers PING within `timeoutMs`. */
export async function redisAnswers(url = redisUrl, timeoutMs = 500): Promise<boolean> {
  const client = probeClient(url, timeoutMs);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/**
 * Whether the Redis tests can run. Without Redis they are skipped with a warning,
 * unless `REQUIRE_REDIS=1`, where this throws so that the run fails visibly.
 */
export async function redisForTests(): Promise<boolean> {
  if (await redisAnswers()) return true;
  const message = `Redis at REDIS_URL=${withoutPassword(redisUrl)} did not answer PING within 500 ms`;
  if (requireRedis) throw new Error(`${message}, and REQUIRE_REDIS=1 requires it`);
  console.warn(`${message}: skipping the Redis tests (set REQUIRE_REDIS=1 to fail instead)`);
  return false;
}

function withoutPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(not a URL)';
  }
}

/** Deletes every key starting with `prefix` (SCAN + UNLINK, so a big keyspace is not blocked). */
export async function deleteKeysWithPrefix(prefix: string, url = redisUrl): Promise<number> {
  const client = probeClient(url);
  let deleted = 0;
  try {
    await client.connect();
    // Glob characters in the prefix must match themselves.
    const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1_000);
      if (keys.length > 0) deleted += await client.unlink(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
  return deleted;
}

/** A loopback port nothing listens on (at the moment of asking). */
export async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A Redis that a test can stall, take away and bring back: a TCP proxy on 127.0.0.1. */
export interface RedisProxy {
  /** Connect here (`redis://127.0.0.1:${port}`) instead of to Redis. */
  readonly port: number;
  readonly url: string;
  /** Stop passing bytes on (a network stall): they wait in the socket buffers, nothing is lost. */
  stall(): void;
  resume(): void;
  /** Drop every connection and stop listening: Redis is gone. Idempotent. */
  close(): Promise<void>;
  /** Listen again on the same port: Redis is back. */
  reopen(): Promise<void>;
}

/** Starts a {@link RedisProxy} in front of the Redis at `url` (which must be on this machine). */
export async function startRedisProxy(url = redisUrl): Promise<RedisProxy> {
  const target = new URL(url);
  const targetPort = Number(target.port || 6379);
  const targetHost = target.hostname || '127.0.0.1';
  const pairs = new Set<readonly [Socket, Socket]>();
  let stalled = false;

  const createProxyServer = (): Server =>
    createServer((client) => {
      const upstream = connect(targetPort, targetHost);
      const pair = [client, upstream] as const;
      pairs.add(pair);
      client.pipe(upstream);
      upstream.pipe(client);
      if (stalled) pair.forEach((s) => s.pause());
      const end = () => {
        pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
    });

  let server = createProxyServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    port,
    url: `redis://127.0.0.1:${port}${target.pathname}`,
    stall() {
      stalled = true;
      for (const pair of pairs) pair.forEach((s) => s.pause());
    },
    resume() {
      stalled = false;
      for (const pair of pairs) pair.forEach((s) => s.resume());
    },
    async close() {
      for (const [client, upstream] of pairs) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    async reopen() {
      server = createProxyServer();
      await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
    },
  };
}
