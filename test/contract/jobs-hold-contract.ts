import { describe, expect, it } from 'vitest';
import { LIVE_LEASE_MS, attempt, iso, jobSteps, newJob, sleep, type ContractContext } from './contract-helpers.js';

/**
 * A job created already leased to its caller (`holdMs`, for `Prefer:
 * respond-async, wait=N`): the caller makes its first attempts itself, and no
 * worker may take the job meanwhile.
 */
export function jobHoldContract(ctx: ContractContext): void {
  describe('a job enqueued held by its caller', () => {
    const { leaseAll, leaseOnly } = jobSteps(ctx);

    async function enqueueHeld(holdMs: number, now = ctx.t0): Promise<{ id: string; token: string }> {
      const result = await ctx.store.jobs.enqueue(newJob(now, { holdMs }));
      if (result.kind !== 'created' || result.token === undefined) throw new Error(`expected a held job, got ${result.kind}`);
      expect(result.job.state).toBe('in_flight');
      return { id: result.job.id, token: result.token };
    }

    it('is in flight, counted, and leased by no worker while held', async () => {
      const { id } = await enqueueHeld(LIVE_LEASE_MS);
      expect((await ctx.store.jobs.get(id))?.state).toBe('in_flight');
      expect(await ctx.store.jobs.counts()).toMatchObject({ queued: 0, in_flight: 1 });
      expect((await ctx.store.jobs.usage()).queued).toBe(1);
      expect(await leaseAll(ctx.t0 + 1_000)).toEqual([]);
    });

    it('is settled with its token like a lease: rescheduled with the caller attempts, then leased with them', async () => {
      const { id, token } = await enqueueHeld(LIVE_LEASE_MS);
      const spent = [attempt(ctx.t0 + 10, 503)];
      expect(await ctx.store.jobs.reschedule(id, 'not-the-token', { attempts: spent, lastError: 'HTTP 503', availableAt: ctx.t0, now: ctx.t0 + 20 })).toBe(false);
      expect(await ctx.store.jobs.reschedule(id, token, { attempts: spent, lastError: 'HTTP 503', availableAt: ctx.t0 + 500, now: ctx.t0 + 20 })).toBe(true);
      expect(await leaseAll(ctx.t0 + 100)).toEqual([]);
      const lease = await leaseOnly(ctx.t0 + 500);
      expect(lease.job).toMatchObject({ id, state: 'in_flight', attempts: spent, lastError: 'HTTP 503' });
    });

    it('answers a second enqueue of its key scope with itself, held, not a new job', async () => {
      const first = newJob(ctx.t0, { holdMs: LIVE_LEASE_MS });
      const created = await ctx.store.jobs.enqueue(first);
      expect(created.kind).toBe('created');
      const again = await ctx.store.jobs.enqueue({ ...first, id: `${first.id}-2`, holdMs: undefined });
      expect(again).toMatchObject({ kind: 'existing', job: { id: first.id, state: 'in_flight' } });
      expect(again).not.toHaveProperty('token');
    });

    it('is taken over once its hold ends, the cut-off attempt recorded', async () => {
      const { id } = await enqueueHeld(40, Date.now());
      await sleep(80);
      const at = Date.now();
      // A held job has no place in Redis's streams: the first lease after its end queues it afresh, the next takes it.
      const leases = [...(await leaseAll(at)), ...(await leaseAll(at))];
      expect(leases.map((lease) => lease.job.id)).toEqual([id]);
      expect(leases[0]?.job.attempts).toEqual([expect.objectContaining({ at: iso(at), outcome: 'interrupted', sent: 'unknown' })]);
    });
  });
}
