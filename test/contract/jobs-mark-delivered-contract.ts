import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Job, StoredResponse } from '../../src/storage/types.js';
import {
  LIVE_LEASE_MS,
  buryEntry,
  expectSameBytes,
  iso,
  jobSteps,
  sampleResponse,
  success,
  type ContractContext,
} from './contract-helpers.js';

/** markDelivered: a dead job whose DLQ entry a person replayed successfully (POST /dlq/:id/replay). */
export function jobMarkDeliveredContract(ctx: ContractContext): void {
  const { enqueue, leaseAll, leaseOnly } = jobSteps(ctx);

  /** Enqueue, lease and bury one job at `at`; returns the dead job. */
  async function deadJob(at: number, response: StoredResponse | null = null): Promise<Job> {
    const job = await enqueue({ now: at });
    const { token } = await leaseOnly(at);
    const dlq = buryEntry(job, at + 10);
    const entry = await ctx.store.jobs.bury(job.id, token, { attempts: dlq.attempts, response, dlq });
    if (entry === null) throw new Error('expected the bury to hold the lease');
    const dead = await ctx.store.jobs.get(job.id);
    if (dead?.state !== 'dead') throw new Error(`expected a dead job, got ${String(dead?.state)}`);
    return dead;
  }

  describe('markDelivered', () => {
    it('turns a dead job delivered with the replay answer byte for byte, its attempts appended and its DLQ link cleared', async () => {
      const dead = await deadJob(ctx.t0);
      expect(dead.dlqId).not.toBeNull();
      expect(await ctx.store.jobs.counts()).toEqual({ queued: 0, in_flight: 0, delivered: 0, dead: 1 });

      const response = sampleResponse();
      const replay = success(ctx.t0 + 400);
      expect(await ctx.store.jobs.markDelivered(dead.id, { attempts: [replay], response, now: ctx.t0 + 500 })).toBe(true);

      const delivered = await ctx.store.jobs.get(dead.id);
      expect(delivered).toMatchObject({
        state: 'delivered',
        dlqId: null,
        attempts: [...dead.attempts, replay],
        createdAt: dead.createdAt,
        updatedAt: iso(ctx.t0 + 500),
        redrives: dead.redrives,
      });
      expect(delivered?.response?.status).toBe(201);
      expect(delivered?.response?.headers).toEqual(response.headers);
      expectSameBytes(delivered?.response?.body ?? Buffer.alloc(0), response.body);
      expect(await ctx.store.jobs.counts()).toEqual({ queued: 0, in_flight: 0, delivered: 1, dead: 0 });
      // Delivered is final: not leased again, however late.
      expect(await leaseAll(ctx.t0 + 10 * LIVE_LEASE_MS)).toEqual([]);
    });

    it('replaces the answer a permanent failure left on the dead job', async () => {
      const refused: StoredResponse = { status: 501, headers: { 'x-refused': 'yes' }, body: Buffer.from('not implemented') };
      const dead = await deadJob(ctx.t0, refused);
      expect(dead.response?.status).toBe(501);

      const response: StoredResponse = { status: 204, headers: {}, body: Buffer.alloc(0) };
      await ctx.store.jobs.markDelivered(dead.id, { attempts: [success(ctx.t0 + 100)], response, now: ctx.t0 + 100 });
      expect((await ctx.store.jobs.get(dead.id))?.response).toEqual(response);
    });

    it('a job is marked delivered only once', async () => {
      const dead = await deadJob(ctx.t0);
      const first = { attempts: [success(ctx.t0 + 100)], response: sampleResponse(), now: ctx.t0 + 100 };
      expect(await ctx.store.jobs.markDelivered(dead.id, first)).toBe(true);
      const later: StoredResponse = { status: 500, headers: {}, body: Buffer.from('later') };
      expect(await ctx.store.jobs.markDelivered(dead.id, { attempts: [success(ctx.t0 + 200)], response: later, now: ctx.t0 + 200 })).toBe(
        false,
      );
      const delivered = await ctx.store.jobs.get(dead.id);
      expect(delivered?.response?.status).toBe(201);
      expect(delivered?.attempts).toHaveLength(dead.attempts.length + 1);
      expect(delivered?.updatedAt).toBe(iso(ctx.t0 + 100));
    });

    it('purgeFinishedBefore counts a replayed job from the replay, not from its burial', async () => {
      const dead = await deadJob(ctx.t0);
      await ctx.store.jobs.markDelivered(dead.id, { attempts: [success(ctx.t0 + 5_000)], response: sampleResponse(), now: ctx.t0 + 5_000 });

      expect(await ctx.store.jobs.purgeFinishedBefore(ctx.t0 + 1_000)).toBe(0);
      expect((await ctx.store.jobs.get(dead.id))?.state).toBe('delivered');
      expect(await ctx.store.jobs.purgeFinishedBefore(ctx.t0 + 6_000)).toBe(1);
      expect(await ctx.store.jobs.get(dead.id)).toBeNull();
      expect(await ctx.store.jobs.counts()).toEqual({ queued: 0, in_flight: 0, delivered: 0, dead: 0 });
    });

    it('a queued, in-flight, delivered or unknown job returns false and changes nothing', async () => {
      const inFlight = await enqueue();
      const delivered = await enqueue();
      const tokens = new Map((await leaseAll(ctx.t0)).map((l) => [l.job.id, l.token]));
      const deliveredResponse: StoredResponse = { status: 200, headers: {}, body: Buffer.from('first') };
      await ctx.store.jobs.complete(delivered.id, tokens.get(delivered.id) ?? 'missing', {
        attempts: [success(ctx.t0 + 10)],
        response: deliveredResponse,
        now: ctx.t0 + 10,
      });
      const queued = await enqueue({ now: ctx.t0 + 20 });

      const before = await Promise.all([queued, inFlight, delivered].map((job) => ctx.store.jobs.get(job.id)));
      const countsBefore = await ctx.store.jobs.counts();
      const update = { attempts: [success(ctx.t0 + 30)], response: sampleResponse(), now: ctx.t0 + 30 };
      for (const id of [queued.id, inFlight.id, delivered.id, randomUUID()]) {
        expect(await ctx.store.jobs.markDelivered(id, update)).toBe(false);
      }

      expect(await Promise.all([queued, inFlight, delivered].map((job) => ctx.store.jobs.get(job.id)))).toEqual(before);
      expect(await ctx.store.jobs.counts()).toEqual(countsBefore);
      // The worker's lease was not broken.
      const inFlightToken = tokens.get(inFlight.id) ?? 'missing';
      expect(await ctx.store.jobs.complete(inFlight.id, inFlightToken, { ...update, now: ctx.t0 + 40 })).toBe(true);
    });
  });
}
