import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DuplicateIdError, type Job, type JobLease, type StoredResponse } from '../../src/storage/types.js';
import {
  LIVE_LEASE_MS,
  attempt,
  buryEntry,
  expectSameBytes,
  iso,
  jobSteps,
  newDlqEntry,
  newJob,
  sampleResponse,
  success,
  type ContractContext,
} from './contract-helpers.js';

/** What a worker does with a leased job (complete, reschedule, bury), and what becomes of finished jobs. */
export function jobOutcomesContract(ctx: ContractContext): void {
  const { enqueue, leaseAll, leaseOnly } = jobSteps(ctx);

  describe('complete', () => {
    it('delivers the job, appending the attempts and keeping the answer byte for byte', async () => {
      const job = await enqueue();
      const { token } = await leaseOnly(ctx.t0);
      const response = sampleResponse();
      const attempts = [success(ctx.t0 + 5)];
      expect(await ctx.store.jobs.complete(job.id, token, { attempts, response, now: ctx.t0 + 30 })).toBe(true);

      const delivered = await ctx.store.jobs.get(job.id);
      expect(delivered?.state).toBe('delivered');
      expect(delivered?.attempts).toEqual(attempts);
      expect(delivered?.updatedAt).toBe(iso(ctx.t0 + 30));
      expect(delivered?.createdAt).toBe(job.createdAt);
      expect(delivered?.response?.status).toBe(201);
      expect(delivered?.response?.headers).toEqual(response.headers);
      expectSameBytes(delivered?.response?.body ?? Buffer.alloc(0), response.body);
      // Delivered is final: not leased again, however late.
      expect(await leaseAll(ctx.t0 + 10 * LIVE_LEASE_MS)).toEqual([]);
    });

    it('an empty answer body comes back as an empty buffer', async () => {
      const job = await enqueue();
      const { token } = await leaseOnly(ctx.t0);
      const response: StoredResponse = { status: 204, headers: {}, body: Buffer.alloc(0) };
      await ctx.store.jobs.complete(job.id, token, { attempts: [success(ctx.t0)], response, now: ctx.t0 + 1 });
      expect((await ctx.store.jobs.get(job.id))?.response).toEqual(response);
    });

    it('a wrong token returns false and changes nothing', async () => {
      const job = await enqueue();
      const { token } = await leaseOnly(ctx.t0);
      const update = { attempts: [success(ctx.t0 + 5)], response: sampleResponse(), now: ctx.t0 + 30 };
      expect(await ctx.store.jobs.complete(job.id, 'not-the-token', update)).toBe(false);
      const unchanged = await ctx.store.jobs.get(job.id);
      expect(unchanged?.state).toBe('in_flight');
      expect(unchanged?.attempts).toEqual([]);
      expect(unchanged?.response).toBeNull();
      // The rightful holder can still finish.
      expect(await ctx.store.jobs.complete(job.id, token, update)).toBe(true);
    });

    it('a job is completed only once', async () => {
      const job = await enqueue();
      const { token } = await leaseOnly(ctx.t0);
      await ctx.store.jobs.complete(job.id, token, { attempts: [success(ctx.t0)], response: sampleResponse(), now: ctx.t0 + 1 });
      const later: StoredResponse = { status: 500, headers: {}, body: Buffer.from('later') };
      expect(await ctx.store.jobs.complete(job.id, token, { attempts: [success(ctx.t0 + 2)], response: later, now: ctx.t0 + 2 })).toBe(
        false,
      );
      const delivered = await ctx.store.jobs.get(job.id);
      expect(delivered?.response?.status).toBe(201);
      expect(delivered?.attempts).toHaveLength(1);
    });

    it('an unknown job id returns false', async () => {
      expect(
        await ctx.store.jobs.complete(randomUUID(), 'token', { attempts: [], response: sampleResponse(), now: ctx.t0 }),
      ).toBe(false);
    });
  });

  describe('reschedule', () => {
    it('puts the job back in the queue with its attempts, leasable only from availableAt', async () => {
      const job = await enqueue();
      const first = await leaseOnly(ctx.t0);
      const a1 = attempt(ctx.t0 + 5, 503);
      expect(
        await ctx.store.jobs.reschedule(job.id, first.token, {
          attempts: [a1],
          lastError: 'downstream answered 503',
          availableAt: ctx.t0 + 5_000,
          now: ctx.t0 + 100,
        }),
      ).toBe(true);

      const queued = await ctx.store.jobs.get(job.id);
      expect(queued).toMatchObject({
        state: 'queued',
        attempts: [a1],
        lastError: 'downstream answered 503',
        availableAt: ctx.t0 + 5_000,
        updatedAt: iso(ctx.t0 + 100),
        response: null,
      });
      expect(await leaseAll(ctx.t0 + 4_999)).toEqual([]);
      const second = await leaseOnly(ctx.t0 + 5_000);
      expect(second.token).not.toBe(first.token);

      // Attempts accumulate across leases.
      const a2 = attempt(ctx.t0 + 5_010, undefined);
      await ctx.store.jobs.reschedule(job.id, second.token, {
        attempts: [a2],
        lastError: 'ECONNREFUSED',
        availableAt: ctx.t0 + 9_000,
        now: ctx.t0 + 5_020,
      });
      const again = await ctx.store.jobs.get(job.id);
      expect(again?.attempts).toEqual([a1, a2]);
      expect(again?.lastError).toBe('ECONNREFUSED');
    });

    it('a wrong token, or a token used once already, returns false and changes nothing', async () => {
      const job = await enqueue();
      const { token } = await leaseOnly(ctx.t0);
      const update = { attempts: [attempt(ctx.t0, 503)], lastError: '503', availableAt: ctx.t0 + 1_000, now: ctx.t0 + 1 };
      expect(await ctx.store.jobs.reschedule(job.id, 'not-the-token', update)).toBe(false);
      expect((await ctx.store.jobs.get(job.id))?.state).toBe('in_flight');

      expect(await ctx.store.jobs.reschedule(job.id, token, update)).toBe(true);
      // The lease ended with the reschedule: its token cannot move the job again.
      expect(await ctx.store.jobs.reschedule(job.id, token, { ...update, availableAt: ctx.t0 })).toBe(false);
      expect(await ctx.store.jobs.complete(job.id, token, { attempts: [], response: sampleResponse(), now: ctx.t0 + 2 })).toBe(false);
      expect(await ctx.store.jobs.get(job.id)).toMatchObject({ state: 'queued', availableAt: ctx.t0 + 1_000 });
      expect((await ctx.store.jobs.get(job.id))?.attempts).toHaveLength(1);
    });
  });

  describe('bury', () => {
    it('a chosen DLQ id is taken by the entry; a taken one leaves the job leased and the DLQ unchanged', async () => {
      const job = await enqueue();
      const { token } = await leaseOnly(ctx.t0);
      const taken = await ctx.store.dlq.add(newDlqEntry(ctx.t0, { id: randomUUID() }));
      const refused = ctx.store.jobs.bury(job.id, token, { attempts: [], response: null, dlq: buryEntry(job, ctx.t0 + 10, { id: taken.id }) });
      await expect(refused).rejects.toBeInstanceOf(DuplicateIdError);
      expect(await ctx.store.jobs.get(job.id)).toMatchObject({ state: 'in_flight', dlqId: null });
      expect(await ctx.store.dlq.size()).toBe(1);

      const chosen = randomUUID();
      const entry = await ctx.store.jobs.bury(job.id, token, { attempts: [], response: null, dlq: buryEntry(job, ctx.t0 + 20, { id: chosen }) });
      expect(entry?.id).toBe(chosen);
      expect((await ctx.store.jobs.get(job.id))?.dlqId).toBe(chosen);
    });

    it('marks the job dead and adds its DLQ entry, linked both ways, in one step', async () => {
      const job = await enqueue();
      const { token } = await leaseOnly(ctx.t0);
      const dlq = buryEntry(job, ctx.t0 + 200);
      const entry = await ctx.store.jobs.bury(job.id, token, { attempts: dlq.attempts, response: null, dlq });

      expect(entry).not.toBeNull();
      if (entry === null) return;
      expect(entry).toMatchObject({
        jobId: job.id,
        redrives: 0,
        // Copied from the job, so a redrive or a replay sends the same request under the same key.
        request: job.request,
        keyScope: job.keyScope,
        reason: 'transient',
        cause: 'attempts_exhausted',
        idempotencyKey: job.idempotencyKey,
        fingerprint: job.fingerprint,
        attempts: dlq.attempts,
        lastError: 'downstream answered 503',
        status: 502,
        replays: 0,
        createdAt: iso(ctx.t0 + 200),
      });
      expect(await ctx.store.dlq.get(entry.id)).toEqual(entry);

      const dead = await ctx.store.jobs.get(job.id);
      expect(dead).toMatchObject({
        state: 'dead',
        dlqId: entry.id,
        attempts: dlq.attempts,
        response: null,
        updatedAt: iso(ctx.t0 + 200),
      });
      // Dead is final until a redrive: not leased, however late.
      expect(await leaseAll(ctx.t0 + 10 * LIVE_LEASE_MS)).toEqual([]);
    });

    it('a permanent failure keeps the downstream answer on the dead job', async () => {
      const job = await enqueue();
      const { token } = await leaseOnly(ctx.t0);
      const response: StoredResponse = { ...sampleResponse(), status: 501 };
      const dlq = buryEntry(job, ctx.t0 + 50, {
        attempts: [{ at: iso(ctx.t0 + 10), outcome: 'http_error', status: 501, durationMs: 9 }],
        lastError: 'downstream answered 501',
        status: 501,
        reason: 'permanent',
        cause: 'non_retryable',
      });
      const entry = await ctx.store.jobs.bury(job.id, token, { attempts: dlq.attempts, response, dlq });
      expect(entry).toMatchObject({ reason: 'permanent', cause: 'non_retryable', status: 501, jobId: job.id });

      const dead = await ctx.store.jobs.get(job.id);
      expect(dead?.state).toBe('dead');
      expect(dead?.response?.status).toBe(501);
      expectSameBytes(dead?.response?.body ?? Buffer.alloc(0), response.body);
    });

    it('a wrong token returns null and adds nothing to the DLQ', async () => {
      const job = await enqueue();
      const { token } = await leaseOnly(ctx.t0);
      const dlq = buryEntry(job, ctx.t0 + 10);
      expect(await ctx.store.jobs.bury(job.id, 'not-the-token', { attempts: dlq.attempts, response: null, dlq })).toBeNull();
      expect(await ctx.store.dlq.size()).toBe(0);
      expect(await ctx.store.jobs.get(job.id)).toMatchObject({ state: 'in_flight', dlqId: null, attempts: [] });

      expect(await ctx.store.jobs.bury(job.id, token, { attempts: dlq.attempts, response: null, dlq })).not.toBeNull();
      // Buried once: the same token cannot bury it twice.
      expect(await ctx.store.jobs.bury(job.id, token, { attempts: dlq.attempts, response: null, dlq })).toBeNull();
      expect(await ctx.store.dlq.size()).toBe(1);
    });
  });

  it('counts reports jobs per state, zero for states without any', async () => {
    expect(await ctx.store.jobs.counts()).toEqual({ queued: 0, in_flight: 0, delivered: 0, dead: 0 });

    const jobs: Job[] = [];
    for (let i = 0; i < 5; i++) jobs.push(await enqueue({ now: ctx.t0 + i }));
    const leases = await ctx.store.jobs.lease({ now: ctx.t0 + 10, leaseMs: LIVE_LEASE_MS, limit: 3 });
    expect(leases).toHaveLength(3);
    const [toDeliver, toBury] = leases as [JobLease, JobLease, JobLease];
    await ctx.store.jobs.complete(toDeliver.job.id, toDeliver.token, {
      attempts: [success(ctx.t0 + 20)],
      response: sampleResponse(),
      now: ctx.t0 + 20,
    });
    const dlq = buryEntry(toBury.job, ctx.t0 + 20);
    await ctx.store.jobs.bury(toBury.job.id, toBury.token, { attempts: dlq.attempts, response: null, dlq });

    expect(await ctx.store.jobs.counts()).toEqual({ queued: 2, in_flight: 1, delivered: 1, dead: 1 });
  });

  it('purgeFinishedBefore deletes delivered and dead jobs updated before the cut-off, and nothing else', async () => {
    const oldDelivered = await enqueue();
    const oldDead = await enqueue();
    const recentDelivered = await enqueue();
    const inFlight = await enqueue();
    const tokens = new Map((await leaseAll(ctx.t0)).map((l) => [l.job.id, l.token]));
    const tokenOf = (job: Job): string => tokens.get(job.id) ?? 'missing';

    await ctx.store.jobs.complete(oldDelivered.id, tokenOf(oldDelivered), {
      attempts: [success(ctx.t0 + 10)],
      response: sampleResponse(),
      now: ctx.t0 + 10,
    });
    const dlq = buryEntry(oldDead, ctx.t0 + 10);
    const entry = await ctx.store.jobs.bury(oldDead.id, tokenOf(oldDead), { attempts: dlq.attempts, response: null, dlq });
    await ctx.store.jobs.complete(recentDelivered.id, tokenOf(recentDelivered), {
      attempts: [success(ctx.t0 + 5_000)],
      response: sampleResponse(),
      now: ctx.t0 + 5_000,
    });
    const queued = await enqueue({ now: ctx.t0 + 20 });

    expect(await ctx.store.jobs.purgeFinishedBefore(ctx.t0 + 1_000)).toBe(2);
    expect(await ctx.store.jobs.get(oldDelivered.id)).toBeNull();
    expect(await ctx.store.jobs.get(oldDead.id)).toBeNull();
    expect((await ctx.store.jobs.get(recentDelivered.id))?.state).toBe('delivered');
    expect((await ctx.store.jobs.get(inFlight.id))?.state).toBe('in_flight');
    expect((await ctx.store.jobs.get(queued.id))?.state).toBe('queued');
    // The DLQ has its own retention.
    expect(entry === null ? null : (await ctx.store.dlq.get(entry.id))?.jobId).toBe(oldDead.id);
    expect(await ctx.store.jobs.purgeFinishedBefore(ctx.t0 + 1_000)).toBe(0);

    // A purged job's key scope is free again, for a job or a synchronous request.
    const reused = await ctx.store.jobs.enqueue(
      newJob(ctx.t0 + 6_000, { keyScope: oldDelivered.keyScope, fingerprint: 'another-fingerprint' }),
    );
    expect(reused.kind).toBe('created');
    const lease = { now: ctx.t0 + 6_000, leaseMs: 1_000, ttlMs: 60_000 };
    expect((await ctx.store.idempotency.reserve(oldDead.keyScope, 'another-fingerprint', lease)).kind).toBe('reserved');
  });
}
