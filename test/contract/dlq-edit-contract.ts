import { describe, expect, it } from 'vitest';
import type { DlqEdit } from '../../src/storage/types.js';
import { LIVE_LEASE_MS, iso, newDlqEntry, type ContractContext } from './contract-helpers.js';

/** The history of edited replays an entry keeps beside its original request. */
export function dlqEditContract(ctx: ContractContext): void {
  describe('edit history', () => {
    const edit = (firstAttempt: number, overrides: Partial<DlqEdit> = {}): DlqEdit => ({
      at: iso(ctx.t0),
      requestId: 'req-1',
      changed: ['body', 'idempotencyKey'],
      body: { bytes: 12, sha256: 'ab'.repeat(32) },
      idempotencyKey: 'k-2 / é',
      firstAttempt,
      ...overrides,
    });
    const claim = async (id: string) => {
      const claimed = await ctx.store.dlq.claimReplay(id, { now: ctx.t0, leaseMs: LIVE_LEASE_MS });
      if (claimed.kind !== 'claimed') throw new Error(`expected a claim, got ${claimed.kind}`);
      return claimed.token;
    };

    it('a new entry has none, and edits are appended in order while the claim is held', async () => {
      const added = await ctx.store.dlq.add(newDlqEntry(ctx.t0));
      expect(added.edits).toEqual([]);
      const token = await claim(added.id);
      const first = edit(2);
      const second = edit(3, { changed: ['headers'], headers: { 'x-trace': 'b', authorization: '[redacted]' }, idempotencyKey: null });
      delete second.body;
      expect((await ctx.store.dlq.recordEdit(added.id, token, first))?.edits).toEqual([first]);
      const updated = await ctx.store.dlq.recordEdit(added.id, token, second);
      expect(updated?.edits).toEqual([first, second]);
      expect(await ctx.store.dlq.get(added.id)).toEqual(updated);
    });

    it('leaves the original request, its size and its place in the listing alone', async () => {
      const added = await ctx.store.dlq.add(newDlqEntry(ctx.t0));
      const usage = await ctx.store.dlq.usage();
      await ctx.store.dlq.recordEdit(added.id, await claim(added.id), edit(2));
      const { edits, ...rest } = (await ctx.store.dlq.get(added.id))!;
      const { edits: _none, ...original } = added;
      expect(rest).toEqual(original);
      expect(edits).toHaveLength(1);
      expect(await ctx.store.dlq.usage()).toEqual(usage);
      const listed = (await ctx.store.dlq.list({ limit: 10 })).items.find((item) => item.id === added.id);
      expect(listed).toMatchObject({ updatedAt: added.updatedAt, bodyBytes: added.body.length, edits });
    });

    it('is refused without the claim, with another token, or on a removed entry', async () => {
      const added = await ctx.store.dlq.add(newDlqEntry(ctx.t0));
      expect(await ctx.store.dlq.recordEdit(added.id, 'no-claim', edit(2))).toBeNull();
      const token = await claim(added.id);
      expect(await ctx.store.dlq.recordEdit(added.id, `${token}-other`, edit(2))).toBeNull();
      await ctx.store.dlq.releaseReplay(added.id, token);
      expect(await ctx.store.dlq.recordEdit(added.id, token, edit(2))).toBeNull();
      expect((await ctx.store.dlq.get(added.id))?.edits).toEqual([]);
      const again = await claim(added.id);
      await ctx.store.dlq.remove(added.id);
      expect(await ctx.store.dlq.recordEdit(added.id, again, edit(2))).toBeNull();
      expect(await ctx.store.dlq.get(added.id)).toBeNull();
    });
  });
}
