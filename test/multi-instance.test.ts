import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { startSimulator, type SimProfile, type Simulator } from '../src/sim/simulator.js';
import { deleteKeysWithPrefix, redisForTests, redisUrl } from './helpers/redis.js';
import {
  getJob,
  killStartedRelayProcesses,
  postRelayAsync,
  startRelayProcess,
  type ListeningRelayProcess,
} from './helpers/relay-process.js';
import { eventually, healthySim } from './helpers/test-relay.js';

// Skips (with a warning) without Redis; under REQUIRE_REDIS=1 this throws and the file fails.
const redisReady = await redisForTests();

// Each test spawns two relay processes (about a second each on a busy 2-core box) and waits on real time.
const TEST_TIMEOUT_MS = 30_000;

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  // Children first: a live relay would write keys back after they are deleted.
  await killStartedRelayProcesses();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A Redis namespace no other test (or run) uses, deleted after the test. */
function freshPrefix(): string {
  const prefix = `relay-test:${randomUUID()}:`;
  cleanups.push(() => deleteKeysWithPrefix(prefix));
  return prefix;
}

/** The downstream lives in the test process, so it outlives every relay the test kills. */
async function simulator(profile: Partial<SimProfile> = {}): Promise<Simulator> {
  const sim = await startSimulator({ profile: { ...healthySim, ...profile } });
  cleanups.push(() => sim.close());
  return sim;
}

/** Two relay processes, A and B, on one Redis prefix: one relay as far as any client can tell. */
async function twoInstances(
  prefix: string,
  envA: Record<string, string>,
  envB: Record<string, string> = envA,
): Promise<[ListeningRelayProcess, ListeningRelayProcess]> {
  const shared = {
    STORE: 'redis',
    REDIS_URL: redisUrl,
    REDIS_PREFIX: prefix,
    // The warm-up ramp is tested elsewhere; here it would only slow the first calls down.
    RATE_LIMIT_WARMUP_MS: '0',
    RATE_LIMIT_RPS: '1000',
    RATE_LIMIT_BURST: '100',
  };
  return Promise.all([startRelayProcess({ ...shared, ...envA }), startRelayProcess({ ...shared, ...envB })]);
}

function relaySync(url: string, body: unknown, key: string): Promise<Response> {
  return fetch(`${url}/relay`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': key },
    body: JSON.stringify(body),
  });
}

