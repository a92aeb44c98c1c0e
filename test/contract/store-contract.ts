import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RelayStore } from '../../src/storage/types.js';
import {
  attempt,
  expectSameBytes,
  newDlqEntry,
  newJob,
  sampleResponse,
  uniqueKey as key,
  type ContractContext,
} from './contract-helpers.js';
import { dlqContract } from './dlq-contract.js';
import { idempotencyContract } from './idempotency-contract.js';
import { jobsContract } from './jobs-contract.js';
import { keySpaceContract } from './key-space-contract.js';
import { usageContract } from './usage-contract.js';

type Opener = () => Promise<RelayStore> | RelayStore;

/**
 * The behaviour every {@link RelayStore} backend must show, run once per backend
 * (after undici's `cacheStoreTests`). It uses only the interface, passes `now`
 * explicitly instead of faking timers (job lease expiry alone waits real time, since
 * a backend may judge it by its own clock), and gives every test its own random keys.
 *
 * @param open must return an empty store each call (a fresh file, a random
 *   Redis prefix...), because the DLQ listing and size tests and the job lease and
 *   counts tests see everything in the store.
 * @param options.reopen when given, must open the same data as the store `open`
 *   returned last; enables the persistence test.
 */
export function storeContractTests(name: string, open: Opener, options: { reopen?: Opener } = {}): void {
  describe(name, () => {
    let store: RelayStore;
    let t0: number;

    beforeEach(async () => {
      store = await open();
      // Near real time, so a backend with native TTLs gets sensible expiries.
      t0 = Date.now();
    });

    afterEach(async () => {
      await store.close();
    });

    // Getters, because the parts register their tests now but run them after beforeEach.
    const ctx: ContractContext = {
      get store() {
        return store;
      },
      get t0() {
        return t0;
      },
    };

    idempotencyContract(ctx);
    dlqContract(ctx);
    jobsContract(ctx);
    usageContract(ctx);
    keySpaceContract(ctx);

    describe('lifecycle', () => {
      it('ping resolves while the store is open', async () => {
        await expect(store.ping()).resolves.toBeUndefined();
      });

      it('close is idempotent and ping rejects afterwards', async () => {
        await store.close();
        await store.close();
        await expect(store.ping()).rejects.toThrow();
      });

      const { reopen } = options;
      if (reopen !== undefined) {
        it('entries, records and jobs survive closing and reopening the store', async () => {
          const k = key();
          const lease = { now: t0, leaseMs: 1_000, ttlMs: 60_000 };
          const reserved = await store.idempotency.reserve(k, 'fp', lease);
          if (reserved.kind !== 'reserved') throw new Error(`expected a reservation, got ${reserved.kind}`);
          const token = reserved.token;
          const response = sampleResponse();
          await store.idempotency.complete(k, token, response, { now: t0, ttlMs: 60_000 });
          const added = await store.dlq.add(
            newDlqEntry(t0, {
              idempotencyKey: k,
              fingerprint: 'fp',
              body: Buffer.from('{"café":"☕"}'),
              attempts: [attempt(t0, 503)],
              reason: 'permanent',
              cause: 'non_retryable',
              jobId: 'job-that-was',
              redrives: 2,
            }),
          );
          const enqueued = await store.jobs.enqueue(newJob(t0, { priority: 'low' }));
          if (enqueued.kind !== 'created') throw new Error(`expected a new job, got ${enqueued.kind}`);
          await store.close();

          store = await reopen();
          expect(await store.dlq.get(added.id)).toEqual(added);
          // A job accepted with a 202 is still owed a delivery after a restart.
          expect(await store.jobs.get(enqueued.job.id)).toEqual(enqueued.job);
          const leases = await store.jobs.lease({ now: t0 + 10, leaseMs: 60_000, limit: 10 });
          expect(leases.map((l) => l.job.id)).toEqual([enqueued.job.id]);
          const replay = await store.idempotency.reserve(k, 'fp', { ...lease, now: t0 + 10 });
          expect(replay.kind).toBe('completed');
          if (replay.kind === 'completed') {
            expect(replay.response.status).toBe(response.status);
            expect(replay.response.headers).toEqual(response.headers);
            expectSameBytes(replay.response.body, response.body);
          }
        });
      }
    });
  });
}
