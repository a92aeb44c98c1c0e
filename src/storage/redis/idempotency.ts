import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { IdempotencyStore, JobState, ReserveResult } from '../types.js';
import { asText, toResponse } from './codec.js';
import type { RedisKeys } from './keys.js';
import type { RunScript } from './scripts.js';

/**
 * Idempotency records, one hash per key. Each operation is one Lua script, so a
 * reservation is atomic across every relay sharing the Redis, and so is its check
 * of the jobs' key scopes (one key space). Records expire
 * natively, which is why {@link IdempotencyStore.purgeExpired} has nothing to do.
 */
export function createRedisIdempotencyStore(redis: Redis, run: RunScript, keys: RedisKeys): IdempotencyStore {
  return {
    async reserve(key, fingerprint, { now, leaseMs, ttlMs }) {
      // Made here: a script has no good randomness (and must not, to replicate the same).
      const token = randomUUID();
      const reply = await run(
        'idempotency-reserve',
        [keys.idempotency(key)],
        [fingerprint, Math.round(now), Math.round(leaseMs), expiryMs(ttlMs), token, keys.prefix, key],
      );
      return toReserveResult(reply, token);
    },
    async complete(key, token, response, { now, ttlMs }) {
      const reply = await run(
        'idempotency-complete',
        [keys.idempotency(key)],
        [token, Math.round(now), expiryMs(ttlMs), response.status, JSON.stringify(response.headers), response.body],
      );
      return reply === 1;
    },
    async release(key, token) {
      await run('idempotency-release', [keys.idempotency(key)], [token]);
    },
    async forget(key) {
      // One command: no script needed to make it atomic. A job's hold on the key is not this record.
      return (await redis.del(keys.idempotency(key))) === 1;
    },
    async purgeExpired() {
      return 0;
    },
  };
}

// PEXPIRE needs a whole number, and 0 would delete the record at once.
const expiryMs = (ttlMs: number): number => Math.max(1, Math.ceil(ttlMs));

function toReserveResult(reply: unknown, token: string): ReserveResult {
  if (!Array.isArray(reply) || reply.length === 0) throw new TypeError('Unexpected reply from idempotency-reserve');
  const kind = asText(reply[0]);
  switch (kind) {
    case 'reserved':
      return { kind, token };
    case 'in_flight':
    case 'outcome_unknown':
    case 'mismatch':
      return { kind };
    case 'completed':
      return { kind, response: toResponse(reply, 1) };
    case 'job':
      return {
        kind,
        jobId: asText(reply[1]),
        state: asText(reply[2]) as JobState,
        response: reply.length > 3 ? toResponse(reply, 3) : null,
      };
    default:
      throw new TypeError(`Unexpected reply from idempotency-reserve: ${kind}`);
  }
}
