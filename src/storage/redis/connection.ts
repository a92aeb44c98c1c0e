import { Redis, type RedisOptions } from 'ioredis';
import type { Random } from '../../clock.js';
import { fullJitterDelayMs } from '../../resilience/backoff.js';

/** Reconnect backoff: full jitter from 100 ms, capped at 2 s, never below 50 ms. */
const RECONNECT = { baseDelayMs: 100, maxDelayMs: 2_000, minDelayMs: 50 };

/**
 * How long to wait before reconnect attempt `attempt` (1 for the first): capped
 * exponential backoff with full jitter, so that relays that lost Redis together
 * do not all reconnect in the same instant. There is no last attempt: the client
 * keeps trying until Redis is back or the store is closed.
 */
export function reconnectDelayMs(attempt: number, random: Random = Math.random): number {
  return Math.max(RECONNECT.minDelayMs, fullJitterDelayMs(attempt - 1, RECONNECT, random));
}

export interface ConnectionOptions {
  url: string;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  onError: (error: unknown) => void;
}

/**
 * An ioredis client that never lets a caller hang on a Redis that is down:
 * - `enableOfflineQueue: false`: while disconnected a command fails at once
 *   instead of waiting in memory for a reconnect that may not come;
 * - `commandTimeout`: a command sent to a Redis that stopped answering fails
 *   after `commandTimeoutMs`;
 * - `maxRetriesPerRequest: 0` and no automatic resend: a command that was in flight
 *   when the connection dropped fails rather than running twice (Redis may
 *   already have run it; every write here is a script that is not safe to repeat);
 * - reconnects on its own with {@link reconnectDelayMs};
 * - every 'error' event goes to `onError` (ioredis would print an unhandled one).
 *
 * Not connected yet (`lazyConnect`), so that the caller decides how to wait.
 */
export function createRedisClient({ url, connectTimeoutMs, commandTimeoutMs, onError }: ConnectionOptions): Redis {
  const options: RedisOptions = {
    lazyConnect: true,
    connectTimeout: connectTimeoutMs,
    // How long a disconnect waits for the peer to close before cutting the socket;
    // ioredis's fixed 2 s would hold up every reconnect from a Redis that went silent.
    disconnectTimeout: connectTimeoutMs,
    commandTimeout: commandTimeoutMs,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    retryStrategy: (attempt) => reconnectDelayMs(attempt),
  };
  const redis = new Redis(url, options);
  redis.on('error', (error: unknown) => {
    try {
      onError(error);
    } catch {
      // A failing error handler must not turn a Redis outage into a crash.
    }
  });
  return redis;
}
