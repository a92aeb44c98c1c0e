import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { RelayStore } from '../types.js';
import { createRedisClient } from './connection.js';
import { createRedisDlqStore } from './dlq.js';
import { createRedisIdempotencyStore } from './idempotency.js';
import { createRedisJobStore } from './jobs.js';
import { redisKeys } from './keys.js';
import { defineScripts } from './scripts.js';

/** How long the readiness probe's key lives: it only has to be written, never read. */
const PROBE_TTL_MS = 10_000;

export interface RedisStoreOptions {
  /** `redis://[user:password@]host[:port][/db]`, or `rediss://` for TLS. */
  url: string;
  /**
   * Every key starts with this, so that relays (or test runs) with different
   * prefixes share one Redis without seeing each other's data. For Redis Cluster,
   * include a hash tag (`{relay}:`) so that all keys live in one slot.
   * @default 'relay:'
   */
  prefix?: string;
  /**
   * How long one connection attempt may take.
   * @default 2000
   */
  connectTimeoutMs?: number;
  /**
   * How long a command may wait for Redis's answer before it fails (a Redis that
   * accepts connections but stopped answering).
   * @default 2000
   */
  commandTimeoutMs?: number;
  /**
   * Connection errors (also those of reconnect attempts, one per attempt while
   * Redis is away). Commands report their own failures by rejecting.
   * @default ignore them
   */
  onError?: (error: unknown) => void;
}

/**
 * Open the store shared by any number of relay instances on one Redis.
 *
 * Resolves once the first connection attempt has finished, whether or not it
 * succeeded: while Redis is unreachable, `ping()` and every store call reject at
 * once (readiness reports it) and the client keeps reconnecting by itself, so
 * a relay started before its Redis recovers without a restart.
 *
 * @throws RangeError for an unusable option (a URL that is not redis://, a bad timeout).
 */
export async function openRedisStore(options: RedisStoreOptions): Promise<RelayStore> {
  const { url, prefix = 'relay:', connectTimeoutMs = 2_000, commandTimeoutMs = 2_000, onError = () => {} } = options;
  validateUrl(url);
  if (typeof prefix !== 'string' || prefix.length === 0) {
    throw new RangeError(`Expected \`prefix\` to be a non-empty string, got \`${String(prefix)}\``);
  }
  positive('connectTimeoutMs', connectTimeoutMs);
  positive('commandTimeoutMs', commandTimeoutMs);

  const redis = createRedisClient({ url, connectTimeoutMs, commandTimeoutMs, onError });
  const run = defineScripts(redis);
  const keys = redisKeys(prefix);
  // One consumer per open store, so that XPENDING shows which instance holds what, and a
  // takeover (XCLAIM) visibly moves a dead instance's entries to a live one.
  const consumer = `${hostname()}:${process.pid}:${randomUUID()}`;

  try {
    await redis.connect();
  } catch {
    // Not fatal: the client reconnects by itself and calls fail fast meanwhile. The
    // cause already went to onError as an 'error' event; this is only "Connection is closed".
  }

  let closing: Promise<void> | undefined;
  return {
    idempotency: createRedisIdempotencyStore(redis, run, keys),
    dlq: createRedisDlqStore(redis, run, keys),
    jobs: createRedisJobStore(redis, run, keys, consumer),
    async ping() {
      // A write, not PING: a replica, a full maxmemory or a read-only ACL answers PING and refuses every request.
      await redis.set(keys.probe, Date.now(), 'PX', PROBE_TTL_MS);
    },
    close() {
      closing ??= (async () => {
        try {
          // QUIT lets Redis finish what it already received; it fails fast when disconnected.
          await redis.quit();
        } catch {
          redis.disconnect();
        }
      })();
      return closing;
    },
  };
}

function validateUrl(url: string): void {
  let protocol: string;
  try {
    protocol = new URL(url).protocol;
  } catch {
    // Not echoed: a URL may carry a password.
    throw new RangeError('Expected `url` to be a redis:// or rediss:// URL, got a string that is not a URL');
  }
  if (protocol !== 'redis:' && protocol !== 'rediss:') {
    throw new RangeError(`Expected \`url\` to be a redis:// or rediss:// URL, got protocol \`${protocol}\``);
  }
}

function positive(name: string, value: number): void {
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(`Expected \`${name}\` to be a number of milliseconds above 0, got \`${value}\``);
  }
}
