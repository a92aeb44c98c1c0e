import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawRequest } from './helpers/raw-http.js';
import { startCaptureDownstream, type CaptureDownstream } from './helpers/capture-downstream.js';
import { startTestRelay, type TestRelay } from './helpers/test-relay.js';

/**
 * Generated bad and hostile requests against every route of the relay: none may
 * get a 500 or crash it, and one the relay refuses (4xx) must change nothing it
 * stores and send nothing downstream.
 */
const RUNS = 1_500;
const SEED = 20261204;

let t: TestRelay | undefined;
let downstream: CaptureDownstream | undefined;
beforeAll(async () => {
  downstream = await startCaptureDownstream();
  t = await startTestRelay({
    routes: {
      routes: [
        { name: 'default', target: downstream.url },
        { name: 'pay', target: downstream.url, methods: ['GET', 'POST'], headers: { set: { Authorization: 'Bearer ${FUZZ_KEY}' } }, clients: ['fuzz-client-token'] },
      ],
    },
    env: { FUZZ_KEY: 'sk_fuzz_secret', MAX_BODY_BYTES: '4096', LOG_LEVEL: 'warn' },
  });
});
afterAll(async () => {
  await t?.close();
  await downstream?.close();
});

const PATHS = [
  '/relay',
  '/relay/',
  '/relay/pay',
  '/relay/pay/v1/charges',
  '/relay/nope/x',
  '/relay/batch',
  '/dlq',
  '/dlq/redrive',
  '/dlq/00000000-0000-0000-0000-000000000000',
  '/dlq/00000000-0000-0000-0000-000000000000/replay',
  '/jobs',
  '/jobs/00000000-0000-0000-0000-000000000000',
  '/routes',
  '/stats',
  '/health',
  '/ready',
];
const HOSTILE_SEGMENTS = ['..', '%2e%2e', '%2f', '%5c', '%00', '.', '', 'a', '%', '%zz', '~', ';x', '%c0%af', 'ü'];
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'TRACE', 'PROPFIND', 'QUERY'];
const HEADER_NAMES = [
  'idempotency-key',
  'x-relay-priority',
  'prefer',
  'content-type',
  'x-relay-token',
  'authorization',
  'origin',
  'sec-fetch-site',
  'forwarded',
  'x-forwarded-for',
  'connection',
  'traceparent',
  'x-request-id',
];

const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 300 });
// What node:http lets a client send in a header value: no control characters, no DEL.
const latin1 = fc.string({ unit: fc.integer({ min: 0x20, max: 0xff }).filter((c) => c !== 0x7f).map((c) => String.fromCharCode(c)), maxLength: 40 });
const headerValue = fc.oneof(
  printable,
  latin1,
  fc.constantFrom('respond-async', 'respond-async, wait=abc', 'high', 'urgent', '"quoted"', '"bad\\q"', 'application/json', 'text/plain', 'Bearer x', 'null', 'https://evil.test', 'cross-site', 'close, x-relay-token', ''),
);
const path = fc.oneof(
  fc.constantFrom(...PATHS),
  fc.tuple(fc.constantFrom(...PATHS), fc.array(fc.constantFrom(...HOSTILE_SEGMENTS), { maxLength: 4 })).map(([base, rest]) => [base, ...rest].join('/')),
  fc.tuple(fc.constantFrom(...PATHS), printable).map(([base, query]) => `${base}?${encodeURI(query).replace(/#/g, '%23')}`),
);
const jsonish = fc.oneof(
  fc.json({ maxDepth: 4 }),
  fc.constantFrom('{"items":[]}', '{"items":[{}]}', '{"items":[{"body":1e400,"bodyText":"x"}]}', '{"force":"yes"}', '[[[[[[[[[[[[', '{"reason":"nope"}', '{"limit":-1}'),
  fc.constant('['.repeat(5_000)),
);
const body = fc.oneof(jsonish, printable, fc.uint8Array({ maxLength: 5_000 }).map((bytes) => Buffer.from(bytes)));
const request = fc.record({
  method: fc.constantFrom(...METHODS),
  path,
  headers: fc.dictionary(fc.constantFrom(...HEADER_NAMES), headerValue, { maxKeys: 5 }),
  body,
});

async function storedState(): Promise<{ dlq: number; jobs: unknown; received: number }> {
  const { store } = t!.relay;
  return { dlq: await store.dlq.size(), jobs: await store.jobs.counts(), received: downstream!.requests.length };
}

/** Jobs an earlier generated request left are delivered first, so that they do not count as this one's doing. */
async function settled(): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const counts = await t!.relay.store.jobs.counts();
    if (counts.queued + counts.in_flight === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('fuzz: the HTTP surface', () => {
  it(`${RUNS} generated bad or hostile requests: never a 500, never a crash, and a refusal changes nothing stored or sent`, async () => {
    const seen = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(request, async ({ method, path: target, headers, body: payload }) => {
        await settled();
        const before = await storedState();
        const withBody = method !== 'GET' && method !== 'HEAD';
        const res = await rawRequest(t!.url, {
          method,
          path: target,
          headers: withBody ? { ...headers, 'content-length': String(Buffer.byteLength(payload)) } : headers,
          ...(withBody ? { body: payload } : {}),
        }).catch((error: unknown) => ({ status: -1, text: `${String(error)} ${JSON.stringify(headers)}` }));
        seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
        expect(res.status, `${method} ${target}: ${res.text.slice(0, 200)}`).not.toBe(500);
        expect(res.status, `${method} ${target}: ${res.text.slice(0, 300)}`).toBeGreaterThan(0);
        if (res.status >= 400 && res.status < 500) {
          expect(await storedState(), `${method} ${target} answered ${res.status}`).toEqual(before);
        }
      }),
      { numRuns: RUNS, seed: SEED },
    );
    const health = await rawRequest(t!.url, { path: '/health' });
    expect(health.status).toBe(200);
    // The generator reached refusals of many kinds, not one error path over and over.
    expect([...seen.keys()].filter((status) => status >= 400 && status < 500).length).toBeGreaterThanOrEqual(5);
    expect(JSON.stringify(t!.logs)).not.toContain('sk_fuzz_secret');
  }, 120_000);
});
