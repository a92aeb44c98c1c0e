import { describe, expect, it } from 'vitest';
import { BACKENDS, dlqSize, jobTotal, relayPost, settle, useRelays } from './helpers/integrity.js';
import { expectProblem } from './helpers/problem.js';
import { uniqueKey } from './helpers/test-relay.js';

// Issue 15, item 2: quotas on everything stored; full is a refusal, never a silent drop.

const start = useRelays();

/**
 * A downstream that answers 503 to everything, and a job schedule that waits a
 * minute before trying again: accepted jobs stay queued for the whole test.
 */
const stuckJobs = {
  RETRY_MAX_ATTEMPTS: '1',
  JOB_POLL_MS: '20',
  JOB_RETRY_BASE_DELAY_MS: '60000',
  JOB_RETRY_MAX_DELAY_MS: '60000',
  JOB_MAX_ATTEMPTS: '50',
};
const failing = { failRate: 1, failStatus: 503 as const };

function expectRetryAfter(res: { headers: Record<string, string | string[] | undefined> }): void {
  const retryAfter = String(res.headers['retry-after']);
  expect(retryAfter).toMatch(/^\d+$/);
  expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
}

describe.each(BACKENDS)('quotas on stored work (%s)', (backend) => {
  it('with JOB_QUEUE_MAX=3 and three jobs waiting, the 4th async request gets 429 JOB_QUEUE_FULL with Retry-After and nothing is stored', async () => {
    const t = await start(backend, { env: { ...stuckJobs, JOB_QUEUE_MAX: '3' }, sim: failing });
    for (let n = 0; n < 3; n++) {
      expect((await relayPost(t, { n }, { key: uniqueKey('quota'), async: true })).status).toBe(202);
    }

    const fourthKey = uniqueKey('quota-4th');
    const fourth = await relayPost(t, { n: 4 }, { key: fourthKey, async: true });
    expect(expectProblem(fourth, 429).code).toBe('JOB_QUEUE_FULL');
    expectRetryAfter(fourth);

    await settle(200);
    expect(await jobTotal(t)).toBe(3);
    expect(t.sim.counters().byKey[fourthKey]).toBeUndefined();
    // The refused key was not taken: once the downstream is healthy, it is processed as new.
    t.sim.setProfile({ failRate: 0 });
    const sync = await relayPost(t, { n: 4 }, { key: fourthKey });
    expect(sync.status).toBe(200);
    expect(sync.headers['idempotent-replayed']).toBeUndefined();
  });

  it('with JOB_QUEUE_MAX_BYTES=100 and 80 bytes waiting, a 40-byte async request gets 429 JOB_QUEUE_FULL with Retry-After and nothing is stored', async () => {
    const t = await start(backend, { env: { ...stuckJobs, JOB_QUEUE_MAX_BYTES: '100' }, sim: failing });
    const forty = (n: number) => `{"n":${n},"pad":"${'x'.repeat(40 - 16)}"}`;
    expect(forty(1)).toHaveLength(40);
    expect((await relayPost(t, forty(1), { key: uniqueKey('bytes'), async: true })).status).toBe(202);
    expect((await relayPost(t, forty(2), { key: uniqueKey('bytes'), async: true })).status).toBe(202);

    const thirdKey = uniqueKey('bytes-3rd');
    const third = await relayPost(t, forty(3), { key: thirdKey, async: true });
    expect(expectProblem(third, 429).code).toBe('JOB_QUEUE_FULL');
    expectRetryAfter(third);

    await settle(200);
    expect(await jobTotal(t)).toBe(2);
    expect(t.sim.counters().byKey[thirdKey]).toBeUndefined();
  });

  it('with DLQ_MAX=1 and one entry in the DLQ, a new async request gets 507 DLQ_FULL and nothing is stored; synchronous requests are still served', async () => {
    const t = await start(backend, { env: { RETRY_MAX_ATTEMPTS: '1', DLQ_MAX: '1', JOB_POLL_MS: '20' } });
    t.sim.script([{ status: 503 }]);
    expect(expectProblem(await relayPost(t, { dead: 1 }), 502).dlqId).toEqual(expect.any(String));
    expect(await dlqSize(t)).toBe(1);

    const key = uniqueKey('dlq-full');
    const refused = await relayPost(t, { later: 1 }, { key, async: true });
    expect(expectProblem(refused, 507).code).toBe('DLQ_FULL');

    await settle(200);
    expect(await jobTotal(t)).toBe(0);
    expect(t.sim.counters().byKey[key]).toBeUndefined();
    expect((await relayPost(t, { now: 1 })).status).toBe(200);
  });

  it('a batch of 5 with JOB_QUEUE_MAX=3 stores 3 items and answers the other 2 with 429 JOB_QUEUE_FULL (207)', async () => {
    const t = await start(backend, { env: { ...stuckJobs, JOB_QUEUE_MAX: '3' }, sim: failing });
    const items = Array.from({ length: 5 }, (_, n) => `{"idempotencyKey":"${uniqueKey('batch-quota')}","body":{"n":${n}}}`);
    const res = await t.http.post('/relay/batch').set('content-type', 'application/json').send(`{"items":[${items.join(',')}]}`);
    expect(res.status).toBe(207);
    const answers = (res.body as { items: Array<{ status: number; problem?: { code: string } }> }).items;
    expect(answers.map((a) => a.status)).toEqual([202, 202, 202, 429, 429]);
    expect(answers[4]!.problem?.code).toBe('JOB_QUEUE_FULL');
    await settle(200);
    expect(await jobTotal(t)).toBe(3);
  });

  it('with DLQ_MAX_BYTES=1000 and a 1200-byte entry in the DLQ, a new async request gets 507 DLQ_FULL', async () => {
    const t = await start(backend, { env: { RETRY_MAX_ATTEMPTS: '1', DLQ_MAX_BYTES: '1000', JOB_POLL_MS: '20' } });
    t.sim.script([{ status: 503 }]);
    expectProblem(await relayPost(t, { pad: 'q'.repeat(1200) }), 502);
    expect(await dlqSize(t)).toBe(1);
    const refused = await relayPost(t, { small: 1 }, { key: uniqueKey('dlq-bytes'), async: true });
    expect(expectProblem(refused, 507).code).toBe('DLQ_FULL');
    expect(await jobTotal(t)).toBe(0);
  });
});
