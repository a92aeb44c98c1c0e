import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import type { AttemptRecord, Job, JobDlqEntry, JobLease, NewDlqEntry, NewJob, RelayStore, RequestTarget, StoredResponse } from '../../src/storage/types.js';

/** What each part of the contract suite sees: the store under test and a base time, both set per test. */
export interface ContractContext {
  readonly store: RelayStore;
  /** Epoch ms near real time, fixed for the test; every `now` is an offset from it. */
  readonly t0: number;
}

/** A key no other test (or earlier run against a shared backend) can have used. */
export const uniqueKey = (): string => `contract-${randomUUID()}`;

/**
 * Longer than any test runs: a backend that judges lease expiry by its own clock
 * (Redis) and one that uses `now` (SQLite) then agree that the lease is live.
 */
export const LIVE_LEASE_MS = 60_000;

export const iso = (ms: number): string => new Date(ms).toISOString();

/** Real waiting, for what a backend judges by its own clock (Redis lease expiry). */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** An answer with bytes that would not survive a text round trip. */
export function sampleResponse(): StoredResponse {
  // Sliced out of a larger buffer: a backend must store the view, not the pool behind it.
  const backing = Buffer.from([0xde, 0xad, 0x00, 0xff, 0xfe, 0x7b, 0x22, 0xc3, 0xa9, 0x22, 0x7d, 0x00, 0xbe, 0xef]);
  return {
    status: 201,
    headers: { 'content-type': 'application/octet-stream' },
    body: backing.subarray(2, 12),
  };
}

/** A failed attempt: an HTTP error with `status`, or a connection error without one. */
export function attempt(at: number, status: number | undefined): AttemptRecord {
  return status === undefined
    ? { at: new Date(at).toISOString(), outcome: 'connection_error', durationMs: 12, error: 'ECONNREFUSED' }
    : { at: new Date(at).toISOString(), outcome: 'http_error', status, durationMs: 37 };
}

/** A successful attempt (what precedes `complete`). */
export const success = (at: number): AttemptRecord => ({ at: iso(at), outcome: 'success', status: 201, durationMs: 23 });

/** Same bytes, and really a Buffer (not a string or a plain Uint8Array). */
export function expectSameBytes(actual: Buffer, expected: Buffer): void {
  expect(Buffer.isBuffer(actual)).toBe(true);
  expect(actual.length).toBe(expected.length);
  // equals() rather than toEqual on 200 kB: a failure message of that size helps nobody.
  expect(actual.equals(expected)).toBe(true);
}

/** A request target that is not the legacy one, with a raw query, so a backend that drops or rewrites it shows. */
export const sampleTarget = (): RequestTarget => ({ route: 'payments', method: 'PUT', path: '/v1/charges/ch%2F1?expand=x&a=%C3%A9' });

/** A dead letter from a synchronous request (no job), with its own random key. */
export function newDlqEntry(now: number, overrides: Partial<NewDlqEntry> = {}): NewDlqEntry {
  return {
    request: sampleTarget(),
    keyScope: `scope-${uniqueKey()}`,
    idempotencyKey: uniqueKey(),
    fingerprint: `sha256-${randomUUID()}`,
    body: Buffer.from('{"order":42}'),
    headers: { 'content-type': 'application/json', 'x-request-id': randomUUID() },
    attempts: [attempt(now, 503), attempt(now + 120, 503)],
    lastError: 'downstream answered 503',
    status: 502,
    reason: 'transient',
    cause: 'attempts_exhausted',
    jobId: null,
    redrives: 0,
    now,
    ...overrides,
  };
}

/** A normal-priority job with its own random id and key, and a body that is not valid UTF-8. */
export function newJob(now: number, overrides: Partial<NewJob> = {}): NewJob {
  return {
    id: randomUUID(),
    request: { route: 'default', method: 'PATCH', path: '/orders/7?x=1' },
    keyScope: `scope-${uniqueKey()}`,
    idempotencyKey: uniqueKey(),
    fingerprint: `sha256-${randomUUID()}`,
    body: Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0xa9, 0x00, 0xff, 0x22, 0x7d]),
    headers: { 'content-type': 'application/json', 'x-request-id': randomUUID() },
    priority: 'normal',
    now,
    ...overrides,
  };
}

/** What a worker hands `bury` for `job`: the DLQ half, minus what the store fills in itself. */
export function buryEntry(
  job: Job,
  now: number,
  overrides: Partial<JobDlqEntry> = {},
): JobDlqEntry {
  return {
    idempotencyKey: job.idempotencyKey,
    fingerprint: job.fingerprint,
    body: job.body,
    headers: job.headers,
    attempts: [attempt(now - 200, 503), attempt(now, 503)],
    lastError: 'downstream answered 503',
    status: 502,
    reason: 'transient',
    cause: 'attempts_exhausted',
    now,
    ...overrides,
  };
}

/** The steps most job tests start with, bound to the store under test. */
export function jobSteps(ctx: ContractContext): {
  enqueue(overrides?: Partial<NewJob>): Promise<Job>;
  leaseAll(now: number, leaseMs?: number): Promise<JobLease[]>;
  leaseOnly(now: number, leaseMs?: number): Promise<JobLease>;
} {
  /** Enqueue a new job (at `t0` unless `now` is given); throws unless it was created. */
  async function enqueue(overrides: Partial<NewJob> = {}): Promise<Job> {
    const result = await ctx.store.jobs.enqueue(newJob(ctx.t0, overrides));
    if (result.kind !== 'created') throw new Error(`expected a new job, got ${result.kind}`);
    return result.job;
  }

  /** Lease everything available at `now` (the store is fresh, so only this test's jobs). */
  const leaseAll = (now: number, leaseMs = LIVE_LEASE_MS): Promise<JobLease[]> =>
    ctx.store.jobs.lease({ now, leaseMs, limit: 100 });

  /** Lease at `now`, expecting exactly one job to be available. */
  async function leaseOnly(now: number, leaseMs = LIVE_LEASE_MS): Promise<JobLease> {
    const leases = await leaseAll(now, leaseMs);
    expect(leases).toHaveLength(1);
    const [only] = leases;
    if (only === undefined) throw new Error('expected one lease');
    return only;
  }

  return { enqueue, leaseAll, leaseOnly };
}
