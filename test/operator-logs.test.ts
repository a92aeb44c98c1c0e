import { afterEach, describe, expect, it } from 'vitest';
import { expectProblem } from './helpers/problem.js';
import { eventually, startTestRelay, type TestRelay } from './helpers/test-relay.js';

let t: TestRelay | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

type Line = Record<string, unknown>;
const deadLettered = (logs: Line[]) => logs.filter((line) => typeof line.msg === 'string' && line.msg.startsWith('dead-lettered'));
const requestLines = (logs: Line[], url: string) => logs.filter((line) => (line.req as { url?: string } | undefined)?.url === url);

describe('operator logs: a dead-lettered request can be found from the log', () => {
  it('a 502 logs its DLQ entry at warn, and the request line carries the same dlqId', async () => {
    t = await startTestRelay({ env: { RETRY_MAX_ATTEMPTS: '2' } });
    t.sim.script([{ status: 503 }, { status: 503 }]);
    const res = await t.http.post('/relay').set('Content-Type', 'application/json').send('{"n":1}');
    const problem = expectProblem(res, 502) as { dlqId: string };
    expect(problem.dlqId).toEqual(expect.any(String));

    await eventually(() => deadLettered(t!.logs).length === 1 && requestLines(t!.logs, '/relay').length === 1);
    const [entryLine] = deadLettered(t.logs);
    expect(entryLine).toMatchObject({ level: 'warn', dlqId: problem.dlqId, route: 'default', status: 502, attempts: 2, reason: 'transient' });
    expect(entryLine!.msg).toContain(problem.dlqId);
    const [requestLine] = requestLines(t.logs, '/relay');
    expect(requestLine).toMatchObject({ level: 'warn', res: { statusCode: 502 }, code: 'UPSTREAM_FAILED', dlqId: problem.dlqId });
    // The id is the one the DLQ serves.
    expect((await t.http.get(`/dlq/${problem.dlqId}`)).status).toBe(200);
  });

  it('a 504 carries its dlqId on the request line too', async () => {
    t = await startTestRelay({ env: { DOWNSTREAM_TIMEOUT_MS: '150', RETRY_MAX_ATTEMPTS: '1' } });
    t.sim.script([{ hang: true }]);
    const res = await t.http.post('/relay').set('Content-Type', 'application/json').send('{"n":2}');
    const problem = expectProblem(res, 504) as { dlqId: string };
    await eventually(() => requestLines(t!.logs, '/relay').length === 1);
    expect(requestLines(t.logs, '/relay')[0]).toMatchObject({ level: 'warn', res: { statusCode: 504 }, code: 'UPSTREAM_TIMEOUT', dlqId: problem.dlqId });
    expect(deadLettered(t.logs)[0]).toMatchObject({ level: 'warn', dlqId: problem.dlqId, status: 504 });
  });

  it('an async job that dies logs its DLQ entry with the job id', async () => {
    t = await startTestRelay({ env: { JOB_MAX_ATTEMPTS: '1', JOB_POLL_MS: '20' } });
    t.sim.script([{ status: 503 }]);
    const accepted = await t.http.post('/relay').set('Content-Type', 'application/json').set('Prefer', 'respond-async').send('{"n":3}');
    expect(accepted.status).toBe(202);
    const jobId = (accepted.body as { jobId: string }).jobId;
    await eventually(() => deadLettered(t!.logs).length === 1, 5_000);
    const job = (await t.http.get(`/jobs/${jobId}`)).body as { state: string; dlqId: string };
    expect(job.state).toBe('dead');
    expect(deadLettered(t.logs)[0]).toMatchObject({ level: 'warn', dlqId: job.dlqId, jobId, route: 'default', attempts: 1 });
  });

  it('a delivered request has neither code nor dlqId on its line', async () => {
    t = await startTestRelay();
    expect((await t.http.post('/relay').set('Content-Type', 'application/json').send('{}')).status).toBe(200);
    await eventually(() => requestLines(t!.logs, '/relay').length === 1);
    const [line] = requestLines(t.logs, '/relay');
    expect(line).toMatchObject({ level: 'info', res: { statusCode: 200 } });
    expect(line).not.toHaveProperty('dlqId');
    expect(line).not.toHaveProperty('code');
    expect(deadLettered(t.logs)).toEqual([]);
  });
});

describe('operator logs: one request line per relay path, whichever handler answers it', () => {
  it('a delivered call, an unknown route, a cross-site refusal and a batch each log once, under the X-Request-Id they answered with', async () => {
    t = await startTestRelay();
    const delivered = await t.http.post('/relay/default/x?n=1').set('Content-Type', 'application/json').set('X-Request-Id', 'req-delivered').send('{}');
    expect(delivered.status).toBe(200);
    const unknown = await t.http.post('/relay/nope/x').set('Content-Type', 'application/json').set('X-Request-Id', 'req-unknown').send('{}');
    expectProblem(unknown, 404);
    const crossSite = await t.http.post('/relay').set('Content-Type', 'application/json').set('Origin', 'https://evil.example').set('X-Request-Id', 'req-cross').send('{}');
    expectProblem(crossSite, 403);
    const batch = await t.http.post('/relay/batch').set('Content-Type', 'application/json').set('X-Request-Id', 'req-batch').send({ items: [{ body: { n: 1 } }] });
    expect(batch.status).toBe(202);

    const expected = [
      { url: '/relay/default/x?n=1', id: 'req-delivered', status: 200, res: delivered },
      { url: '/relay/nope/x', id: 'req-unknown', status: 404, res: unknown, code: 'NOT_FOUND' },
      { url: '/relay', id: 'req-cross', status: 403, res: crossSite, code: 'CROSS_SITE' },
      { url: '/relay/batch', id: 'req-batch', status: 202, res: batch },
    ];
    await eventually(() => expected.every(({ url }) => requestLines(t!.logs, url).length === 1));
    for (const { url, id, status, res, code } of expected) {
      expect(res.headers['x-request-id']).toBe(id);
      const lines = requestLines(t.logs, url);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ reqId: id, res: { statusCode: status }, ...(code ? { code } : {}) });
    }
    // Nothing logged twice after a short wait either (a second listener would log on 'close').
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(expected.map(({ url }) => requestLines(t!.logs, url).length)).toEqual([1, 1, 1, 1]);
  });
});
