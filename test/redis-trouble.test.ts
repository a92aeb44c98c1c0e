import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { expectProblem } from './helpers/problem.js';
import { deleteKeysWithPrefix, redisForTests, startRedisProxy, type RedisProxy } from './helpers/redis.js';
import { eventually, startTestRelay, uniqueKey, type TestRelay } from './helpers/test-relay.js';

const available = await redisForTests();

let t: TestRelay | undefined;
let proxy: RedisProxy | undefined;
let prefix: string | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
  await proxy?.close();
  proxy = undefined;
  if (prefix) await deleteKeysWithPrefix(prefix);
  prefix = undefined;
});

function keyed(key: string, body: unknown = { n: 1 }) {
  return t!.http.post('/relay').set('content-type', 'application/json').set('Idempotency-Key', key).send(JSON.stringify(body));
}

describe.skipIf(!available)('when Redis goes away (STORE=redis)', () => {
  it('/ready stays 200 warn naming the store, unkeyed requests are served, store-bound ones get 503 STORE_UNAVAILABLE at once (never a 500 or a hang), and everything works again when Redis is back, nothing lost', async () => {
    proxy = await startRedisProxy();
    prefix = `relay-test:${randomUUID()}:`;
    t = await startTestRelay({ env: { STORE: 'redis', REDIS_URL: proxy.url, REDIS_PREFIX: prefix, JOB_POLL_MS: '50' } });
    const before = uniqueKey('before');
    expect((await keyed(before)).status).toBe(200);
    const job = (await t.http.post('/relay').set('content-type', 'application/json').set('Prefer', 'respond-async').send('{"j":1}')).body as {
      jobId: string;
    };
    await eventually(async () => ((await t!.http.get(`/jobs/${job.jobId}`)).body as { state: string }).state === 'delivered');

    await proxy.close();
    // Contract: Redis is the whole fleet's, so its loss is a warning; failing readiness everywhere would drain the fleet.
    await eventually(async () => (await t!.http.get('/ready')).body.checks['store:responsive'][0].status === 'warn');
    const ready = await t.http.get('/ready');
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ status: 'warn', checks: { 'store:responsive': [{ status: 'warn', output: expect.any(String) }], 'relay:accepting': [{ status: 'pass' }] } });

    const startedAt = Date.now();
    const refused = await keyed(uniqueKey('during'));
    expect(expectProblem(refused, 503).code).toBe('STORE_UNAVAILABLE');
    expect(Date.now() - startedAt).toBeLessThan(3_000);
    expect(expectProblem(await t.http.post('/relay').set('content-type', 'application/json').set('Prefer', 'respond-async').send('{}'), 503).code).toBe(
      'STORE_UNAVAILABLE',
    );
    expectProblem(await t.http.get('/dlq'), 503);
    // A hold Redis cannot keep for the fleet is refused, not held by this instance alone.
    expect(expectProblem(await t.http.post('/admin/routes/default/pause'), 503).code).toBe('STORE_UNAVAILABLE');
    expect(t.relay.routes.control('default')).toEqual({ breaker: 'auto', paused: false });
    expectProblem(await t.http.get(`/jobs/${job.jobId}`), 503);
    // A request without a key needs no store: it still goes through.
    expect((await t.http.post('/relay').set('content-type', 'application/json').send('{}')).status).toBe(200);
    expect(t.sim.counters().received).toBe(3);

    await proxy.reopen();
    await eventually(async () => (await t!.http.get('/ready')).body.status === 'pass', 10_000);
    const replay = await keyed(before);
    expect(replay.status).toBe(200);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(((await t.http.get(`/jobs/${job.jobId}`)).body as { state: string }).state).toBe('delivered');
    expect((await keyed(uniqueKey('after'))).status).toBe(200);
  });
});
