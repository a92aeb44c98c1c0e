import { Client } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestRelay, type TestRelay } from './helpers/test-relay.js';

let t: TestRelay | undefined;
let client: Client | undefined;
afterEach(async () => {
  await client?.close();
  client = undefined;
  await t?.close();
  t = undefined;
});

/**
 * The server main.ts runs (createRelayServer): requests are born with Express's
 * prototypes, relayed calls skip Express's router, everything else goes through
 * it. One keep-alive connection carries both kinds in turn.
 */
describe('the relay server: relayed calls and the other routes on one connection', () => {
  it('answers each request as its route does, with its own X-Request-Id, over one socket', async () => {
    t = await startTestRelay();
    client = new Client(t.url, { pipelining: 1 });
    let connects = 0;
    client.on('connect', () => connects++);
    const send = async (method: 'GET' | 'POST', path: string, id: string) => {
      const res = await client!.request({
        method,
        path,
        headers: { 'content-type': 'application/json', 'x-request-id': id },
        ...(method === 'POST' ? { body: JSON.stringify({ id }) } : {}),
      });
      const text = await res.body.text();
      return { status: res.statusCode, type: String(res.headers['content-type']), requestId: res.headers['x-request-id'], text };
    };

    const answers = [
      await send('POST', '/relay', 'r1'),
      await send('GET', '/health', 'h1'),
      await send('POST', '/relay/nope', 'r2'),
      await send('GET', '/no-such-page', 'n1'),
      await send('GET', '/stats', 's1'),
      await send('POST', '/relay/default/a?b=1', 'r3'),
    ];
    expect(answers.map((a) => [a.status, a.requestId])).toEqual([
      [200, 'r1'],
      [200, 'h1'],
      [404, 'r2'],
      [404, 'n1'],
      [200, 's1'],
      [200, 'r3'],
    ]);
    // The downstream's answer came back as it was sent (the simulator echoes the body and the request id).
    expect(JSON.parse(answers[0]!.text)).toMatchObject({ ok: true, echo: { id: 'r1' }, requestId: 'r1' });
    expect(answers[2]!.type).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(answers[2]!.text)).toMatchObject({ status: 404, detail: expect.stringContaining('nope') });
    expect(answers[3]!.type).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(answers[4]!.text)).toHaveProperty('routes');
    expect(t.sim.counters().received).toBe(2);
    expect(connects).toBe(1);
  });
});
