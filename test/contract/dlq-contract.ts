import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DuplicateIdError, InvalidCursorError, type AttemptRecord, type NewDlqEntry } from '../../src/storage/types.js';
import { attempt, expectSameBytes, newDlqEntry, type ContractContext } from './contract-helpers.js';
import { dlqEditContract } from './dlq-edit-contract.js';
import { dlqRedriveContract } from './dlq-redrive-contract.js';
import { dlqReplayClaimContract } from './dlq-replay-claim-contract.js';

/** The dead-letter-queue half of the store contract: round trips, paging, filters, replays, redrive, retention. */
export function dlqContract(ctx: ContractContext): void {
  describe('dlq', () => {
    const newEntry = (overrides: Partial<NewDlqEntry> = {}): NewDlqEntry => newDlqEntry(ctx.t0, overrides);

    it('add then get round-trips body bytes, headers, attempts and metadata', async () => {
      const body = Buffer.from(JSON.stringify({ name: 'Zoë 🚀 東京', note: 'naïve café' }), 'utf8');
      const timedOut: AttemptRecord = {
        at: new Date(ctx.t0 + 5).toISOString(),
        outcome: 'timeout',
        durationMs: 5_000,
        error: 'attempt timed out',
      };
      const input = newEntry({
        body,
        attempts: [attempt(ctx.t0, 503), timedOut],
        reason: 'permanent',
        cause: 'timeout',
        jobId: randomUUID(),
        redrives: 2,
      });
      const added = await ctx.store.dlq.add(input);

      expect(typeof added.id).toBe('string');
      expect(added.id.length).toBeGreaterThan(0);
      expect(added.createdAt).toBe(new Date(ctx.t0).toISOString());
      expect(added.updatedAt).toBe(added.createdAt);
      expect(added.replays).toBe(0);

      const fetched = await ctx.store.dlq.get(added.id);
      expect(fetched).not.toBeNull();
      if (fetched === null) return;
      expectSameBytes(fetched.body, body);
      expect(fetched.body.toString('utf8')).toContain('Zoë 🚀 東京');
      expect(fetched).toEqual({
        id: added.id,
        createdAt: new Date(ctx.t0).toISOString(),
        updatedAt: new Date(ctx.t0).toISOString(),
        request: input.request,
        keyScope: input.keyScope,
        idempotencyKey: input.idempotencyKey,
        fingerprint: input.fingerprint,
        body,
        headers: input.headers,
        attempts: input.attempts,
        lastError: 'downstream answered 503',
        status: 502,
        replays: 0,
        reason: 'permanent',
        cause: 'timeout',
        jobId: input.jobId,
        redrives: 2,
        edits: [],
      });
    });

    it('an entry from a synchronous request has no job and no redrives', async () => {
      const added = await ctx.store.dlq.add(newEntry());
      expect(await ctx.store.dlq.get(added.id)).toMatchObject({
        reason: 'transient',
        cause: 'attempts_exhausted',
        jobId: null,
        redrives: 0,
      });
    });

    it('a 200 kB body comes back byte for byte', async () => {
      const body = Buffer.alloc(200 * 1024);
      for (let i = 0; i < body.length; i++) body[i] = (i * 31 + 7) % 256;
      const added = await ctx.store.dlq.add(newEntry({ body }));
      const fetched = await ctx.store.dlq.get(added.id);
      expect(fetched?.body.length).toBe(body.length);
      expectSameBytes(fetched?.body ?? Buffer.alloc(0), body);
    });

    it('an entry without an idempotency key keeps null key scope, key and fingerprint', async () => {
      const added = await ctx.store.dlq.add(newEntry({ keyScope: null, idempotencyKey: null, fingerprint: null }));
      const fetched = await ctx.store.dlq.get(added.id);
      expect(fetched?.keyScope).toBeNull();
      expect((await ctx.store.dlq.list({ limit: 1 })).items[0]?.keyScope).toBeNull();
      expect(fetched?.idempotencyKey).toBeNull();
      expect(fetched?.fingerprint).toBeNull();
    });

    it('every entry gets its own id', async () => {
      const a = await ctx.store.dlq.add(newEntry());
      const b = await ctx.store.dlq.add(newEntry());
      expect(a.id).not.toBe(b.id);
    });

    it('an entry takes the id the caller chose', async () => {
      const id = randomUUID();
      const added = await ctx.store.dlq.add(newEntry({ id }));
      expect(added.id).toBe(id);
      expect(await ctx.store.dlq.get(id)).toEqual(added);
    });

    it('a chosen id already in the DLQ is refused with DuplicateIdError and the first entry stays as it was', async () => {
      const id = randomUUID();
      const first = await ctx.store.dlq.add(newEntry({ id }));
      const second = ctx.store.dlq.add(newEntry({ id, body: Buffer.from('other') }));
      await expect(second).rejects.toBeInstanceOf(DuplicateIdError);
      await expect(ctx.store.dlq.add(newEntry({ id }))).rejects.toMatchObject({ code: 'DUPLICATE_ID' });
      expect(await ctx.store.dlq.get(id)).toEqual(first);
      expect(await ctx.store.dlq.size()).toBe(1);
    });

    it('an empty chosen id is refused naming the field', async () => {
      await expect(ctx.store.dlq.add(newEntry({ id: '' }))).rejects.toThrow(RangeError);
      expect(await ctx.store.dlq.size()).toBe(0);
    });

    it('get of an unknown id is null', async () => {
      expect(await ctx.store.dlq.get(randomUUID())).toBeNull();
    });

    it('a listing shows each entry without its body, with the body size instead', async () => {
      const body = Buffer.alloc(200 * 1024, 0xab);
      const big = await ctx.store.dlq.add(newEntry({ body, now: ctx.t0 }));
      const empty = await ctx.store.dlq.add(newEntry({ body: Buffer.alloc(0), now: ctx.t0 + 1 }));
      const { items } = await ctx.store.dlq.list({ limit: 10 });
      const { body: _bigBody, ...bigRest } = big;
      const { body: _emptyBody, ...emptyRest } = empty;
      expect(items).toEqual([
        { ...bigRest, bodyBytes: 200 * 1024 },
        { ...emptyRest, bodyBytes: 0 },
      ]);
      for (const item of items) expect(item).not.toHaveProperty('body');
    });

    it('a listing counts body bytes, not characters', async () => {
      await ctx.store.dlq.add(newEntry({ body: Buffer.from('Zoë 🚀', 'utf8') }));
      const [item] = (await ctx.store.dlq.list({ limit: 1 })).items;
      expect(item?.bodyBytes).toBe(Buffer.byteLength('Zoë 🚀', 'utf8'));
    });

    it('an empty queue lists no items and no cursor', async () => {
      expect(await ctx.store.dlq.list({ limit: 10 })).toEqual({ items: [], nextCursor: null });
    });

    it('lists oldest first in pages: 5 entries in pages of 2 are 2, 2, 1', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await ctx.store.dlq.add(newEntry({ now: ctx.t0 + i }))).id);

      const first = await ctx.store.dlq.list({ limit: 2 });
      expect(first.items.map((e) => e.id)).toEqual(ids.slice(0, 2));
      expect(typeof first.nextCursor).toBe('string');

      const second = await ctx.store.dlq.list({ limit: 2, cursor: first.nextCursor ?? undefined });
      expect(second.items.map((e) => e.id)).toEqual(ids.slice(2, 4));
      expect(typeof second.nextCursor).toBe('string');

      const third = await ctx.store.dlq.list({ limit: 2, cursor: second.nextCursor ?? undefined });
      expect(third.items.map((e) => e.id)).toEqual(ids.slice(4));
      expect(third.nextCursor).toBeNull();
    });

    it('a page that ends exactly on the last entry has no next cursor', async () => {
      for (let i = 0; i < 4; i++) await ctx.store.dlq.add(newEntry({ now: ctx.t0 + i }));
      const first = await ctx.store.dlq.list({ limit: 2 });
      const second = await ctx.store.dlq.list({ limit: 2, cursor: first.nextCursor ?? undefined });
      expect(second.items).toHaveLength(2);
      expect(second.nextCursor).toBeNull();
      expect((await ctx.store.dlq.list({ limit: 4 })).nextCursor).toBeNull();
    });

    it('a cursor still works after the entry it points at was removed', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push((await ctx.store.dlq.add(newEntry({ now: ctx.t0 + i }))).id);
      const first = await ctx.store.dlq.list({ limit: 1 });
      // An operator replaying what they just saw deletes it before asking for the next page.
      await ctx.store.dlq.remove(ids[0] as string);
      const second = await ctx.store.dlq.list({ limit: 5, cursor: first.nextCursor ?? undefined });
      expect(second.items.map((e) => e.id)).toEqual(ids.slice(1));
    });

    it.each(['not-a-cursor', '%%%', '!!!!', 'eyJzZXEiOiJ4In0'])(
      'a malformed cursor %j is rejected with InvalidCursorError',
      async (cursor) => {
        await ctx.store.dlq.add(newEntry());
        const listing = ctx.store.dlq.list({ limit: 2, cursor });
        await expect(listing).rejects.toBeInstanceOf(InvalidCursorError);
        await expect(ctx.store.dlq.list({ limit: 2, cursor })).rejects.toMatchObject({ code: 'INVALID_CURSOR' });
      },
    );

    it('recordFailedReplay appends attempts, replaces lastError and status, and bumps replays', async () => {
      const added = await ctx.store.dlq.add(newEntry());
      const replayAttempts: AttemptRecord[] = [
        { at: new Date(ctx.t0 + 60_000).toISOString(), outcome: 'timeout', durationMs: 5_000, error: 'attempt timed out' },
      ];
      const updated = await ctx.store.dlq.recordFailedReplay(added.id, replayAttempts, 'attempt timed out', 504, ctx.t0 + 65_000);
      expect(updated).not.toBeNull();
      expect(updated?.attempts).toEqual([...added.attempts, ...replayAttempts]);
      expect(updated?.lastError).toBe('attempt timed out');
      expect(updated?.status).toBe(504);
      expect(updated?.replays).toBe(1);
      expect(updated?.createdAt).toBe(added.createdAt);
      expect(updated?.updatedAt).toBe(new Date(ctx.t0 + 65_000).toISOString());

      const again = await ctx.store.dlq.recordFailedReplay(
        added.id,
        [attempt(ctx.t0 + 70_000, 503)],
        'downstream answered 503',
        502,
        ctx.t0 + 70_000,
      );
      expect(again?.replays).toBe(2);
      expect(again?.attempts).toHaveLength(added.attempts.length + 2);
      expect(await ctx.store.dlq.get(added.id)).toEqual(again);
    });

    it('recordFailedReplay of an unknown id is null', async () => {
      expect(await ctx.store.dlq.recordFailedReplay(randomUUID(), [], 'x', 502, ctx.t0)).toBeNull();
    });

    it('remove returns true once, then false, and the entry is gone', async () => {
      const added = await ctx.store.dlq.add(newEntry());
      expect(await ctx.store.dlq.remove(added.id)).toBe(true);
      expect(await ctx.store.dlq.remove(added.id)).toBe(false);
      expect(await ctx.store.dlq.get(added.id)).toBeNull();
    });

    it('size counts the entries', async () => {
      expect(await ctx.store.dlq.size()).toBe(0);
      const added = await Promise.all([ctx.store.dlq.add(newEntry()), ctx.store.dlq.add(newEntry()), ctx.store.dlq.add(newEntry())]);
      expect(await ctx.store.dlq.size()).toBe(3);
      await ctx.store.dlq.remove(added[1]?.id ?? '');
      expect(await ctx.store.dlq.size()).toBe(2);
    });

    describe('filtered listing', () => {
      async function addAll(entries: Partial<NewDlqEntry>[]): Promise<string[]> {
        const ids: string[] = [];
        // One at a time, so that listing order is the order given.
        for (const [i, overrides] of entries.entries()) ids.push((await ctx.store.dlq.add(newEntry({ now: ctx.t0 + i, ...overrides }))).id);
        return ids;
      }

      it('by reason', async () => {
        const ids = await addAll([{ reason: 'transient' }, { reason: 'permanent' }, { reason: 'transient' }]);
        const transient = await ctx.store.dlq.list({ limit: 10, filter: { reason: 'transient' } });
        expect(transient.items.map((e) => e.id)).toEqual([ids[0], ids[2]]);
        expect(transient.nextCursor).toBeNull();
        const permanent = await ctx.store.dlq.list({ limit: 10, filter: { reason: 'permanent' } });
        expect(permanent.items.map((e) => e.id)).toEqual([ids[1]]);
      });

      it('by last update, at or before the given time', async () => {
        const ids = await addAll([{ now: ctx.t0 }, { now: ctx.t0 + 10 }, { now: ctx.t0 + 20 }]);
        const page = await ctx.store.dlq.list({ limit: 10, filter: { updatedBefore: ctx.t0 + 10 } });
        expect(page.items.map((e) => e.id)).toEqual(ids.slice(0, 2));
      });

      it('a failed replay counts as an update', async () => {
        const [replayed, untouched] = await addAll([{ now: ctx.t0 }, { now: ctx.t0 + 1 }]);
        await ctx.store.dlq.recordFailedReplay(replayed as string, [attempt(ctx.t0 + 500, 503)], '503', 502, ctx.t0 + 500);
        const page = await ctx.store.dlq.list({ limit: 10, filter: { updatedBefore: ctx.t0 + 100 } });
        expect(page.items.map((e) => e.id)).toEqual([untouched]);
      });

      it('by redrives below a cap', async () => {
        const ids = await addAll([{ redrives: 0 }, { redrives: 3 }, { redrives: 1 }, { redrives: 2 }]);
        const page = await ctx.store.dlq.list({ limit: 10, filter: { redrivesBelow: 2 } });
        expect(page.items.map((e) => e.id)).toEqual([ids[0], ids[2]]);
      });

      it('every given field must match', async () => {
        const ids = await addAll([
          { reason: 'transient', redrives: 0, now: ctx.t0 },
          { reason: 'permanent', redrives: 0, now: ctx.t0 },
          { reason: 'transient', redrives: 5, now: ctx.t0 },
          { reason: 'transient', redrives: 0, now: ctx.t0 + 60_000 },
        ]);
        const page = await ctx.store.dlq.list({
          limit: 10,
          filter: { reason: 'transient', redrivesBelow: 5, updatedBefore: ctx.t0 + 1_000 },
        });
        expect(page.items.map((e) => e.id)).toEqual([ids[0]]);
        expect((await ctx.store.dlq.list({ limit: 10, filter: {} })).items).toHaveLength(4);
      });

      it('pages through matching entries only, with no cursor after the last match', async () => {
        const reasons = ['transient', 'permanent', 'transient', 'permanent', 'transient', 'permanent', 'transient', 'permanent'] as const;
        const ids = await addAll(reasons.map((reason) => ({ reason })));
        const transientIds = ids.filter((_, i) => reasons[i] === 'transient');

        const first = await ctx.store.dlq.list({ limit: 2, filter: { reason: 'transient' } });
        expect(first.items.map((e) => e.id)).toEqual(transientIds.slice(0, 2));
        expect(typeof first.nextCursor).toBe('string');
        const second = await ctx.store.dlq.list({ limit: 2, cursor: first.nextCursor ?? undefined, filter: { reason: 'transient' } });
        expect(second.items.map((e) => e.id)).toEqual(transientIds.slice(2));
        // A permanent entry follows the last transient one; it must not cause an empty third page.
        expect(second.nextCursor).toBeNull();
      });
    });

    describe('purgeOlderThan', () => {
      it('deletes entries last updated before the cut-off and counts them', async () => {
        const old = await ctx.store.dlq.add(newEntry({ now: ctx.t0 }));
        const atCutOff = await ctx.store.dlq.add(newEntry({ now: ctx.t0 + 10 }));
        const recent = await ctx.store.dlq.add(newEntry({ now: ctx.t0 + 20 }));

        expect(await ctx.store.dlq.purgeOlderThan(ctx.t0 + 10)).toBe(1);
        expect(await ctx.store.dlq.get(old.id)).toBeNull();
        expect(await ctx.store.dlq.get(atCutOff.id)).toEqual(atCutOff);
        expect(await ctx.store.dlq.get(recent.id)).toEqual(recent);
        expect(await ctx.store.dlq.purgeOlderThan(ctx.t0 + 10)).toBe(0);
        expect(await ctx.store.dlq.size()).toBe(2);
      });

      it('an old entry that was replayed recently is kept', async () => {
        const replayed = await ctx.store.dlq.add(newEntry({ now: ctx.t0 }));
        await ctx.store.dlq.recordFailedReplay(replayed.id, [attempt(ctx.t0 + 5_000, 503)], '503', 502, ctx.t0 + 5_000);
        expect(await ctx.store.dlq.purgeOlderThan(ctx.t0 + 1_000)).toBe(0);
        expect(await ctx.store.dlq.get(replayed.id)).not.toBeNull();
      });
    });

    dlqRedriveContract(ctx);
    dlqReplayClaimContract(ctx);
    dlqEditContract(ctx);
  });
}
