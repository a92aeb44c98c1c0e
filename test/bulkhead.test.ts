import { afterEach, describe, expect, it } from 'vitest';
import { eventually, startTestRelay, uniqueKey, type TestRelay } from './helpers/test-relay.js';

let t: TestRelay | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

async function jobCounts(): Promise<Record<string, number>> {
  return ((await t!.http.get('/jobs')).body as { counts: Record<string, number> }).counts;
}

describe('bulkhead: JOB_MAX_SHARE keeps a share of each route for synchronous callers', () => {
  it('a backlog of jobs never holds more than its share of the workers, a synchronous request meanwhile goes at once, and the backlog drains', async () => {
    // 4 workers, half for jobs: at most 2 jobs in flight; the downstream takes 150 ms per call.
    t = await startTestRelay({ env: { WORKERS: '4', AIMD_MODE: 'off', JOB_MAX_SHARE: '0.5', JOB_POLL_MS: '20' }, sim: { latencyMs: 150, jitterMs: 0 } });
    const BACKLOG = 12;
    for (let i = 0; i < BACKLOG; i++) {
      const res = await t.http.post('/relay').set('content-type', 'application/json').set('Prefer', 'respond-async').set('Idempotency-Key', uniqueKey()).send(JSON.stringify({ i }));
      expect(res.status).toBe(202);
    }
    await eventually(() => t!.sim.counters().inFlight >= 2, 5_000, 10);
    // Two rounds of jobs later, the backlog alone has never had more than its share (2 of 4) in flight.
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(t.sim.counters().peakInFlight).toBe(2);

    // Two synchronous requests at once while the backlog runs: each finds a worker free (no queue wait).
    const started = Date.now();
    const answers = await Promise.all([0, 1].map((i) => t!.http.post('/relay').set('content-type', 'application/json').send(JSON.stringify({ sync: i }))));
    expect(answers.map((r) => r.status)).toEqual([200, 200]);
    // One call (150 ms) each, not a wait behind jobs (which would be 300 ms or more).
    expect(Date.now() - started).toBeLessThan(290);

    await eventually(async () => (await jobCounts()).delivered === BACKLOG, 15_000, 50);
    // Jobs (2) plus the two synchronous calls at most: the share held while the backlog ran.
    expect(t.sim.counters().peakInFlight).toBeLessThanOrEqual(4);
    expect(t.sim.counters().peakInFlight).toBeGreaterThanOrEqual(3);
  });

  it('a backlog alone keeps its share of the limit: AIMD counts jobs at their share as the limit used, so it does not drift down to one job', async () => {
    // 7 workers, half for jobs: 3. Before, the jobs' use (3 of 7) counted as a limit left half unused, which drifted
    // it to 5 (share 2), then 3 and 2 (share 1): a backlog on a healthy downstream ran one job at a time.
    t = await startTestRelay({ env: { WORKERS: '7', JOB_MAX_SHARE: '0.5', JOB_POLL_MS: '20' }, sim: { latencyMs: 50, jitterMs: 0 } });
    const BACKLOG = 60;
    for (let i = 0; i < BACKLOG; i++) {
      const res = await t.http.post('/relay').set('content-type', 'application/json').set('Prefer', 'respond-async').set('Idempotency-Key', uniqueKey()).send(JSON.stringify({ i }));
      expect(res.status).toBe(202);
    }
    // The second half of the backlog, long after any drift would have come: how many calls are out at once.
    await eventually(async () => ((await jobCounts()).delivered ?? 0) >= BACKLOG / 2, 10_000, 20);
    let most = 0;
    const until = Date.now() + 10_000;
    while (((await jobCounts()).delivered ?? 0) < BACKLOG - 6 && Date.now() < until) {
      most = Math.max(most, t.sim.counters().inFlight);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(most).toBe(3);
    const stats = (await t.http.get('/stats')).body as { routes: Record<string, { aimd?: { limit: number } }> };
    expect(stats.routes.default?.aimd?.limit).toBe(7);
    await eventually(async () => (await jobCounts()).delivered === BACKLOG, 10_000, 50);
  });
});
