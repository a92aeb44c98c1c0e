import { randomUUID } from 'node:crypto';
import { afterEach, expect } from 'vitest';
import { deleteKeysWithPrefix, redisForTests, redisUrl } from './redis.js';
import { eventually, startTestRelay, type TestRelay } from './test-relay.js';

/**
 * Shared set-up of the issue-15 integrity tests (test/integrity-*.test.ts): the
 * store backends each storage-bound promise is proved on, relays started on one
 * of them with a namespace of their own, and the few requests every file sends.
 * Only helpers that existed before issue 15 are imported, so the same files run
 * against the old code and show what it did.
 */

export type Backend = 'sqlite' | 'redis';

// Skips the Redis half with a warning without Redis; under REQUIRE_REDIS=1 this throws and the file fails.
const redisReady = await redisForTests();

/** Every backend a storage-bound behaviour is proved on (SQLite always; Redis when it answers). */
export const BACKENDS: readonly Backend[] = redisReady ? ['sqlite', 'redis'] : ['sqlite'];

type StartOptions = NonNullable<Parameters<typeof startTestRelay>[0]>;

/**
 * Returns a starter of relays on a given backend, each closed after the test;
 * a Redis relay gets a REDIS_PREFIX no other test uses, deleted afterwards.
 * Call at file or describe level.
 */
export function useRelays(): (backend: Backend, options?: StartOptions) => Promise<TestRelay> {
  const relays: TestRelay[] = [];
  const prefixes: string[] = [];
  afterEach(async () => {
    for (const relay of relays.splice(0)) await relay.close();
    for (const prefix of prefixes.splice(0)) await deleteKeysWithPrefix(prefix);
  });
  return async (backend, options = {}) => {
    let storeEnv: Record<string, string> = {};
    if (backend === 'redis') {
      const prefix = `relay-test:integrity:${randomUUID()}:`;
      prefixes.push(prefix);
      storeEnv = { STORE: 'redis', REDIS_URL: redisUrl, REDIS_PREFIX: prefix };
    }
    const relay = await startTestRelay({ ...options, env: { ...storeEnv, ...options.env } });
    relays.push(relay);
    return relay;
  };
}

export interface RelayCall {
  key?: string;
  /** `Prefer: respond-async`. */
  async?: boolean;
  headers?: Record<string, string>;
  /** Path after `/relay` (query included), e.g. `?api_key=x`. */
  tail?: string;
}

/** `POST /relay` with a JSON body (a string is sent as it is). */
export function relayPost(t: TestRelay, body: unknown, call: RelayCall = {}) {
  const req = t.http.post(`/relay${call.tail ?? ''}`).set('content-type', 'application/json');
  if (call.key !== undefined) req.set('Idempotency-Key', call.key);
  if (call.async) req.set('Prefer', 'respond-async');
  for (const [name, value] of Object.entries(call.headers ?? {})) req.set(name, value);
  return req.send(typeof body === 'string' ? body : JSON.stringify(body));
}

export interface JobBody {
  id: string;
  state: string;
  response: { status: number; body: unknown } | null;
}

/** Polls `GET /jobs/:id` until the job is in `state`; returns it. */
export async function waitForJobState(t: TestRelay, jobId: string, state: string, timeoutMs = 8_000): Promise<JobBody> {
  let job: JobBody | undefined;
  try {
    await eventually(async () => {
      const res = await t.http.get(`/jobs/${jobId}`);
      job = res.body as JobBody;
      return res.status === 200 && job.state === state;
    }, timeoutMs, 25);
  } catch {
    throw new Error(`job ${jobId} did not reach ${state} within ${timeoutMs} ms; last seen: ${JSON.stringify(job)}`);
  }
  return job!;
}

/** `GET /jobs` (admin, loopback): jobs per state. */
export async function jobCounts(t: TestRelay): Promise<Record<string, number>> {
  const res = await t.http.get('/jobs');
  expect(res.status, `GET /jobs answered ${res.status}: ${res.text}`).toBe(200);
  return (res.body as { counts: Record<string, number> }).counts;
}

/** How many jobs the store holds, whatever their state. */
export async function jobTotal(t: TestRelay): Promise<number> {
  return Object.values(await jobCounts(t)).reduce((sum, n) => sum + n, 0);
}

/** How many DLQ entries `GET /dlq` lists (up to 100). */
export async function dlqSize(t: TestRelay): Promise<number> {
  const res = await t.http.get('/dlq').query({ limit: 100 });
  expect(res.status).toBe(200);
  return (res.body as { items: unknown[] }).items.length;
}

/** Waits `ms` of real time: for work that should NOT happen (a late delivery) to have had its chance. */
export function settle(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
