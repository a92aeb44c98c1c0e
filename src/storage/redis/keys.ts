import type { JobState, Priority } from '../types.js';

/** The priorities in lease order (the Lua scripts walk them in this order too). */
export const PRIORITIES: readonly Priority[] = ['high', 'normal', 'low'];
export const JOB_STATES: readonly JobState[] = ['queued', 'in_flight', 'delivered', 'dead'];

/** The consumer group every relay instance reads the job streams with. */
export const JOB_GROUP = 'relay-workers';

/**
 * Where everything lives, all under one prefix so that several relays (or test
 * runs) can share a Redis without seeing each other's data. The Lua scripts build
 * the per-id keys from the same prefix (`lua/includes/keys.lua`); change both together.
 *
 * For Redis Cluster the prefix must carry a hash tag (`{relay}:`), because the
 * scripts touch keys they only learn while running (a job named in a stream entry).
 */
export function redisKeys(prefix: string) {
  return {
    prefix,
    /** String written by `ping()` (readiness), expiring on its own. */
    probe: `${prefix}probe`,
    /** Hash: a synchronous request's hold on a key scope (shared with jobByKey: one key space). */
    idempotency: (key: string) => `${prefix}idem:${key}`,
    dlqSeq: `${prefix}dlq:seq`,
    /** Sorted set: entry id scored by its `seq` (insertion order, never reused). */
    dlqOrder: `${prefix}dlq:order`,
    /** Sorted set: entry id scored by last update (epoch ms), for purges. */
    dlqUpdated: `${prefix}dlq:updated`,
    dlqEntry: (id: string) => `${prefix}dlq:entry:${id}`,
    /** String: the body bytes of every entry, kept by the scripts that add and delete entries. */
    dlqBytes: `${prefix}dlq:bytes`,
    job: (id: string) => `${prefix}job:${id}`,
    /** String: key scope -> the id of the job holding it (jobs from before scopes: their idempotency key). */
    jobByKey: (keyScope: string) => `${prefix}job-key:${keyScope}`,
    jobStream: (priority: Priority) => `${prefix}jobs:stream:${priority}`,
    /** Sorted set: queued jobs not yet moved into a stream, scored by `availableAt`. */
    jobsWaiting: `${prefix}jobs:waiting`,
    /** Sorted set per priority: leased job id scored by its lease deadline (epoch ms on Redis's clock). */
    jobLeases: (priority: Priority) => `${prefix}jobs:leases:${priority}`,
    /** Sorted set per state: job id scored by last update (epoch ms). */
    jobsInState: (state: JobState) => `${prefix}jobs:state:${state}`,
    /** String: the body bytes of the jobs queued or in flight, kept by every state change (setJobState). */
    jobsQueuedBytes: `${prefix}jobs:queued-bytes`,
  };
}

export type RedisKeys = ReturnType<typeof redisKeys>;
