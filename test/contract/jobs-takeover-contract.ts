import { describe, expect, it } from 'vitest';
import type { AttemptRecord } from '../../src/storage/types.js';
import { LIVE_LEASE_MS, attempt, iso, jobSteps, sleep, type ContractContext } from './contract-helpers.js';

/**
 * A job whose worker stopped (kill -9) while holding it: the next lease takes it
 * over and records the attempt that was cut off. Real time, since a backend may
 * judge lease expiry by its own clock rather than by `now`.
 */
export function jobTakeoverContract(ctx: ContractContext): void {
  describe('a job taken over from a worker that stopped', () => {
    const { enqueue, leaseOnly } = jobSteps(ctx);

    const interrupted = (at: number): AttemptRecord => ({
      at: iso(at),
      outcome: 'interrupted',
      durationMs: 0,
      sent: 'unknown',
      error: 'the worker holding the job stopped (its lease expired) before recording an outcome',
    });

    /** Leases the job for 40 ms, lets the lease end, and leases it again at the returned time. */
    async function takeOver(): Promise<{ id: string; token: string; at: number; attempts: AttemptRecord[] }> {
      const job = await enqueue({ now: Date.now() });
      await leaseOnly(Date.now(), 40);
      await sleep(80);
      const at = Date.now();
      const fresh = await leaseOnly(at, LIVE_LEASE_MS);
      expect(fresh.job.id).toBe(job.id);
      return { id: job.id, token: fresh.token, at, attempts: fresh.job.attempts };
    }

    it('gets the cut-off attempt in its history, as the new lease sees it and as stored', async () => {
      const { id, at, attempts } = await takeOver();
      expect(attempts).toEqual([interrupted(at)]);
      expect((await ctx.store.jobs.get(id))?.attempts).toEqual([interrupted(at)]);
    });

    it('counts it among the attempts the next worker appends to', async () => {
      const { id, token, at } = await takeOver();
      const failed = attempt(at + 5, 503);
      const rescheduled = await ctx.store.jobs.reschedule(id, token, {
        attempts: [failed],
        lastError: 'downstream answered 503',
        availableAt: at + 10,
        now: at + 10,
      });
      expect(rescheduled).toBe(true);
      expect((await ctx.store.jobs.get(id))?.attempts).toEqual([interrupted(at), failed]);
    });

    it('a job leased from the queue gets nothing appended, also when it was leased before', async () => {
      const job = await enqueue();
      const first = await leaseOnly(ctx.t0);
      expect(first.job.attempts).toEqual([]);
      const failed = attempt(ctx.t0 + 5, 503);
      await ctx.store.jobs.reschedule(job.id, first.token, {
        attempts: [failed],
        lastError: 'downstream answered 503',
        availableAt: ctx.t0 + 10,
        now: ctx.t0 + 10,
      });
      expect((await leaseOnly(ctx.t0 + 10)).job.attempts).toEqual([failed]);
    });
  });
}
