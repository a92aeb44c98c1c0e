import { describe, expect, it } from 'vitest';
import { LIVE_LEASE_MS, buryEntry, jobSteps, newDlqEntry, newJob, sampleResponse, success, type ContractContext } from './contract-helpers.js';

/** What the queue and the DLQ hold (for /stats and the caps), and the queue quotas enqueue enforces. */
export function usageContract(ctx: ContractContext): void {
  describe('usage and quotas', () => {
    const { enqueue, leaseOnly } = jobSteps(ctx);
    const body = (bytes: number) => Buffer.alloc(bytes, 0x61);

    it('an empty store holds nothing', async () => {
      expect(await ctx.store.jobs.usage()).toEqual({ queued: 0, queuedBytes: 0 });
      expect(await ctx.store.dlq.usage()).toEqual({ count: 0, bytes: 0 });
    });

    it('queued and in-flight jobs count with their body bytes; delivered ones do not', async () => {
      const a = await enqueue({ body: body(100) });
      // Available later, so that the first lease can only take `a`.
      await enqueue({ body: body(30), now: ctx.t0 + 1 });
      expect(await ctx.store.jobs.usage()).toEqual({ queued: 2, queuedBytes: 130 });

      const [first] = await ctx.store.jobs.lease({ now: ctx.t0, leaseMs: LIVE_LEASE_MS, limit: 1 });
      if (first === undefined) throw new Error('expected a lease');
      expect(first.job.id).toBe(a.id);
      expect(await ctx.store.jobs.usage()).toEqual({ queued: 2, queuedBytes: 130 });

      await ctx.store.jobs.reschedule(a.id, first.token, { attempts: [], lastError: '503', availableAt: ctx.t0, now: ctx.t0 });
      expect(await ctx.store.jobs.usage()).toEqual({ queued: 2, queuedBytes: 130 });

      const leases = await ctx.store.jobs.lease({ now: ctx.t0, leaseMs: LIVE_LEASE_MS, limit: 10 });
      const leaseOfA = leases.find((l) => l.job.id === a.id);
      if (leaseOfA === undefined) throw new Error('expected to lease the job again');
      await ctx.store.jobs.complete(a.id, leaseOfA.token, { attempts: [success(ctx.t0)], response: sampleResponse(), now: ctx.t0 });
      expect(await ctx.store.jobs.usage()).toEqual({ queued: 1, queuedBytes: 30 });
    });

    it('a buried job moves its bytes from the queue to the DLQ, and a redrive moves them back', async () => {
      const job = await enqueue({ body: body(70) });
      const { token } = await leaseOnly(ctx.t0);
      const entry = await ctx.store.jobs.bury(job.id, token, { attempts: [], response: null, dlq: buryEntry(job, ctx.t0 + 1) });
      expect(await ctx.store.jobs.usage()).toEqual({ queued: 0, queuedBytes: 0 });
      expect(await ctx.store.dlq.usage()).toEqual({ count: 1, bytes: 70 });

      await ctx.store.dlq.redrive(entry?.id ?? '', { now: ctx.t0 + 2, newJobId: 'unused', newJobKey: 'unused' });
      expect(await ctx.store.jobs.usage()).toEqual({ queued: 1, queuedBytes: 70 });
      expect(await ctx.store.dlq.usage()).toEqual({ count: 0, bytes: 0 });
    });

    it('DLQ usage follows add, remove, redrive into a new job and purge', async () => {
      const a = await ctx.store.dlq.add(newDlqEntry(ctx.t0, { body: body(10) }));
      const b = await ctx.store.dlq.add(newDlqEntry(ctx.t0 + 1, { body: body(200) }));
      await ctx.store.dlq.add(newDlqEntry(ctx.t0 + 2, { body: body(5) }));
      expect(await ctx.store.dlq.usage()).toEqual({ count: 3, bytes: 215 });
      await ctx.store.dlq.remove(a.id);
      await ctx.store.dlq.remove(a.id);
      expect(await ctx.store.dlq.usage()).toEqual({ count: 2, bytes: 205 });
      await ctx.store.dlq.redrive(b.id, { now: ctx.t0 + 3, newJobId: 'redriven-job', newJobKey: 'redriven-key' });
      expect(await ctx.store.dlq.usage()).toEqual({ count: 1, bytes: 5 });
      expect(await ctx.store.jobs.usage()).toEqual({ queued: 1, queuedBytes: 200 });
      await ctx.store.dlq.purgeOlderThan(ctx.t0 + 10);
      expect(await ctx.store.dlq.usage()).toEqual({ count: 0, bytes: 0 });
    });

    it('enqueue refuses a new job once maxQueued jobs wait or run, storing nothing', async () => {
      await enqueue();
      await enqueue();
      await leaseOnlyOne();
      const limits = { maxQueued: 2, maxQueuedBytes: 1_000_000 };
      const refused = newJob(ctx.t0);
      expect(await ctx.store.jobs.enqueue(refused, limits)).toEqual({ kind: 'full', reason: 'count' });
      expect(await ctx.store.jobs.get(refused.id)).toBeNull();
      expect((await ctx.store.jobs.usage()).queued).toBe(2);
      expect((await ctx.store.jobs.enqueue(newJob(ctx.t0), { ...limits, maxQueued: 3 })).kind).toBe('created');
    });

    it('enqueue refuses a job whose bytes would take the queue past maxQueuedBytes; exactly at it is allowed', async () => {
      await enqueue({ body: body(600) });
      const limits = { maxQueued: 100, maxQueuedBytes: 1_000 };
      const tooBig = newJob(ctx.t0, { body: body(401) });
      expect(await ctx.store.jobs.enqueue(tooBig, limits)).toEqual({ kind: 'full', reason: 'bytes' });
      expect(await ctx.store.jobs.get(tooBig.id)).toBeNull();
      expect((await ctx.store.jobs.enqueue(newJob(ctx.t0, { body: body(400) }), limits)).kind).toBe('created');
      expect(await ctx.store.jobs.usage()).toEqual({ queued: 2, queuedBytes: 1_000 });
    });

    it('a full queue still answers a resend of a stored job with that job', async () => {
      const job = await enqueue();
      const resend = newJob(ctx.t0 + 1, { keyScope: job.keyScope, fingerprint: job.fingerprint });
      const result = await ctx.store.jobs.enqueue(resend, { maxQueued: 0, maxQueuedBytes: 0 });
      expect(result).toEqual({ kind: 'existing', job });
    });

    it('concurrent enqueues never go past maxQueued', async () => {
      const limits = { maxQueued: 3, maxQueuedBytes: 1_000_000 };
      const results = await Promise.all(Array.from({ length: 10 }, () => ctx.store.jobs.enqueue(newJob(ctx.t0), limits)));
      expect(results.filter((r) => r.kind === 'created')).toHaveLength(3);
      expect(results.filter((r) => r.kind === 'full')).toHaveLength(7);
      expect((await ctx.store.jobs.usage()).queued).toBe(3);
    });

    it('a bad limit is refused naming it', async () => {
      await expect(ctx.store.jobs.enqueue(newJob(ctx.t0), { maxQueued: -1, maxQueuedBytes: 10 })).rejects.toThrow('limits.maxQueued');
      await expect(ctx.store.jobs.enqueue(newJob(ctx.t0), { maxQueued: 1, maxQueuedBytes: Number.NaN })).rejects.toThrow(
        'limits.maxQueuedBytes',
      );
    });

    async function leaseOnlyOne(): Promise<void> {
      expect(await ctx.store.jobs.lease({ now: ctx.t0, leaseMs: LIVE_LEASE_MS, limit: 1 })).toHaveLength(1);
    }
  });
}
