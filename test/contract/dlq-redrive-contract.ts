import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { DlqEntry, Job } from '../../src/storage/types.js';
import {
  LIVE_LEASE_MS,
  buryEntry,
  expectSameBytes,
  iso,
  newDlqEntry,
  newJob,
  uniqueKey as key,
  type ContractContext,
} from './contract-helpers.js';

/** DLQ redrive: an entry moves back onto the job queue exactly once. */
export function dlqRedriveContract(ctx: ContractContext): void {
  describe('redrive', () => {
    const ids = () => ({ newJobId: randomUUID(), newJobKey: key() });

    /** Enqueue a job, lease it and bury it: a dead job and its DLQ entry. */
    async function deadJob(now = ctx.t0): Promise<{ job: Job; entry: DlqEntry }> {
      const enqueued = await ctx.store.jobs.enqueue(newJob(now));
      if (enqueued.kind !== 'created') throw new Error(`expected a new job, got ${enqueued.kind}`);
      const leases = await ctx.store.jobs.lease({ now, leaseMs: LIVE_LEASE_MS, limit: 10 });
      const lease = leases.find((l) => l.job.id === enqueued.job.id);
      if (lease === undefined) throw new Error('expected to lease the job just enqueued');
      const dlq = buryEntry(enqueued.job, now + 100);
      const entry = await ctx.store.jobs.bury(lease.job.id, lease.token, { attempts: dlq.attempts, response: null, dlq });
      if (entry === null) throw new Error('expected bury to succeed');
      return { job: enqueued.job, entry };
    }

    it("an entry from a job requeues that job, available now, one redrive up, and leaves the DLQ", async () => {
      const { job, entry } = await deadJob();
      const { newJobId, newJobKey } = ids();
      const redriven = await ctx.store.dlq.redrive(entry.id, { now: ctx.t0 + 1_000, newJobId, newJobKey });

      expect(redriven).toMatchObject({
        id: job.id,
        state: 'queued',
        request: job.request,
        keyScope: job.keyScope,
        idempotencyKey: job.idempotencyKey,
        fingerprint: job.fingerprint,
        availableAt: ctx.t0 + 1_000,
        dlqId: null,
        redrives: 1,
        // The history stays with the job across redrives.
        attempts: entry.attempts,
      });
      expect(await ctx.store.jobs.get(job.id)).toEqual(redriven);
      expect(await ctx.store.jobs.get(newJobId)).toBeNull();
      expect(await ctx.store.dlq.get(entry.id)).toBeNull();
      expect(await ctx.store.jobs.counts()).toEqual({ queued: 1, in_flight: 0, delivered: 0, dead: 0 });

      const leases = await ctx.store.jobs.lease({ now: ctx.t0 + 1_000, leaseMs: LIVE_LEASE_MS, limit: 10 });
      expect(leases.map((l) => l.job.id)).toEqual([job.id]);
    });

    it('a job buried again after a redrive carries its redrive count into the new entry', async () => {
      const { job, entry } = await deadJob();
      await ctx.store.dlq.redrive(entry.id, { now: ctx.t0 + 1_000, ...ids() });
      const [lease] = await ctx.store.jobs.lease({ now: ctx.t0 + 1_000, leaseMs: LIVE_LEASE_MS, limit: 10 });
      if (lease === undefined) throw new Error('expected the redriven job to be leased');
      const dlq = buryEntry(lease.job, ctx.t0 + 2_000);
      const again = await ctx.store.jobs.bury(job.id, lease.token, { attempts: dlq.attempts, response: null, dlq });
      expect(again).toMatchObject({ jobId: job.id, redrives: 1 });
    });

    it('an entry from a synchronous request becomes a new job with its request, key, fingerprint, body and headers', async () => {
      const body = Buffer.from([0x7b, 0x7d, 0x00, 0xff, 0xc3, 0xa9]);
      const entry = await ctx.store.dlq.add(newDlqEntry(ctx.t0, { body, redrives: 1 }));
      const { newJobId, newJobKey } = ids();
      const redriven = await ctx.store.dlq.redrive(entry.id, { now: ctx.t0 + 1_000, newJobId, newJobKey });

      expect(redriven).toMatchObject({
        id: newJobId,
        state: 'queued',
        priority: 'normal',
        request: entry.request,
        keyScope: entry.keyScope,
        idempotencyKey: entry.idempotencyKey,
        fingerprint: entry.fingerprint,
        headers: entry.headers,
        createdAt: iso(ctx.t0 + 1_000),
        availableAt: ctx.t0 + 1_000,
        response: null,
        dlqId: null,
        redrives: 2,
      });
      expectSameBytes(redriven?.body ?? Buffer.alloc(0), body);
      expect(await ctx.store.jobs.get(newJobId)).toEqual(redriven);
      expect(await ctx.store.dlq.get(entry.id)).toBeNull();
    });

    it('an entry without an idempotency key becomes a job keyed and fingerprinted by newJobKey', async () => {
      const entry = await ctx.store.dlq.add(newDlqEntry(ctx.t0, { keyScope: null, idempotencyKey: null, fingerprint: null }));
      const { newJobId, newJobKey } = ids();
      const redriven = await ctx.store.dlq.redrive(entry.id, { now: ctx.t0 + 1_000, newJobId, newJobKey });
      expect(redriven).toMatchObject({
        id: newJobId,
        keyScope: newJobKey,
        idempotencyKey: newJobKey,
        fingerprint: newJobKey,
        state: 'queued',
      });
    });

    it('an entry whose job was purged becomes a new job under the same key scope and key', async () => {
      const { job, entry } = await deadJob();
      expect(await ctx.store.jobs.purgeFinishedBefore(ctx.t0 + 10_000)).toBe(1);
      const { newJobId, newJobKey } = ids();
      const redriven = await ctx.store.dlq.redrive(entry.id, { now: ctx.t0 + 20_000, newJobId, newJobKey });
      expect(redriven).toMatchObject({
        id: newJobId,
        keyScope: job.keyScope,
        idempotencyKey: job.idempotencyKey,
        state: 'queued',
        redrives: 1,
      });
    });

    it("a dead job already holding the entry's key scope is requeued, not duplicated", async () => {
      const { job } = await deadJob();
      // A synchronous failure under the same scoped key: no jobId, but the scope is taken by the job.
      const entry = await ctx.store.dlq.add(
        newDlqEntry(ctx.t0 + 200, { keyScope: job.keyScope, idempotencyKey: job.idempotencyKey, fingerprint: job.fingerprint }),
      );
      const { newJobId, newJobKey } = ids();
      const redriven = await ctx.store.dlq.redrive(entry.id, { now: ctx.t0 + 1_000, newJobId, newJobKey });

      expect(redriven).toMatchObject({ id: job.id, state: 'queued', availableAt: ctx.t0 + 1_000, redrives: 1 });
      expect(await ctx.store.jobs.get(newJobId)).toBeNull();
      expect(await ctx.store.jobs.counts()).toEqual({ queued: 1, in_flight: 0, delivered: 0, dead: 0 });
    });

    it('a second redrive of the same entry is null and moves nothing', async () => {
      const entry = await ctx.store.dlq.add(newDlqEntry(ctx.t0));
      expect(await ctx.store.dlq.redrive(entry.id, { now: ctx.t0 + 1, ...ids() })).not.toBeNull();
      const second = ids();
      expect(await ctx.store.dlq.redrive(entry.id, { now: ctx.t0 + 2, ...second })).toBeNull();
      expect(await ctx.store.jobs.get(second.newJobId)).toBeNull();
      expect((await ctx.store.jobs.counts()).queued).toBe(1);
    });

    it('five concurrent redrives of one entry move it exactly once', async () => {
      const entry = await ctx.store.dlq.add(newDlqEntry(ctx.t0));
      const results = await Promise.all(
        Array.from({ length: 5 }, () => ctx.store.dlq.redrive(entry.id, { now: ctx.t0 + 1, ...ids() })),
      );
      expect(results.filter((job) => job !== null)).toHaveLength(1);
      expect((await ctx.store.jobs.counts()).queued).toBe(1);
      expect(await ctx.store.dlq.size()).toBe(0);
    });

    it('redrive of an unknown id is null', async () => {
      expect(await ctx.store.dlq.redrive(randomUUID(), { now: ctx.t0, ...ids() })).toBeNull();
    });
  });
}
