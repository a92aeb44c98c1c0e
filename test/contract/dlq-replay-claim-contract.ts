import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { newDlqEntry, type ContractContext } from './contract-helpers.js';

/** Replaying a DLQ entry by hand: one holder at a time, across every process sharing the store. */
export function dlqReplayClaimContract(ctx: ContractContext): void {
  describe('replay claims', () => {
    const lease = (now: number) => ({ now, leaseMs: 1_000 });

    it('of two concurrent claims exactly one wins', async () => {
      const { id } = await ctx.store.dlq.add(newDlqEntry(ctx.t0));
      const results = await Promise.all([ctx.store.dlq.claimReplay(id, lease(ctx.t0)), ctx.store.dlq.claimReplay(id, lease(ctx.t0))]);
      expect(results.map((r) => r.kind).sort()).toEqual(['busy', 'claimed']);
    });

    it('ten concurrent claims give one token', async () => {
      const { id } = await ctx.store.dlq.add(newDlqEntry(ctx.t0));
      const results = await Promise.all(Array.from({ length: 10 }, () => ctx.store.dlq.claimReplay(id, lease(ctx.t0))));
      expect(results.filter((r) => r.kind === 'claimed')).toHaveLength(1);
      expect(results.filter((r) => r.kind === 'busy')).toHaveLength(9);
    });

    it('a release lets the next claim in, with a new token', async () => {
      const { id } = await ctx.store.dlq.add(newDlqEntry(ctx.t0));
      const first = await ctx.store.dlq.claimReplay(id, lease(ctx.t0));
      if (first.kind !== 'claimed') throw new Error(`expected a claim, got ${first.kind}`);
      expect(await ctx.store.dlq.claimReplay(id, lease(ctx.t0 + 1))).toEqual({ kind: 'busy' });
      await ctx.store.dlq.releaseReplay(id, first.token);
      const second = await ctx.store.dlq.claimReplay(id, lease(ctx.t0 + 2));
      expect(second.kind).toBe('claimed');
      expect(second.kind === 'claimed' && second.token).not.toBe(first.token);
    });

    it('a release with another token leaves the claim in place', async () => {
      const { id } = await ctx.store.dlq.add(newDlqEntry(ctx.t0));
      await ctx.store.dlq.claimReplay(id, lease(ctx.t0));
      await ctx.store.dlq.releaseReplay(id, 'not-the-token');
      expect(await ctx.store.dlq.claimReplay(id, lease(ctx.t0 + 1))).toEqual({ kind: 'busy' });
    });

    it('a claim whose lease ended is taken over, and the old token can no longer release the new claim', async () => {
      const { id } = await ctx.store.dlq.add(newDlqEntry(ctx.t0));
      const stale = await ctx.store.dlq.claimReplay(id, lease(ctx.t0));
      if (stale.kind !== 'claimed') throw new Error(`expected a claim, got ${stale.kind}`);
      expect(await ctx.store.dlq.claimReplay(id, lease(ctx.t0 + 999))).toEqual({ kind: 'busy' });
      const fresh = await ctx.store.dlq.claimReplay(id, lease(ctx.t0 + 1_000));
      expect(fresh.kind).toBe('claimed');
      await ctx.store.dlq.releaseReplay(id, stale.token);
      expect(await ctx.store.dlq.claimReplay(id, lease(ctx.t0 + 1_001))).toEqual({ kind: 'busy' });
    });

    it('a claim leaves the entry as it was', async () => {
      const added = await ctx.store.dlq.add(newDlqEntry(ctx.t0));
      await ctx.store.dlq.claimReplay(added.id, lease(ctx.t0));
      expect(await ctx.store.dlq.get(added.id)).toEqual(added);
      const { body: _body, ...summary } = added;
      expect((await ctx.store.dlq.list({ limit: 1 })).items).toEqual([{ ...summary, bodyBytes: added.body.length }]);
    });

    it('an unknown or removed entry is absent, and releasing it is harmless', async () => {
      expect(await ctx.store.dlq.claimReplay(randomUUID(), lease(ctx.t0))).toEqual({ kind: 'absent' });
      const { id } = await ctx.store.dlq.add(newDlqEntry(ctx.t0));
      const claim = await ctx.store.dlq.claimReplay(id, lease(ctx.t0));
      await ctx.store.dlq.remove(id);
      expect(await ctx.store.dlq.claimReplay(id, lease(ctx.t0 + 1))).toEqual({ kind: 'absent' });
      await expect(ctx.store.dlq.releaseReplay(id, claim.kind === 'claimed' ? claim.token : '')).resolves.toBeUndefined();
      expect(await ctx.store.dlq.get(id)).toBeNull();
    });

    it('a bad leaseMs is refused naming it', async () => {
      const { id } = await ctx.store.dlq.add(newDlqEntry(ctx.t0));
      await expect(ctx.store.dlq.claimReplay(id, { now: ctx.t0, leaseMs: 0 })).rejects.toThrow('got `0`');
    });
  });
}
