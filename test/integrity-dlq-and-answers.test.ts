import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BACKENDS, relayPost, settle, useRelays } from './helpers/integrity.js';
import { expectProblem } from './helpers/problem.js';
import { uniqueKey } from './helpers/test-relay.js';

// Issue 15, items 3 (MAX_RESPONSE_BYTES), 4 (bounded DLQ listings) and 6 (exclusive replays).

const start = useRelays();

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

/** A downstream whose answer never ends: 64 KiB chunks until the client hangs up. */
async function endlessDownstream(): Promise<{ url: string; requests: () => number }> {
  let requests = 0;
  const server = createServer((req, res) => {
    requests += 1;
    req.resume();
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const pump = () => {
      while (!res.destroyed && res.write(chunk));
      if (!res.destroyed) res.once('drain', pump);
    };
    pump();
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, requests: () => requests };
}

describe.each(BACKENDS)('MAX_RESPONSE_BYTES (%s)', (backend) => {
  it('an answer larger than MAX_RESPONSE_BYTES ends 502 RESPONSE_TOO_LARGE, its key is released (a resend is processed again), and the relay keeps serving', async () => {
    const t = await start(backend, { env: { MAX_RESPONSE_BYTES: '1024', RETRY_MAX_ATTEMPTS: '1' } });
    const key = uniqueKey('too-large');
    // The simulator echoes the body, so a 2 KB request gets a 2 KB+ answer.
    const big = { pad: 'y'.repeat(2000) };

    const first = await relayPost(t, big, { key });
    expect(expectProblem(first, 502).code).toBe('RESPONSE_TOO_LARGE');
    expect(t.sim.counters().byKey[key]).toBe(1);

    const resend = await relayPost(t, big, { key });
    expect(expectProblem(resend, 502).code).toBe('RESPONSE_TOO_LARGE');
    expect(t.sim.counters().byKey[key]).toBe(2);

    const small = await relayPost(t, { small: true }, { key: uniqueKey('small') });
    expect(small.status).toBe(200);
    expect((await t.http.get('/health')).status).toBe(200);
  });

  it('an answer that never ends is cut off at MAX_RESPONSE_BYTES: 502 RESPONSE_TOO_LARGE at once, not a timeout', async () => {
    const endless = await endlessDownstream();
    const t = await start(backend, {
      env: { DOWNSTREAM_URL: endless.url, MAX_RESPONSE_BYTES: '1048576', RETRY_MAX_ATTEMPTS: '1', DOWNSTREAM_TIMEOUT_MS: '8000' },
    });
    const startedAt = Date.now();
    const res = await relayPost(t, { n: 1 }, { key: uniqueKey('endless') });
    expect(expectProblem(res, 502).code).toBe('RESPONSE_TOO_LARGE');
    expect(Date.now() - startedAt).toBeLessThan(4_000);
    expect(endless.requests()).toBe(1);
    expect((await t.http.get('/health')).status).toBe(200);
  });
});

describe.each(BACKENDS)('bounded DLQ reads (%s)', (backend) => {
  it('GET /dlq lists summaries with bodyBytes and no body, clamps limit=500 to 100, and GET /dlq/:id has the body', async () => {
    // Every call fails at once; no breaker, so each request becomes its own DLQ entry.
    const t = await start(backend, { env: { RETRY_MAX_ATTEMPTS: '1', BREAKER_MODE: 'off' }, sim: { failRate: 1 } });
    const bodies = Array.from({ length: 101 }, (_, n) => JSON.stringify({ n, pad: 'z'.repeat(2000) }));
    for (let from = 0; from < bodies.length; from += 10) {
      const answers = await Promise.all(bodies.slice(from, from + 10).map((body) => relayPost(t, body)));
      for (const answer of answers) expect(answer.status).toBe(502);
    }

    const page = await t.http.get('/dlq').query({ limit: 500 });
    expect(page.status).toBe(200);
    const items = page.body.items as Array<Record<string, unknown>>;
    expect(items).toHaveLength(100);
    expect(page.body.nextCursor).toEqual(expect.any(String));
    for (const item of items) {
      expect(item).not.toHaveProperty('body');
      expect(item).not.toHaveProperty('bodyBase64');
      expect(item.bodyBytes).toBeGreaterThan(2000);
    }
    // Far smaller than the bodies it lists (100 x 2 KB).
    expect(page.text.length).toBeLessThan(100 * 2000);

    const one = items[0]!;
    const entry = await t.http.get(`/dlq/${String(one.id)}`);
    expect(entry.status).toBe(200);
    const shown = entry.body.body as { n: number; pad: string };
    expect(JSON.stringify(shown)).toBe(bodies[shown.n]);
    expect(one.bodyBytes).toBe(Buffer.byteLength(bodies[shown.n]!));
  });
});

describe.each(BACKENDS)('exclusive DLQ replays (%s)', (backend) => {
  it('five concurrent replays of one unkeyed entry (attempts answered 503): exactly one delivers, the others get 409 REPLAY_IN_PROGRESS or 404, and the downstream receives the replay once', async () => {
    const t = await start(backend, { env: { RETRY_MAX_ATTEMPTS: '2' } });
    t.sim.script([{ status: 503 }, { status: 503 }]);
    const failed = await relayPost(t, { anonymous: 'transfer' });
    const dlqId = expectProblem(failed, 502).dlqId as string;
    expect(dlqId).toEqual(expect.any(String));
    expect(t.sim.counters().received).toBe(2);
    // Slow enough that the five replays overlap.
    t.sim.setProfile({ latencyMs: 300, jitterMs: 0 });

    const replays = await Promise.all(
      Array.from({ length: 5 }, () => fetch(`${t.url}/dlq/${dlqId}/replay`, { method: 'POST' })),
    );
    const statuses = replays.map((r) => r.status);
    const bodies = await Promise.all(replays.map(async (r) => (await r.json()) as Record<string, unknown>));
    expect(statuses.filter((s) => s === 200), `statuses ${statuses.join(', ')}`).toHaveLength(1);
    for (const [i, status] of statuses.entries()) {
      if (status === 200) expect(bodies[i]).toMatchObject({ outcome: 'delivered', status: 200 });
      else if (status === 409) expect(bodies[i]!.code).toBe('REPLAY_IN_PROGRESS');
      else expect(status).toBe(404);
    }

    await settle(500);
    expect(t.sim.counters().received).toBe(3);
    expect((await t.http.get(`/dlq/${dlqId}`)).status).toBe(404);
  });
});
