import { describe, expect, it } from 'vitest';
import type { ReserveResult } from '../../src/storage/types.js';
import {
  LIVE_LEASE_MS,
  buryEntry,
  expectSameBytes,
  jobSteps,
  newDlqEntry,
  newJob,
  sampleResponse,
  success,
  uniqueKey,
  type ContractContext,
} from './contract-helpers.js';

/**
 * One key space for synchronous requests and jobs: a scoped key runs once, whether
 * it first came as a synchronous request, an async job or a DLQ redrive.
 */
export function keySpaceContract(ctx: ContractContext): void {
  describe('one key space across sync and async', () => {
    const { enqueue } = jobSteps(ctx);
    const lease = (now: number) => ({ now, leaseMs: 1_000, ttlMs: 60_000 });

    async function reserved(scope: string, fingerprint: string, now = ctx.t0): Promise<string> {
      const result = await ctx.store.idempotency.reserve(scope, fingerprint, lease(now));
      if (result.kind !== 'reserved') throw new Error(`expected a reservation, got ${result.kind}`);
      return result.token;
    }

    async function expectNothingQueued(): Promise<void> {
      expect(await ctx.store.jobs.counts()).toEqual({ queued: 0, in_flight: 0, delivered: 0, dead: 0 });
    }

    describe('sync first, then the same key as a job', () => {
      it('while the synchronous request runs, the same request is in flight and nothing is stored', async () => {
        const scope = uniqueKey();
        await reserved(scope, 'fp');
        const job = newJob(ctx.t0 + 10, { keyScope: scope, fingerprint: 'fp' });
        expect(await ctx.store.jobs.enqueue(job)).toEqual({ kind: 'in_flight' });
        expect(await ctx.store.jobs.get(job.id)).toBeNull();
        await expectNothingQueued();
      });

      it('once it was answered, the same request gets that answer and nothing is stored', async () => {
        const scope = uniqueKey();
        const token = await reserved(scope, 'fp');
        const response = sampleResponse();
        await ctx.store.idempotency.complete(scope, token, response, { now: ctx.t0 + 5, ttlMs: 60_000 });

        const job = newJob(ctx.t0 + 10, { keyScope: scope, fingerprint: 'fp' });
        const result = await ctx.store.jobs.enqueue(job);
        expect(result.kind).toBe('answered');
        if (result.kind !== 'answered') return;
        expect(result.response.status).toBe(response.status);
        expect(result.response.headers).toEqual(response.headers);
        expectSameBytes(result.response.body, response.body);
        expect(await ctx.store.jobs.get(job.id)).toBeNull();
        await expectNothingQueued();
      });

      it('a different body under the key is a mismatch, in flight or answered', async () => {
        const scope = uniqueKey();
        const token = await reserved(scope, 'fp-a');
        expect(await ctx.store.jobs.enqueue(newJob(ctx.t0 + 1, { keyScope: scope, fingerprint: 'fp-b' }))).toEqual({ kind: 'mismatch' });
        await ctx.store.idempotency.complete(scope, token, sampleResponse(), { now: ctx.t0 + 2, ttlMs: 60_000 });
        expect(await ctx.store.jobs.enqueue(newJob(ctx.t0 + 3, { keyScope: scope, fingerprint: 'fp-b' }))).toEqual({ kind: 'mismatch' });
        await expectNothingQueued();
      });

      it('a synchronous holder whose lease ended keeps the key: the job is told outcome_unknown and nothing is stored', async () => {
        const scope = uniqueKey();
        const token = await reserved(scope, 'fp');
        const job = newJob(ctx.t0 + 1_000, { keyScope: scope, fingerprint: 'fp' });
        expect(await ctx.store.jobs.enqueue(job)).toEqual({ kind: 'outcome_unknown' });
        expect(await ctx.store.jobs.get(job.id)).toBeNull();
        await expectNothingQueued();
        // Still the synchronous holder's: its late answer lands and is what the job is told.
        expect(await ctx.store.idempotency.complete(scope, token, sampleResponse(), { now: ctx.t0 + 1_001, ttlMs: 60_000 })).toBe(true);
        expect((await ctx.store.jobs.enqueue(newJob(ctx.t0 + 1_002, { keyScope: scope, fingerprint: 'fp' }))).kind).toBe('answered');
      });

      it('after the lease ended a different body is still a mismatch, and once forgotten the key takes a job', async () => {
        const scope = uniqueKey();
        await reserved(scope, 'fp');
        expect(await ctx.store.jobs.enqueue(newJob(ctx.t0 + 1_000, { keyScope: scope, fingerprint: 'fp-b' }))).toEqual({ kind: 'mismatch' });
        expect(await ctx.store.idempotency.forget(scope)).toBe(true);
        const created = await ctx.store.jobs.enqueue(newJob(ctx.t0 + 1_001, { keyScope: scope, fingerprint: 'fp' }));
        expect(created.kind).toBe('created');
        expect(await ctx.store.idempotency.reserve(scope, 'fp', lease(ctx.t0 + 1_002))).toMatchObject({
          kind: 'job',
          jobId: created.kind === 'created' ? created.job.id : '',
        });
      });

      it('an answer past its ttl no longer holds the key', async () => {
        const scope = uniqueKey();
        const token = await reserved(scope, 'fp-a');
        await ctx.store.idempotency.complete(scope, token, sampleResponse(), { now: ctx.t0, ttlMs: 2_000 });
        expect((await ctx.store.jobs.enqueue(newJob(ctx.t0 + 2_000, { keyScope: scope, fingerprint: 'fp-b' }))).kind).toBe('created');
      });
    });

    describe('a job first, then the same key synchronously', () => {
      it('the same request is told the job, queued and without an answer; nothing is reserved', async () => {
        const job = await enqueue();
        expect(await ctx.store.idempotency.reserve(job.keyScope, job.fingerprint, lease(ctx.t0 + 1))).toEqual({
          kind: 'job',
          jobId: job.id,
          state: 'queued',
          response: null,
        });
        // Still the job's: a reservation would have left an in-flight record behind.
        expect((await ctx.store.idempotency.reserve(job.keyScope, job.fingerprint, lease(ctx.t0 + 2))).kind).toBe('job');
      });

      it("forget leaves a job's hold on the key alone", async () => {
        const job = await enqueue();
        expect(await ctx.store.idempotency.forget(job.keyScope)).toBe(false);
        expect((await ctx.store.idempotency.reserve(job.keyScope, job.fingerprint, lease(ctx.t0 + 1))).kind).toBe('job');
      });

      it('a different body under the job key is a mismatch', async () => {
        const job = await enqueue();
        expect(await ctx.store.idempotency.reserve(job.keyScope, 'another-fingerprint', lease(ctx.t0 + 1))).toEqual({ kind: 'mismatch' });
      });

      it("an in-flight job is reported as such, and a delivered job's answer is the key's answer", async () => {
        const job = await enqueue();
        const [held] = await ctx.store.jobs.lease({ now: ctx.t0, leaseMs: LIVE_LEASE_MS, limit: 1 });
        if (held === undefined) throw new Error('expected a lease');
        expect(await ctx.store.idempotency.reserve(job.keyScope, job.fingerprint, lease(ctx.t0 + 1))).toMatchObject({
          kind: 'job',
          state: 'in_flight',
          response: null,
        });

        const response = sampleResponse();
        await ctx.store.jobs.complete(job.id, held.token, { attempts: [success(ctx.t0 + 2)], response, now: ctx.t0 + 3 });
        const result = await ctx.store.idempotency.reserve(job.keyScope, job.fingerprint, lease(ctx.t0 + 4));
        expect(result).toMatchObject({ kind: 'job', jobId: job.id, state: 'delivered' });
        const answer = (result as Extract<ReserveResult, { kind: 'job' }>).response;
        expect(answer?.status).toBe(response.status);
        expect(answer?.headers).toEqual(response.headers);
        expectSameBytes(answer?.body ?? Buffer.alloc(0), response.body);
      });

      it('a dead job still holds its key, with the definitive answer it got, if any', async () => {
        const job = await enqueue();
        const [held] = await ctx.store.jobs.lease({ now: ctx.t0, leaseMs: LIVE_LEASE_MS, limit: 1 });
        if (held === undefined) throw new Error('expected a lease');
        const response = { status: 422, headers: { 'content-type': 'application/json' }, body: Buffer.from('{"error":"no"}') };
        const dlq = buryEntry(job, ctx.t0 + 1, { reason: 'permanent', cause: 'non_retryable', status: 422 });
        await ctx.store.jobs.bury(job.id, held.token, { attempts: [], response, dlq });
        const result = await ctx.store.idempotency.reserve(job.keyScope, job.fingerprint, lease(ctx.t0 + 2));
        expect(result).toMatchObject({ kind: 'job', jobId: job.id, state: 'dead', response: { status: 422 } });
      });

      it('two clients may send the same downstream key under different scopes', async () => {
        const shared = uniqueKey();
        expect((await ctx.store.jobs.enqueue(newJob(ctx.t0, { idempotencyKey: shared }))).kind).toBe('created');
        expect((await ctx.store.jobs.enqueue(newJob(ctx.t0, { idempotencyKey: shared }))).kind).toBe('created');
        expect((await ctx.store.jobs.counts()).queued).toBe(2);
      });
    });

    describe('a redrive, then the client resends the key', () => {
      it("the job a redrive made holds the entry's key scope: a synchronous resend finds it, and so does an async one", async () => {
        const entry = await ctx.store.dlq.add(newDlqEntry(ctx.t0, { keyScope: uniqueKey(), fingerprint: 'fp' }));
        const job = await ctx.store.dlq.redrive(entry.id, { now: ctx.t0 + 1, newJobId: `job-${uniqueKey()}`, newJobKey: uniqueKey() });
        if (job === null) throw new Error('expected a redriven job');
        expect(job.keyScope).toBe(entry.keyScope);

        const scope = entry.keyScope ?? '';
        expect(await ctx.store.idempotency.reserve(scope, 'fp', lease(ctx.t0 + 2))).toEqual({
          kind: 'job',
          jobId: job.id,
          state: 'queued',
          response: null,
        });
        expect(await ctx.store.jobs.enqueue(newJob(ctx.t0 + 3, { keyScope: scope, fingerprint: 'fp' }))).toEqual({
          kind: 'existing',
          job,
        });
        expect((await ctx.store.jobs.counts()).queued).toBe(1);
      });
    });

    it('racing a synchronous reserve against an enqueue of one key, exactly one of them takes it', async () => {
      for (let round = 0; round < 5; round++) {
        const scope = uniqueKey();
        const results = await Promise.all([
          ...Array.from({ length: 5 }, () => ctx.store.idempotency.reserve(scope, 'fp', lease(ctx.t0))),
          ...Array.from({ length: 5 }, () => ctx.store.jobs.enqueue(newJob(ctx.t0, { keyScope: scope, fingerprint: 'fp' }))),
        ]);
        const winners = results.filter((r) => r.kind === 'reserved' || r.kind === 'created');
        expect(winners).toHaveLength(1);
      }
    });
  });
}
