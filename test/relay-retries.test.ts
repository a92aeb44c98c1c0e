import { afterEach, describe, expect, it } from 'vitest';
import { startTestRelay, type TestRelay } from './helpers/test-relay.js';

let t: TestRelay | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

describe('POST /relay retries', () => {
  it('passes a 2xx through with X-Relay-Attempts: 1 and the downstream body', async () => {
    t = await startTestRelay();
    const res = await t.http.post('/relay').set('content-type', 'application/json').send({ order: 42 });
    expect(res.status).toBe(200);
    expect(res.headers['x-relay-attempts']).toBe('1');
    expect(res.headers['x-request-id']).toBeTruthy();
    expect(res.body).toMatchObject({ ok: true, echo: { order: 42 } });
  });

  it('retries two 503s and answers the third attempt\'s 200', async () => {
    t = await startTestRelay();
    t.sim.script([{ status: 503 }, { status: 503 }]);
    const res = await t.http.post('/relay').set('content-type', 'application/json').send({ n: 1 });
    expect(res.status).toBe(200);
    expect(res.headers['x-relay-attempts']).toBe('3');
    expect(t.sim.counters().received).toBe(3);
  });
});