describe.skipIf(!redisReady)('several relay instances on one Redis', () => {
  it(
    'the same key sent concurrently to two instances reaches the downstream once',
    async () => {
      // Slow enough that the second copy arrives while the first is still in flight.
      const sim = await simulator({ latencyMs: 500 });
      const [a, b] = await twoInstances(freshPrefix(), { DOWNSTREAM_URL: `${sim.url}/` });

      const outcomes: string[] = [];
      for (let i = 0; i < 3; i++) {
        const key = `concurrent-${randomUUID()}`;
        const body = { transfer: i };
        const answers = await Promise.all([relaySync(a.url, body, key), relaySync(b.url, body, key)]);
        const delivered = answers.filter((r) => r.status === 200 && r.headers.get('idempotent-replayed') === null);
        const other = answers.find((r) => !delivered.includes(r));
        expect(delivered, `statuses ${answers.map((r) => r.status).join(', ')}`).toHaveLength(1);
        expect(delivered[0]!.headers.get('x-relay-attempts')).toBe('1');
        // The loser either found the key in flight (409) or, arriving late, found the stored answer.
        if (other!.status === 409) {
          expect(other!.headers.get('retry-after')).toBe('1');
          outcomes.push('409');
        } else {
          expect(other!.status).toBe(200);
          expect(other!.headers.get('idempotent-replayed')).toBe('true');
          expect(await other!.text()).toBe(await delivered[0]!.text());
          outcomes.push('replayed');
        }
        expect(sim.counters().byKey[key]).toBe(1);

        // Once finished, either instance replays the stored answer without calling the downstream.
        const again = await relaySync(b.url, body, key);
        expect(again.status).toBe(200);
        expect(again.headers.get('idempotent-replayed')).toBe('true');
        expect(sim.counters().byKey[key]).toBe(1);
      }
      console.info(`same key on two instances at once: the second copy got ${outcomes.join(', ')}`);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'jobs and the DLQ are visible from either instance',
    async () => {
      const sim = await simulator();
      const [a, b] = await twoInstances(freshPrefix(), {
        DOWNSTREAM_URL: `${sim.url}/`,
        RETRY_MAX_ATTEMPTS: '2',
        RETRY_BASE_DELAY_MS: '10',
        RETRY_MAX_DELAY_MS: '50',
      });

      const accepted = await postRelayAsync(a.url, { ship: 'order-1' }, `job-${randomUUID()}`);
      expect(accepted.status).toBe(202);
      const { jobId } = (await accepted.json()) as { jobId: string };
      expect((await getJob(b.url, jobId))?.id).toBe(jobId);
      await eventually(async () => (await getJob(b.url, jobId))?.state === 'delivered', 10_000, 100);
      expect((await getJob(b.url, jobId))?.response).toMatchObject({ status: 200, body: { ok: true, echo: { ship: 'order-1' } } });

      sim.setProfile({ failRate: 1 });
      const key = `dlq-${randomUUID()}`;
      const failed = await relaySync(a.url, { pay: 42 }, key);
      expect(failed.status).toBe(502);
      const { dlqId } = (await failed.json()) as { dlqId: string };
      expect(dlqId).toEqual(expect.any(String));

      const list = await fetch(`${b.url}/dlq`);
      expect(list.status).toBe(200);
      const { items } = (await list.json()) as { items: Array<{ id: string; idempotencyKey: string | null; attempts: unknown[] }> };
      expect(items).toEqual([expect.objectContaining({ id: dlqId, idempotencyKey: key })]);
      expect(items[0]!.attempts).toHaveLength(2);

      sim.setProfile({ failRate: 0 });
      const replay = await fetch(`${b.url}/dlq/${dlqId}/replay`, { method: 'POST' });
      expect(replay.status).toBe(200);
      expect(await replay.json()).toMatchObject({ outcome: 'delivered', status: 200 });
      expect((await fetch(`${a.url}/dlq/${dlqId}`)).status).toBe(404);
      expect(sim.counters().byKey[key]).toBe(3);

      // The replayed delivery is now the key's stored answer, on the instance that first failed it too.
      const again = await relaySync(a.url, { pay: 42 }, key);
      expect(again.status).toBe(200);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      expect(sim.counters().byKey[key]).toBe(3);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'a job leased by an instance that dies is finished by another',
    async () => {
      // Each instance has its own (hanging) downstream, so the one the job reaches names the instance holding its lease.
      const simA = await simulator({ hangRate: 1 });
      const simB = await simulator({ hangRate: 1 });
      const LEASE_MS = 2000;
      const jobEnv = { JOB_LEASE_MS: String(LEASE_MS), DOWNSTREAM_TIMEOUT_MS: '1000', JOB_POLL_MS: '50' };
      const [a, b] = await twoInstances(
        freshPrefix(),
        { ...jobEnv, DOWNSTREAM_URL: `${simA.url}/` },
        { ...jobEnv, DOWNSTREAM_URL: `${simB.url}/` },
      );

      const key = `takeover-${randomUUID()}`;
      const accepted = await postRelayAsync(a.url, { ship: 'order-2' }, key);
      expect(accepted.status).toBe(202);
      const { jobId } = (await accepted.json()) as { jobId: string };

      // A accepted it and wakes its runner at once, so A nearly always leases it; whichever did is the one killed.
      await eventually(() => simA.counters().inFlight + simB.counters().inFlight >= 1, 5_000, 5);
      const leasedAt = Date.now();
      const holderIsA = simA.counters().inFlight >= 1;
      const [holder, survivor] = holderIsA ? [a, b] : [b, a];
      const survivorSim = holderIsA ? simB : simA;
      expect(await holder.kill('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
      expect((await getJob(survivor.url, jobId))?.state).toBe('in_flight');

      survivorSim.setProfile({ hangRate: 0 });
      const arrived: number[] = [];
      survivorSim.server.on('request', (req: { url?: string }) => {
        if (!req.url?.startsWith('/__sim/')) arrived.push(Date.now());
      });
      await eventually(async () => (await getJob(survivor.url, jobId))?.state === 'delivered', 10_000, 100);
      expect(arrived).toHaveLength(1);
      const takeoverMs = arrived[0]! - leasedAt;
      console.info(`lease takeover: ${holderIsA ? 'A' : 'B'} died holding the job; the other delivered it ${takeoverMs} ms after the lease`);

      const job = await getJob(survivor.url, jobId);
      expect(job).toMatchObject({ state: 'delivered', idempotencyKey: key, dlqId: null, response: { status: 200 } });
      // The survivor waited for the dead instance's lease to expire rather than stealing a live one.
      expect(takeoverMs).toBeGreaterThanOrEqual(LEASE_MS - 500);
      expect(survivorSim.counters().byKey[key]).toBe(1);
    },
    TEST_TIMEOUT_MS,
  );
});
