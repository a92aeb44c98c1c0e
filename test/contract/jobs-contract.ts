import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Job, JobLease } from '../../src/storage/types.js';
import {
  LIVE_LEASE_MS,
  attempt,
  buryEntry,
  expectSameBytes,
  iso,
  jobSteps,
  newJob,
  sampleResponse,
  sleep,
  success,
  uniqueKey as key,
  type ContractContext,
} from './contract-helpers.js';
import { jobHoldContract } from './jobs-hold-contract.js';
import { jobMarkDeliveredContract } from './jobs-mark-delivered-contract.js';
import { jobOutcomesContract } from './jobs-outcome-contract.js';
import { jobTakeoverContract } from './jobs-takeover-contract.js';

/**
 * The durable job queue half of the store contract: enqueue and lease here,
 * what a worker does with a lease in {@link jobOutcomesContract}, a hand-replayed dead
 * job in {@link jobMarkDeliveredContract}, a dead worker's job in {@link jobTakeoverContract}.
 * Lease expiry is tested with real time, since a backend may judge it by its own clock
 * rather than by `now`.
 */
export function jobsContract(ctx: ContractContext): void {
  describe('jobs', () => {
    const { enqueue, leaseAll, leaseOnly } = jobSteps(ctx);

    describe('enqueue', () => {
      it('stores a queued job available from now, with everything the client sent', async () => {
        const input = newJob(ctx.t0, { priority: 'high' });
        const result = await ctx.store.jobs.enqueue(input);
        const expected: Job = {
          id: input.id,
          state: 'queued',
          priority: 'high',
          request: input.request,
          keyScope: input.keyScope,
          idempotencyKey: input.idempotencyKey,
          fingerprint: input.fingerprint,
          body: input.body,
          headers: input.headers,
          attempts: [],
          createdAt: iso(ctx.t0),
          updatedAt: iso(ctx.t0),
          availableAt: ctx.t0,
          response: null,
          lastError: null,
          dlqId: null,
          redrives: 0,
        };
        expect(result).toEqual({ kind: 'created', job: expected });

        const fetched = await ctx.store.jobs.get(input.id);
        expect(fetched).toEqual(expected);
        expectSameBytes(fetched?.body ?? Buffer.alloc(0), input.body);
      });

      it('the same key scope and fingerprint again returns the existing job and creates no other', async () => {
        const first = await enqueue();
        const again = newJob(ctx.t0 + 10, { keyScope: first.keyScope, fingerprint: first.fingerprint });
        const result = await ctx.store.jobs.enqueue(again);
        expect(result).toEqual({ kind: 'existing', job: first });
        expect(await ctx.store.jobs.get(again.id)).toBeNull();
        expect((await ctx.store.jobs.counts()).queued).toBe(1);
      });

      it('the same key scope with another fingerprint is a mismatch and creates nothing', async () => {
        const first = await enqueue();
        const other = newJob(ctx.t0 + 10, { keyScope: first.keyScope });
        expect(await ctx.store.jobs.enqueue(other)).toEqual({ kind: 'mismatch' });
        expect(await ctx.store.jobs.get(other.id)).toBeNull();
        expect(await ctx.store.jobs.get(first.id)).toEqual(first);
      });

      it('an existing job is returned in its current state, with its answer once delivered', async () => {
        const job = await enqueue();
        const { token } = await leaseOnly(ctx.t0);
        const response = sampleResponse();
        await ctx.store.jobs.complete(job.id, token, { attempts: [success(ctx.t0 + 5)], response, now: ctx.t0 + 30 });

        const result = await ctx.store.jobs.enqueue(
          newJob(ctx.t0 + 40, { keyScope: job.keyScope, fingerprint: job.fingerprint }),
        );
        expect(result.kind).toBe('existing');
        if (result.kind !== 'existing') return;
        expect(result.job.id).toBe(job.id);
        expect(result.job.state).toBe('delivered');
        expect(result.job.response?.status).toBe(201);
        expectSameBytes(result.job.response?.body ?? Buffer.alloc(0), response.body);
      });

      it('twenty concurrent enqueues of one key scope create exactly one job', async () => {
        const k = key();
        const results = await Promise.all(
          Array.from({ length: 20 }, () => ctx.store.jobs.enqueue(newJob(ctx.t0, { keyScope: k, fingerprint: 'fp' }))),
        );
        const created = results.filter((r) => r.kind === 'created');
        expect(created).toHaveLength(1);
        expect(results.filter((r) => r.kind === 'existing')).toHaveLength(19);
        const ids = new Set(results.map((r) => ('job' in r ? r.job.id : null)));
        expect(ids.size).toBe(1);
        expect((await ctx.store.jobs.counts()).queued).toBe(1);
      });

      it('get of an unknown id is null', async () => {
        expect(await ctx.store.jobs.get(randomUUID())).toBeNull();
      });
    });

    describe('lease', () => {
      it('takes higher priority first, then the oldest availableAt', async () => {
        // Enqueued out of order, so that insertion order alone would get it wrong.
        const normalLater = await enqueue({ priority: 'normal', now: ctx.t0 + 3 });
        const low = await enqueue({ priority: 'low', now: ctx.t0 });
        const normalEarlier = await enqueue({ priority: 'normal', now: ctx.t0 + 1 });
        const high = await enqueue({ priority: 'high', now: ctx.t0 + 2 });

        const order: string[] = [];
        for (let i = 0; i < 4; i++) order.push((await leaseOnlyOfLimitOne(ctx.t0 + 10)).job.id);
        expect(order).toEqual([high.id, normalEarlier.id, normalLater.id, low.id]);
        expect(await ctx.store.jobs.lease({ now: ctx.t0 + 10, leaseMs: LIVE_LEASE_MS, limit: 1 })).toEqual([]);
      });

      async function leaseOnlyOfLimitOne(now: number): Promise<JobLease> {
        const leases = await ctx.store.jobs.lease({ now, leaseMs: LIVE_LEASE_MS, limit: 1 });
        expect(leases).toHaveLength(1);
        return leases[0] as JobLease;
      }

      it('takes at most `limit` jobs, each in flight with its own token', async () => {
        const ids = [await enqueue(), await enqueue(), await enqueue()].map((j) => j.id);
        const first = await ctx.store.jobs.lease({ now: ctx.t0, leaseMs: LIVE_LEASE_MS, limit: 2 });
        expect(first).toHaveLength(2);
        const second = await ctx.store.jobs.lease({ now: ctx.t0, leaseMs: LIVE_LEASE_MS, limit: 2 });
        expect(second).toHaveLength(1);

        const all = [...first, ...second];
        expect(new Set(all.map((l) => l.job.id))).toEqual(new Set(ids));
        expect(new Set(all.map((l) => l.token)).size).toBe(3);
        for (const lease of all) {
          expect(lease.token.length).toBeGreaterThan(0);
          expect(lease.job.state).toBe('in_flight');
          expect((await ctx.store.jobs.get(lease.job.id))?.state).toBe('in_flight');
        }
      });

      it('a leased job comes with its body, headers and key', async () => {
        const job = await enqueue();
        const { job: leased } = await leaseOnly(ctx.t0);
        expect(leased.id).toBe(job.id);
        expect(leased.idempotencyKey).toBe(job.idempotencyKey);
        expect(leased.fingerprint).toBe(job.fingerprint);
        expect(leased.headers).toEqual(job.headers);
        expectSameBytes(leased.body, job.body);
      });

      it('an empty queue leases nothing', async () => {
        expect(await leaseAll(ctx.t0)).toEqual([]);
      });

      it('a job is not leased before its availableAt', async () => {
        const job = await enqueue({ now: ctx.t0 + 5_000 });
        expect(await leaseAll(ctx.t0 + 4_999)).toEqual([]);
        expect((await leaseOnly(ctx.t0 + 5_000)).job.id).toBe(job.id);
      });

      it('a leased job is not leased again while its lease lives', async () => {
        const job = await enqueue();
        await leaseOnly(ctx.t0);
        expect(await leaseAll(ctx.t0 + 10)).toEqual([]);
        expect((await ctx.store.jobs.get(job.id))?.state).toBe('in_flight');
      });

      it('an expired lease is leased again with a new token, and the old token can no longer finish the job', async () => {
        const job = await enqueue({ now: Date.now() });
        const stale = await leaseOnly(Date.now(), 40);
        // Real time, not a later `now`: a backend may judge expiry by its own clock.
        await sleep(80);
        const fresh = await leaseOnly(Date.now(), LIVE_LEASE_MS);
        expect(fresh.job.id).toBe(job.id);
        expect(fresh.token).not.toBe(stale.token);

        const now = Date.now();
        expect(
          await ctx.store.jobs.complete(job.id, stale.token, { attempts: [success(now)], response: sampleResponse(), now }),
        ).toBe(false);
        expect(
          await ctx.store.jobs.reschedule(job.id, stale.token, {
            attempts: [attempt(now, 503)],
            lastError: 'downstream answered 503',
            availableAt: now,
            now,
          }),
        ).toBe(false);
        expect(await ctx.store.jobs.bury(job.id, stale.token, { attempts: [], response: null, dlq: buryEntry(job, now) })).toBeNull();
        expect(await ctx.store.dlq.size()).toBe(0);
        expect((await ctx.store.jobs.get(job.id))?.state).toBe('in_flight');

        expect(
          await ctx.store.jobs.complete(job.id, fresh.token, { attempts: [success(now)], response: sampleResponse(), now }),
        ).toBe(true);
      });

      it('concurrent leases never hand one job to two workers', async () => {
        const ids = new Set<string>();
        for (let i = 0; i < 6; i++) ids.add((await enqueue()).id);
        const batches = await Promise.all(
          Array.from({ length: 4 }, () => ctx.store.jobs.lease({ now: ctx.t0, leaseMs: LIVE_LEASE_MS, limit: 3 })),
        );
        const leased = batches.flat().map((l) => l.job.id);
        expect(leased).toHaveLength(6);
        expect(new Set(leased)).toEqual(ids);
      });
    });

    jobOutcomesContract(ctx);
    jobMarkDeliveredContract(ctx);
    jobTakeoverContract(ctx);
    jobHoldContract(ctx);
  });
}
