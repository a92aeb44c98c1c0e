import { afterEach, describe, expect, it } from 'vitest';
import type { Clock } from '../src/clock.js';
import { quotaPolicy } from '../src/http/rate-limit-headers.js';
import { startSimulator, type Simulator } from '../src/sim/simulator.js';
import { expectProblem } from './helpers/problem.js';
import { eventually, healthySim, startTestRelay, type TestRelay } from './helpers/test-relay.js';

// IETF httpapi-ratelimit-headers (draft 08 and later), as the contract's
// "Operator console and control" words them.

let t: TestRelay | undefined;
const sims: Simulator[] = [];
afterEach(async () => {
  await t?.close();
  t = undefined;
  await Promise.all(sims.splice(0).map((sim) => sim.close()));
});

async function simulator(profile: Parameters<typeof startSimulator>[0] = {}): Promise<Simulator> {
  const sim = await startSimulator({ ...profile, profile: { ...healthySim, ...profile.profile } });
  sims.push(sim);
  return sim;
}

/** A clock that moves only when told: token counts become exact. */
function manualClock(): Clock & { advance(ms: number): void } {
  let now = Date.now();
  return { now: () => now, advance: (ms) => void (now += ms) };
}

function rateLimit(res: { headers: Record<string, unknown> }): { r: number; t: number } {
  const match = /^"limited";r=(\d+);t=(\d+)$/.exec(String(res.headers.ratelimit));
  if (!match) throw new Error(`RateLimit header is ${JSON.stringify(res.headers.ratelimit)}`);
  return { r: Number(match[1]), t: Number(match[2]) };
}

describe('rate-limit headers', () => {
  it('a route with rps 5 burst 2 tells each answer its policy and what is left; exhausted, its 503 RATE_LIMITED carries them and Retry-After', async () => {
    const sim = await simulator();
    const clock = manualClock();
    t = await startTestRelay({
      simulator: sim,
      routes: {
        routes: [
          { name: 'limited', target: `${sim.url}/`, rateLimit: { rps: 5, burst: 2, warmupMs: 0 } },
          { name: 'open', target: `${sim.url}/` },
        ],
      },
      // A deadline too short to wait 200 ms for the next token: the third call is refused, not delayed.
      env: { REQUEST_DEADLINE_MS: '300', DOWNSTREAM_TIMEOUT_MS: '200' },
      overrides: { clock },
    });

    const first = await t.http.post('/relay/limited/a').send('{}').expect(200);
    expect(first.headers['ratelimit-policy']).toBe('"limited";q=5;w=1');
    expect(rateLimit(first)).toEqual({ r: 1, t: 1 });
    const second = await t.http.post('/relay/limited/a').send('{}').expect(200);
    expect(second.headers['ratelimit-policy']).toBe('"limited";q=5;w=1');
    expect(rateLimit(second)).toEqual({ r: 0, t: 1 });

    const refused = await t.http.post('/relay/limited/a').send('{}');
    expect(expectProblem(refused, 503).code).toBe('RATE_LIMITED');
    expect(refused.headers['ratelimit-policy']).toBe('"limited";q=5;w=1');
    expect(rateLimit(refused)).toEqual({ r: 0, t: 1 });
    expect(refused.headers['retry-after']).toBe('1');
    expect(sim.counters().received).toBe(2);

    // 200 ms earns one token back; a second more fills the bucket (2), and the call takes one of them.
    clock.advance(200);
    expect(rateLimit(await t.http.post('/relay/limited/a').send('{}').expect(200))).toEqual({ r: 0, t: 1 });
    clock.advance(1000);
    expect(rateLimit(await t.http.post('/relay/limited/a').send('{}').expect(200))).toEqual({ r: 1, t: 1 });

    // Answers that are not the downstream's carry them too: a refused request, a 202 for async work.
    const bad = await t.http.post('/relay/limited/a').set('X-Relay-Priority', 'urgent').send('{}');
    expect(expectProblem(bad, 400).code).toBe('BAD_REQUEST');
    expect(bad.headers['ratelimit-policy']).toBe('"limited";q=5;w=1');
    const accepted = await t.http.post('/relay/limited/a').set('Prefer', 'respond-async').send('{}').expect(202);
    expect(accepted.headers['ratelimit-policy']).toBe('"limited";q=5;w=1');
    expect(accepted.headers.ratelimit).toMatch(/^"limited";r=\d+;t=\d+$/);
  });

  it('a route without a rate limit carries neither header', async () => {
    const sim = await simulator();
    t = await startTestRelay({ simulator: sim, routes: { routes: [{ name: 'open', target: `${sim.url}/` }] } });
    for (let i = 0; i < 3; i++) {
      const res = await t.http.post('/relay/open/a').send('{}').expect(200);
      expect(res.headers['ratelimit-policy']).toBeUndefined();
      expect(res.headers.ratelimit).toBeUndefined();
    }
  });

  it('a 429 from a full queue carries Retry-After only, even on a rate-limited route', async () => {
    const sim = await simulator({ profile: { latencyMs: 500 } });
    t = await startTestRelay({
      simulator: sim,
      routes: { routes: [{ name: 'limited', target: `${sim.url}/`, rateLimit: { rps: 100, burst: 10, warmupMs: 0 }, concurrency: { max: 1 }, queue: { capacity: 1 } }] },
    });
    const route = t.relay.routes.get('limited')!;
    // then() starts the request now (supertest sends only when awaited).
    const send = () => t!.http.post('/relay/limited/a').send('{}').then((res) => res);
    const inFlight = send();
    await eventually(() => sim.counters().inFlight === 1);
    const queued = send();
    await eventually(() => route.pool.depth === 1);
    const full = await send();
    expect(expectProblem(full, 429).code).toBe('QUEUE_FULL');
    expect(Number(full.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(full.headers['ratelimit-policy']).toBeUndefined();
    expect(full.headers.ratelimit).toBeUndefined();
    // The two it let in still carry them.
    for (const res of await Promise.all([inFlight, queued])) {
      expect(res.status).toBe(200);
      expect(res.headers['ratelimit-policy']).toBe('"limited";q=100;w=1');
    }
  });

  it('a fractional rate is advertised as a whole quota over the shortest window that holds one', () => {
    expect(quotaPolicy(5)).toEqual({ quota: 5, windowS: 1 });
    expect(quotaPolicy(0.5)).toEqual({ quota: 1, windowS: 2 });
    expect(quotaPolicy(2.5)).toEqual({ quota: 5, windowS: 2 });
    expect(quotaPolicy(1 / 60)).toEqual({ quota: 1, windowS: 60 });
  });
});
