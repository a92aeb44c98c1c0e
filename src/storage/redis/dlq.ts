import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { DuplicateIdError, type DlqStore } from '../types.js';
import { assertDlqFilter, assertEpochMs, assertId, assertLeaseMs, assertLimit } from '../arguments.js';
import { decodeCursor, encodeCursor } from '../cursor.js';
import { asText, dlqFields, toDlqEntry, toDlqSummary, toHash, toIso, toJob } from './codec.js';
import type { RedisKeys } from './keys.js';
import { isReplyCode, purgeInBatches, snapshot, type RunScript } from './scripts.js';

/**
 * Most entries one listing call examines. A filter that matches little in a long
 * queue then returns a short page with a cursor rather than holding Redis (which
 * runs one script at a time for every relay) for a full scan.
 */
const LIST_SCAN_BUDGET = 1_000;

/**
 * The dead-letter queue: a hash per entry, listed oldest first through a sorted
 * set scored by a sequence (INCR) that is never handed out twice, and indexed by
 * last update for retention.
 */
export function createRedisDlqStore(redis: Redis, run: RunScript, keys: RedisKeys): DlqStore {
  const { prefix } = keys;
  return {
    async add(entry) {
      if (entry.id !== undefined) assertId('id', entry.id);
      const id = entry.id ?? randomUUID();
      try {
        const reply = await run('dlq-add', [], [prefix, id, entry.now, ...dlqFields(id, entry, { fromJob: false })]);
        return toDlqEntry(toHash(reply));
      } catch (error) {
        throw isReplyCode(error, 'DUPLICATE_ID') ? new DuplicateIdError(id) : error;
      }
    },
    async get(id) {
      const hash = toHash(await redis.hgetallBuffer(keys.dlqEntry(id)));
      return hash.size === 0 ? null : toDlqEntry(hash);
    },
    async list({ limit, cursor, filter = {} }) {
      assertLimit(limit);
      assertDlqFilter(filter);
      const after = cursor === undefined ? 0 : decodeCursor(cursor);
      const reply = await run(
        'dlq-list',
        [keys.dlqOrder],
        [
          prefix,
          after,
          limit,
          filter.reason ?? '',
          filter.updatedBefore ?? '',
          filter.redrivesBelow ?? '',
          Math.max(LIST_SCAN_BUDGET, limit + 1),
        ],
      );
      if (!Array.isArray(reply) || reply.length === 0) throw new TypeError('Unexpected reply from dlq-list');
      const [next, ...items] = reply as unknown[];
      const nextSeq = asText(next);
      return {
        items: items.map((item) => toDlqSummary(toHash(item))),
        nextCursor: nextSeq === '' ? null : encodeCursor(Number(nextSeq)),
      };
    },
    async recordFailedReplay(id, attempts, lastError, status, now) {
      const reply = await run('dlq-record-failed-replay', [], [
        prefix,
        id,
        JSON.stringify(attempts),
        lastError,
        status,
        toIso(now),
        now,
      ]);
      return reply === null ? null : toDlqEntry(toHash(reply));
    },
    async claimReplay(id, { now, leaseMs }) {
      assertEpochMs('now', now);
      assertLeaseMs(leaseMs);
      const token = randomUUID();
      const kind = asText(await run('dlq-claim-replay', [], [prefix, id, Math.ceil(now), Math.ceil(leaseMs), token]));
      switch (kind) {
        case 'claimed':
          return { kind, token };
        case 'busy':
        case 'absent':
          return { kind };
        default:
          throw new TypeError(`Unexpected reply from dlq-claim-replay: ${kind}`);
      }
    },
    async releaseReplay(id, token) {
      await run('dlq-release-replay', [], [prefix, id, token]);
    },
    async recordEdit(id, token, edit) {
      const reply = await run('dlq-record-edit', [], [prefix, id, token, JSON.stringify([edit])]);
      return reply === null ? null : toDlqEntry(toHash(reply));
    },
    async remove(id) {
      return (await run('dlq-remove', [], [prefix, id])) === 1;
    },
    async size() {
      return redis.zcard(keys.dlqOrder);
    },
    async usage() {
      const [count, bytes] = await snapshot(redis, (t) => t.zcard(keys.dlqOrder).get(keys.dlqBytes));
      // max: entries added before the counter existed leave it below the truth as they go.
      return { count: Number(count), bytes: Math.max(0, Number(bytes ?? 0)) };
    },
    async redrive(id, { now, newJobId, newJobKey }) {
      const reply = await run('dlq-redrive', [], [prefix, id, now, toIso(now), newJobId, newJobKey]);
      return reply === null ? null : toJob(toHash(reply));
    },
    async purgeOlderThan(before) {
      assertEpochMs('before', before);
      return purgeInBatches(run, 'dlq-purge', prefix, before);
    },
  };
}
