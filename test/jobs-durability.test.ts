import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { useProcessTestScope } from './helpers/process-test-scope.js';
import { getJob, jobCounts, postRelayAsync, startRelayProcess } from './helpers/relay-process.js';
import { eventually } from './helpers/test-relay.js';

// Each test spawns two relay processes (about a second each on a busy 2-core box) and waits on real time.
const TEST_TIMEOUT_MS = 40_000;

const { tempDb, simulator } = useProcessTestScope('relay-jobs-durability');

/** Accepts `keys.length` async jobs, `concurrency` requests at a time; asserts every one got its 202. */
async function enqueue(url: string, keys: string[], concurrency: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < keys.length; i += concurrency) {
    const chunk = keys.slice(i, i + concurrency);
    const answers = await Promise.all(chunk.map((key, j) => postRelayAsync(url, { order: i + j }, key)));
    for (const res of answers) {
      expect(res.status).toBe(202);
      expect(res.headers.get('preference-applied')).toBe('respond-async');
      const { jobId } = (await res.json()) as { jobId: string };
      expect(res.headers.get('location')).toBe(`/jobs/${jobId}`);
      ids.push(jobId);
    }
  }
  return ids;
}

const leaseEnv = {
  // A dead relay's leases expire after 2 s, so the restarted one takes its in-flight jobs over quickly.
  JOB_LEASE_MS: '2000',
  DOWNSTREAM_TIMEOUT_MS: '1000',
  JOB_POLL_MS: '50',
};

describe('async jobs across kill -9', () => {
  it(
    'a backlog accepted with 202 survives kill -9 and is delivered after restart, none lost',
    async () => {
      const SQLITE_PATH = tempDb();
      const sim = await simulator({ latencyMs: 200 });
      const WORKERS_A = 2;
      const first = await startRelayProcess({
        SQLITE_PATH,
        DOWNSTREAM_URL: `${sim.url}/`,
        ...leaseEnv,
        // Two slow deliveries at a time: about 10 a second, so a backlog builds behind them.
        WORKERS: String(WORKERS_A),
        RATE_LIMIT_RPS: '20',
        RATE_LIMIT_BURST: '2',
        RATE_LIMIT_WARMUP_MS: '0',
      });

      const keys = Array.from({ length: 60 }, (_, i) => `kill9-${randomUUID()}-${i}`);
      const ids = await enqueue(first.url, keys, 20);
      expect(new Set(ids).size).toBe(60);

      // Kill while deliveries are in flight, after a few were already delivered.
      await eventually(() => {
        const c = sim.counters();
        return (c.answered['200'] ?? 0) >= 5 && c.inFlight >= 1;
      }, 10_000, 5);
      const justBefore = sim.counters();
      expect(await first.kill('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
      // Read after the exit: a call the dead relay started in between is counted as reached.
      const reachedBeforeKill = new Set(Object.keys(sim.counters().byKey));
      const inFlightAtKill = justBefore.inFlight;
      const deliveredBeforeKill = justBefore.answered['200'] ?? 0;

      sim.setProfile({ latencyMs: 5 });
      const second = await startRelayProcess({
        SQLITE_PATH,
        DOWNSTREAM_URL: `${sim.url}/`,
        ...leaseEnv,
        RATE_LIMIT_RPS: '1000',
        RATE_LIMIT_BURST: '100',
        RATE_LIMIT_WARMUP_MS: '0',
      });
      const restartedAt = Date.now();

      await eventually(async () => (await jobCounts(second.url)).delivered === 60, 20_000, 100);
      const drainMs = Date.now() - restartedAt;
      expect(await jobCounts(second.url)).toMatchObject({ queued: 0, in_flight: 0, delivered: 60, dead: 0 });
      for (const [i, id] of ids.entries()) {
        const job = await getJob(second.url, id);
        expect(job, `job ${id}`).toMatchObject({ id, state: 'delivered', idempotencyKey: keys[i], dlqId: null });
        expect(job!.response?.status).toBe(200);
      }

      // At least once: every key reached the downstream; a second delivery only for a job the dead relay held.
      const { byKey, received } = sim.counters();
      for (const key of keys) expect(byKey[key], key).toBeGreaterThanOrEqual(1);
      const duplicated = keys.filter((key) => byKey[key]! > 1);
      for (const key of duplicated) {
        expect(reachedBeforeKill.has(key), `${key} was delivered twice but never reached the downstream before the kill`).toBe(true);
        expect(byKey[key]).toBe(2);
      }
      expect(duplicated.length).toBeLessThanOrEqual(WORKERS_A);
      expect(received).toBe(60 + duplicated.length);
      console.info(
        `kill -9 backlog: delivered before kill ${deliveredBeforeKill}, in flight at kill ${inFlightAtKill}, ` +
          `duplicates after restart ${duplicated.length}, drain after restart ${drainMs} ms`,
      );
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'after a restart with a backlog, delivery starts slow and ramps up',
    async () => {
      const SQLITE_PATH = tempDb();
      // Relay A's downstream never answers and A has one worker: it holds at most one job, the rest stay queued.
      const stuck = await simulator({ hangRate: 1 });
      const first = await startRelayProcess({
        SQLITE_PATH,
        DOWNSTREAM_URL: `${stuck.url}/`,
        ...leaseEnv,
        WORKERS: '1',
        JOB_RETRY_BASE_DELAY_MS: '0',
        JOB_RETRY_MAX_DELAY_MS: '0',
      });
      const BACKLOG = 200;
      const keys = Array.from({ length: BACKLOG }, (_, i) => `ramp-${randomUUID()}-${i}`);
      await enqueue(first.url, keys, 25);
      await first.kill('SIGKILL');

      const healthy = await simulator();
      const arrivals: number[] = [];
      healthy.server.on('request', (req: { url?: string }) => {
        if (!req.url?.startsWith('/__sim/')) arrivals.push(Date.now());
      });
      const second = await startRelayProcess({
        SQLITE_PATH,
        DOWNSTREAM_URL: `${healthy.url}/`,
        ...leaseEnv,
        // Unlimited, this backlog would be gone in well under a second.
        RATE_LIMIT_BURST: '2',
        RATE_LIMIT_WARMUP_START_RPS: '2',
        RATE_LIMIT_RPS: '100',
        RATE_LIMIT_WARMUP_MS: '5000',
      });
      const startedLog = second.logs.find((line) => typeof line.port === 'number');

      // Bounded: at the ramp's rates the whole backlog takes about 5 s.
      await eventually(() => arrivals.length >= BACKLOG, 15_000, 100);
      await eventually(async () => (await jobCounts(second.url)).delivered === BACKLOG, 5_000, 100);

      const t0 = arrivals[0]!;
      const inSecond = (n: number) => arrivals.filter((t) => t >= t0 + n * 1000 && t < t0 + (n + 1) * 1000).length;
      const perSecond = [0, 1, 2, 3, 4].map(inSecond);
      console.info(
        `ramp after restart: deliveries per second from the first one ${JSON.stringify(perSecond)}, ` +
          `first delivery ${t0 - Number(startedLog?.time ?? t0)} ms after the listening log line`,
      );
      // Expected about 2 + 2 + 20 ≈ 24 in the first second and ≈ 51 in the third (rate = 2 + 19.6 t per s).
      expect(perSecond[0]).toBeLessThanOrEqual(30);
      expect(perSecond[2]).toBeGreaterThanOrEqual(35);
      expect(perSecond[2]).toBeGreaterThanOrEqual(2 * perSecond[0]!);
    },
    TEST_TIMEOUT_MS,
  );
});
