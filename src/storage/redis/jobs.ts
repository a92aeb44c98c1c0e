import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { assertEpochMs, assertId, assertLeaseMs, assertLimit, assertQueueLimits } from '../arguments.js';
import { interruptedAttempt } from '../interrupted-attempt.js';
import { encodeRequestTarget } from '../request-target.js';
import { DuplicateIdError, type AttemptRecord, type JobState, type JobStore } from '../types.js';
import { asText, dlqFields, fieldPairs, leaseToken, toDlqEntry, toHash, toIso, toJob, toResponse } from './codec.js';
import { JOB_GROUP, JOB_STATES, type RedisKeys } from './keys.js';
import { isReplyCode, purgeInBatches, snapshot, type RunScript } from './scripts.js';

/**
 * The durable job queue on Redis Streams: one stream per priority read by one
 * consumer group, a hash per job, a sorted set of queued jobs by `availableAt`
 * (moved into the streams when due) and a sorted set per state. See
 * `lua/job-lease.lua` for how leases and takeovers work.
 *
 * @param consumer this store's consumer name in the group; unique per open store,
 *   so that a takeover (XCLAIM) moves entries from a dead instance to a live one.
 */
export function createRedisJobStore(redis: Redis, run: RunScript, keys: RedisKeys, consumer: string): JobStore {
  const { prefix } = keys;
  /** ARGV[1..7], the same in every script that settles a lease: job-complete, job-reschedule, job-bury. */
  const settleArgs = (id: string, token: string, now: number, attempts: AttemptRecord[]) =>
    [prefix, JOB_GROUP, id, token, now, toIso(now), JSON.stringify(attempts)] as const;
  return {
    async enqueue(job, limits) {
      if (limits !== undefined) assertQueueLimits(limits);
      if (job.holdMs !== undefined) assertLeaseMs(job.holdMs);
      // ?? idempotencyKey: a caller written before key scopes, whose key was the whole key.
      const keyScope = job.keyScope ?? job.idempotencyKey;
      // Made here: a script has no good randomness.
      const token = job.holdMs === undefined ? undefined : randomUUID();
      const at = toIso(job.now);
      const fields = fieldPairs({
        id: job.id,
        state: 'queued',
        priority: job.priority,
        request: encodeRequestTarget(job.request),
        scope: keyScope,
        key: job.idempotencyKey,
        fp: job.fingerprint,
        body: job.body,
        headers: JSON.stringify(job.headers),
        attempts: '[]',
        createdAt: at,
        updatedAt: at,
        updatedMs: job.now,
        availableAt: job.now,
        redrives: 0,
      });
      const reply = await run('job-enqueue', [], [
        prefix,
        job.id,
        keyScope,
        job.fingerprint,
        job.now,
        limits?.maxQueued ?? '',
        limits?.maxQueuedBytes ?? '',
        job.body.length,
        job.holdMs === undefined ? '' : Math.ceil(job.holdMs),
        token ?? '',
        ...fields,
      ]);
      if (!Array.isArray(reply) || reply.length === 0) throw new TypeError('Unexpected reply from job-enqueue');
      const kind = asText(reply[0]);
      if (kind === 'mismatch' || kind === 'in_flight' || kind === 'outcome_unknown') return { kind };
      if (kind === 'answered') return { kind, response: toResponse(reply, 1) };
      if (kind === 'full') {
        const reason = asText(reply[1]);
        if (reason === 'count' || reason === 'bytes') return { kind, reason };
      }
      if (kind === 'created' && token !== undefined) return { kind, job: toJob(toHash(reply[1])), token };
      if (kind === 'created' || kind === 'existing') return { kind, job: toJob(toHash(reply[1])) };
      throw new TypeError(`Unexpected reply from job-enqueue: ${kind}`);
    },
    async get(id) {
      const hash = toHash(await redis.hgetallBuffer(keys.job(id)));
      return hash.size === 0 ? null : toJob(hash);
    },
    async lease({ now, leaseMs, limit }) {
      assertLimit(limit);
      assertLeaseMs(leaseMs);
      // Made here: a script has no good randomness.
      const tokens = Array.from({ length: limit }, () => randomUUID());
      const reply = await run('job-lease', [], [
        prefix,
        JOB_GROUP,
        consumer,
        now,
        toIso(now),
        Math.ceil(leaseMs),
        limit,
        JSON.stringify([interruptedAttempt(now)]),
        ...tokens,
      ]);
      if (!Array.isArray(reply)) throw new TypeError('Unexpected reply from job-lease');
      return reply.map((item) => {
        const hash = toHash(item);
        return { job: toJob(hash), token: leaseToken(hash) };
      });
    },
    async complete(id, token, { attempts, response, now }) {
      const reply = await run('job-complete', [], [
        ...settleArgs(id, token, now, attempts),
        response.status,
        JSON.stringify(response.headers),
        response.body,
      ]);
      return reply === 1;
    },
    async reschedule(id, token, { attempts, lastError, availableAt, now }) {
      const reply = await run('job-reschedule', [], [
        ...settleArgs(id, token, now, attempts),
        lastError,
        availableAt,
      ]);
      return reply === 1;
    },
    async bury(id, token, { attempts, response, dlq }) {
      if (dlq.id !== undefined) assertId('dlq.id', dlq.id);
      const dlqId = dlq.id ?? randomUUID();
      const reply = await run('job-bury', [], [
        ...settleArgs(id, token, dlq.now, attempts),
        dlq.lastError,
        response === null ? '0' : '1',
        response?.status ?? '',
        response === null ? '' : JSON.stringify(response.headers),
        response?.body ?? '',
        dlqId,
        // The script fills in jobId, redrives, request and scope from the job itself.
        ...dlqFields(dlqId, dlq, { fromJob: true }),
      ]).catch((error: unknown) => {
        throw isReplyCode(error, 'DUPLICATE_ID') ? new DuplicateIdError(dlqId) : error;
      });
      return reply === null ? null : toDlqEntry(toHash(reply));
    },
    async markDelivered(id, { attempts, response, now }) {
      const reply = await run('job-mark-delivered', [], [
        prefix,
        id,
        now,
        toIso(now),
        JSON.stringify(attempts),
        response.status,
        JSON.stringify(response.headers),
        response.body,
      ]);
      return reply === 1;
    },
    async usage() {
      const [queued, inFlight, bytes] = await snapshot(redis, (t) =>
        t.zcard(keys.jobsInState('queued')).zcard(keys.jobsInState('in_flight')).get(keys.jobsQueuedBytes),
      );
      // max: jobs queued before the counter existed leave it below the truth as they finish.
      return { queued: Number(queued) + Number(inFlight), queuedBytes: Math.max(0, Number(bytes ?? 0)) };
    },
    async counts() {
      // MULTI: one consistent snapshot of all four sets.
      const transaction = redis.multi();
      for (const state of JOB_STATES) transaction.zcard(keys.jobsInState(state));
      const results = (await transaction.exec()) ?? [];
      const counts = {} as Record<JobState, number>;
      JOB_STATES.forEach((state, i) => {
        const [error, n] = results[i] ?? [new Error('MULTI returned no result'), 0];
        if (error) throw error;
        counts[state] = Number(n);
      });
      return counts;
    },
    async purgeFinishedBefore(before) {
      assertEpochMs('before', before);
      return purgeInBatches(run, 'job-purge', prefix, before);
    },
  };
}
