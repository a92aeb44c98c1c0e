import { describe, expect, it } from 'vitest';
import type { StoredResponse } from '../../src/storage/types.js';
import { expectSameBytes, sampleResponse, uniqueKey as key, type ContractContext } from './contract-helpers.js';

/** The idempotency half of the store contract: reserve, complete, release, expiry. */
export function idempotencyContract(ctx: ContractContext): void {
  describe('idempotency', () => {
    const lease = (now: number) => ({ now, leaseMs: 1_000, ttlMs: 60_000 });

    async function reserveToken(k: string, fingerprint: string, now: number): Promise<string> {
      const result = await ctx.store.idempotency.reserve(k, fingerprint, lease(now));
      if (result.kind !== 'reserved') throw new Error(`expected a reservation, got ${result.kind}`);
      return result.token;
    }

    it('reserves a fresh key with a token', async () => {
      const result = await ctx.store.idempotency.reserve(key(), 'fp', lease(ctx.t0));
      expect(result.kind).toBe('reserved');
      expect(result.kind === 'reserved' && result.token.length > 0).toBe(true);
    });

    it('a second request with the same fingerprint while the first is in flight is in_flight', async () => {
      const k = key();
      await reserveToken(k, 'fp', ctx.t0);
      expect(await ctx.store.idempotency.reserve(k, 'fp', lease(ctx.t0 + 10))).toEqual({ kind: 'in_flight' });
    });

    it('a different fingerprint is a mismatch while the key is in flight', async () => {
      const k = key();
      await reserveToken(k, 'fp-a', ctx.t0);
      expect(await ctx.store.idempotency.reserve(k, 'fp-b', lease(ctx.t0 + 10))).toEqual({ kind: 'mismatch' });
    });

    it('a different fingerprint is a mismatch after the key completed', async () => {
      const k = key();
      const token = await reserveToken(k, 'fp-a', ctx.t0);
      await ctx.store.idempotency.complete(k, token, sampleResponse(), { now: ctx.t0 + 10, ttlMs: 60_000 });
      expect(await ctx.store.idempotency.reserve(k, 'fp-b', lease(ctx.t0 + 20))).toEqual({ kind: 'mismatch' });
    });

    it('a completed key replays the exact status, headers and body bytes', async () => {
      const k = key();
      const token = await reserveToken(k, 'fp', ctx.t0);
      const response = sampleResponse();
      expect(await ctx.store.idempotency.complete(k, token, response, { now: ctx.t0 + 10, ttlMs: 60_000 })).toBe(true);

      const replay = await ctx.store.idempotency.reserve(k, 'fp', lease(ctx.t0 + 20));
      expect(replay.kind).toBe('completed');
      if (replay.kind !== 'completed') return;
      expect(replay.response.status).toBe(201);
      expect(replay.response.headers).toEqual(response.headers);
      expectSameBytes(replay.response.body, response.body);
    });

    it('an empty answer body replays as an empty buffer', async () => {
      const k = key();
      const token = await reserveToken(k, 'fp', ctx.t0);
      const response: StoredResponse = { status: 204, headers: {}, body: Buffer.alloc(0) };
      await ctx.store.idempotency.complete(k, token, response, { now: ctx.t0, ttlMs: 60_000 });
      const replay = await ctx.store.idempotency.reserve(k, 'fp', lease(ctx.t0 + 1));
      expect(replay.kind === 'completed' && replay.response).toEqual({ status: 204, headers: {}, body: Buffer.alloc(0) });
    });

    it('complete with a wrong token returns false and changes nothing', async () => {
      const k = key();
      const token = await reserveToken(k, 'fp', ctx.t0);
      const done = await ctx.store.idempotency.complete(k, 'not-the-token', sampleResponse(), { now: ctx.t0 + 10, ttlMs: 60_000 });
      expect(done).toBe(false);
      expect(await ctx.store.idempotency.reserve(k, 'fp', lease(ctx.t0 + 20))).toEqual({ kind: 'in_flight' });
      // The rightful holder can still finish.
      expect(await ctx.store.idempotency.complete(k, token, sampleResponse(), { now: ctx.t0 + 30, ttlMs: 60_000 })).toBe(true);
    });

    it('a key can be completed only once', async () => {
      const k = key();
      const token = await reserveToken(k, 'fp', ctx.t0);
      const first = sampleResponse();
      expect(await ctx.store.idempotency.complete(k, token, first, { now: ctx.t0, ttlMs: 60_000 })).toBe(true);
      const second: StoredResponse = { status: 500, headers: {}, body: Buffer.from('later') };
      expect(await ctx.store.idempotency.complete(k, token, second, { now: ctx.t0 + 1, ttlMs: 60_000 })).toBe(false);
      const replay = await ctx.store.idempotency.reserve(k, 'fp', lease(ctx.t0 + 2));
      expect(replay.kind === 'completed' && replay.response.status).toBe(201);
    });

    it('complete on an unknown key returns false', async () => {
      expect(await ctx.store.idempotency.complete(key(), 'token', sampleResponse(), { now: ctx.t0, ttlMs: 60_000 })).toBe(false);
    });

    it('release frees the key for the next request, whatever its body', async () => {
      const k = key();
      const token = await reserveToken(k, 'fp-a', ctx.t0);
      await ctx.store.idempotency.release(k, token);
      expect((await ctx.store.idempotency.reserve(k, 'fp-b', lease(ctx.t0 + 10))).kind).toBe('reserved');
    });

    it('release with a wrong token leaves the reservation in place', async () => {
      const k = key();
      await reserveToken(k, 'fp', ctx.t0);
      await ctx.store.idempotency.release(k, 'not-the-token');
      expect(await ctx.store.idempotency.reserve(k, 'fp', lease(ctx.t0 + 10))).toEqual({ kind: 'in_flight' });
    });

    it('release after complete keeps the stored answer', async () => {
      const k = key();
      const token = await reserveToken(k, 'fp', ctx.t0);
      await ctx.store.idempotency.complete(k, token, sampleResponse(), { now: ctx.t0, ttlMs: 60_000 });
      await ctx.store.idempotency.release(k, token);
      expect((await ctx.store.idempotency.reserve(k, 'fp', lease(ctx.t0 + 10))).kind).toBe('completed');
    });

    describe('a holder whose lease ended without an answer (outcome unknown)', () => {
      it('the same request is told outcome_unknown from the end of the lease on, and nothing is reserved', async () => {
        const k = key();
        await reserveToken(k, 'fp', ctx.t0);
        // Still leased one millisecond before the lease ends.
        expect(await ctx.store.idempotency.reserve(k, 'fp', lease(ctx.t0 + 999))).toEqual({ kind: 'in_flight' });
        expect(await ctx.store.idempotency.reserve(k, 'fp', lease(ctx.t0 + 1_000))).toEqual({ kind: 'outcome_unknown' });
        // Asking changed nothing: still unknown, not a lease someone now holds.
        expect(await ctx.store.idempotency.reserve(k, 'fp', lease(ctx.t0 + 30_000))).toEqual({ kind: 'outcome_unknown' });
      });

      it('a different body under the key is still a mismatch', async () => {
        const k = key();
        await reserveToken(k, 'fp-a', ctx.t0);
        expect(await ctx.store.idempotency.reserve(k, 'fp-b', lease(ctx.t0 + 1_000))).toEqual({ kind: 'mismatch' });
        expect(await ctx.store.idempotency.reserve(k, 'fp-a', lease(ctx.t0 + 1_001))).toEqual({ kind: 'outcome_unknown' });
      });

      it("the holder's late answer lands and becomes the key's answer", async () => {
        const k = key();
        const token = await reserveToken(k, 'fp', ctx.t0);
        expect((await ctx.store.idempotency.reserve(k, 'fp', lease(ctx.t0 + 2_000))).kind).toBe('outcome_unknown');
        const response = sampleResponse();
        expect(await ctx.store.idempotency.complete(k, token, response, { now: ctx.t0 + 3_000, ttlMs: 60_000 })).toBe(true);

        const replay = await ctx.store.idempotency.reserve(k, 'fp', lease(ctx.t0 + 3_001));
        expect(replay.kind).toBe('completed');
        if (replay.kind !== 'completed') return;
        expect(replay.response.status).toBe(response.status);
        expectSameBytes(replay.response.body, response.body);
      });

      it('only the holder can answer it late: another token changes nothing', async () => {
        const k = key();
        await reserveToken(k, 'fp', ctx.t0);
        expect(await ctx.store.idempotency.complete(k, 'not-the-token', sampleResponse(), { now: ctx.t0 + 2_000, ttlMs: 60_000 })).toBe(false);
        await ctx.store.idempotency.release(k, 'not-the-token');
        expect(await ctx.store.idempotency.reserve(k, 'fp', lease(ctx.t0 + 2_001))).toEqual({ kind: 'outcome_unknown' });
      });

      it("the holder's release frees the key", async () => {
        const k = key();
        const token = await reserveToken(k, 'fp', ctx.t0);
        await ctx.store.idempotency.release(k, token);
        expect((await ctx.store.idempotency.reserve(k, 'fp', lease(ctx.t0 + 2_000))).kind).toBe('reserved');
      });

      it("it lasts until the record's ttl ends, then the key is free whatever the body", async () => {
        const k = key();
        await reserveToken(k, 'fp-a', ctx.t0);
        expect(await ctx.store.idempotency.reserve(k, 'fp-a', lease(ctx.t0 + 59_999))).toEqual({ kind: 'outcome_unknown' });
        const next = await ctx.store.idempotency.reserve(k, 'fp-b', lease(ctx.t0 + 60_000));
        expect(next.kind).toBe('reserved');
      });

      it("forget frees it for the next request, and the old holder's token can no longer answer it", async () => {
        const k = key();
        const oldToken = await reserveToken(k, 'fp', ctx.t0);
        expect((await ctx.store.idempotency.reserve(k, 'fp', lease(ctx.t0 + 1_000))).kind).toBe('outcome_unknown');
        expect(await ctx.store.idempotency.forget(k)).toBe(true);

        const newToken = await reserveToken(k, 'fp', ctx.t0 + 1_001);
        expect(await ctx.store.idempotency.complete(k, oldToken, sampleResponse(), { now: ctx.t0 + 1_002, ttlMs: 60_000 })).toBe(false);
        await ctx.store.idempotency.release(k, oldToken);
        expect(await ctx.store.idempotency.reserve(k, 'fp', lease(ctx.t0 + 1_003))).toEqual({ kind: 'in_flight' });
        expect(await ctx.store.idempotency.complete(k, newToken, sampleResponse(), { now: ctx.t0 + 1_004, ttlMs: 60_000 })).toBe(true);
      });
    });

    it('forget drops an answered key too, and reports whether there was a record', async () => {
      const k = key();
      const token = await reserveToken(k, 'fp-a', ctx.t0);
      await ctx.store.idempotency.complete(k, token, sampleResponse(), { now: ctx.t0 + 1, ttlMs: 60_000 });
      expect(await ctx.store.idempotency.forget(k)).toBe(true);
      expect(await ctx.store.idempotency.forget(k)).toBe(false);
      expect((await ctx.store.idempotency.reserve(k, 'fp-b', lease(ctx.t0 + 2))).kind).toBe('reserved');
      expect(await ctx.store.idempotency.forget(key())).toBe(false);
    });

    it('a completed answer is not taken over when its lease time has passed', async () => {
      const k = key();
      const token = await reserveToken(k, 'fp', ctx.t0);
      await ctx.store.idempotency.complete(k, token, sampleResponse(), { now: ctx.t0 + 10, ttlMs: 60_000 });
      expect((await ctx.store.idempotency.reserve(k, 'fp', lease(ctx.t0 + 5_000))).kind).toBe('completed');
    });

    it('a record past its ttl counts as absent', async () => {
      const k = key();
      const token = await reserveToken(k, 'fp-a', ctx.t0);
      await ctx.store.idempotency.complete(k, token, sampleResponse(), { now: ctx.t0, ttlMs: 2_000 });
      expect((await ctx.store.idempotency.reserve(k, 'fp-b', lease(ctx.t0 + 1_999))).kind).toBe('mismatch');
      expect((await ctx.store.idempotency.reserve(k, 'fp-b', lease(ctx.t0 + 2_000))).kind).toBe('reserved');
    });

    it('a completed answer lives ttl from completion, not from reservation', async () => {
      const k = key();
      const token = await ctx.store.idempotency.reserve(k, 'fp', { now: ctx.t0, leaseMs: 5_000, ttlMs: 3_000 });
      if (token.kind !== 'reserved') throw new Error('expected a reservation');
      await ctx.store.idempotency.complete(k, token.token, sampleResponse(), { now: ctx.t0 + 2_500, ttlMs: 3_000 });
      expect((await ctx.store.idempotency.reserve(k, 'fp', lease(ctx.t0 + 4_000))).kind).toBe('completed');
      expect((await ctx.store.idempotency.reserve(k, 'fp', lease(ctx.t0 + 5_500))).kind).toBe('reserved');
    });

    it('purgeExpired leaves live records alone and expired ones stay absent', async () => {
      const live = key();
      const liveToken = await reserveToken(live, 'fp', ctx.t0);
      await ctx.store.idempotency.complete(live, liveToken, sampleResponse(), { now: ctx.t0, ttlMs: 60_000 });
      const inFlight = key();
      await ctx.store.idempotency.reserve(inFlight, 'fp', { now: ctx.t0, leaseMs: 30_000, ttlMs: 60_000 });
      const expired = key();
      const expiredToken = await reserveToken(expired, 'fp', ctx.t0);
      await ctx.store.idempotency.complete(expired, expiredToken, sampleResponse(), { now: ctx.t0, ttlMs: 1_000 });

      const purged = await ctx.store.idempotency.purgeExpired(ctx.t0 + 10_000);
      // Backends with native expiry may report 0; only the outcome is contractual.
      expect(Number.isInteger(purged) && purged >= 0).toBe(true);
      expect((await ctx.store.idempotency.reserve(live, 'fp', lease(ctx.t0 + 10_000))).kind).toBe('completed');
      expect((await ctx.store.idempotency.reserve(inFlight, 'fp', lease(ctx.t0 + 10_000))).kind).toBe('in_flight');
      expect((await ctx.store.idempotency.reserve(expired, 'other', lease(ctx.t0 + 10_000))).kind).toBe('reserved');
    });

    it('twenty concurrent reserves of one key produce exactly one reservation', async () => {
      const k = key();
      const results = await Promise.all(
        Array.from({ length: 20 }, () => ctx.store.idempotency.reserve(k, 'fp', lease(ctx.t0))),
      );
      expect(results.filter((r) => r.kind === 'reserved')).toHaveLength(1);
      expect(results.filter((r) => r.kind === 'in_flight')).toHaveLength(19);
    });

    it('keys are independent of each other', async () => {
      const a = key();
      const b = key();
      await reserveToken(a, 'fp', ctx.t0);
      expect((await ctx.store.idempotency.reserve(b, 'fp', lease(ctx.t0))).kind).toBe('reserved');
    });
  });
}
