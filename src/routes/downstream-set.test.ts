import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../clock.js';
import { CircuitBreaker } from '../resilience/circuit-breaker.js';
import { RateLimiter } from '../resilience/rate-limiter.js';
import { startSimulator, type Simulator } from '../sim/simulator.js';
import { AttemptAbortedError, DownstreamClient } from '../downstream/client.js';
import { FleetRateLimiter } from '../fleet/fleet-rate-limiter.js';
import { DownstreamSet } from './downstream-set.js';

let sim: Simulator | undefined;
let set: DownstreamSet | undefined;
afterEach(async () => {
  await set?.close();
  await sim?.close();
  set = undefined;
  sim = undefined;
});

const request = { method: 'POST', path: '', body: Buffer.from('{"x":1}'), headers: { 'content-type': 'application/json' } };

/** A sleep the test ends by hand, to look at the set while an attempt waits for its token. */
function manualSleep() {
  const waits: Array<{ ms: number; wake: () => void; fail: (error: Error) => void }> = [];
  const sleep = (ms: number) => new Promise<void>((resolve, reject) => waits.push({ ms, wake: resolve, fail: reject }));
  return { waits, sleep };
}

/** One real downstream (the simulator) behind a real breaker and a rate limit of 1 call a second, burst 1. */
async function setup() {
  sim = await startSimulator({ profile: { failRate: 0, latencyMs: 0, jitterMs: 0, tailRate: 0, hangRate: 0 } });
  const limiter = new RateLimiter({ clock: systemClock, ratePerSecond: 1, burst: 1, warmupMs: 0 });
  const breaker = new CircuitBreaker({ clock: systemClock });
  const client = new DownstreamClient({ url: `${sim.url}/`, connections: 2 });
  const { waits, sleep } = manualSleep();
  const calls = { begun: 0, ended: 0 };
  set = new DownstreamSet([{ route: 'default', name: 'primary', url: sim.url, client, breaker, limiter, headers: { set: {}, remove: [] } }], {
    clock: systemClock,
    attemptTimeoutMs: 5_000,
    sleep,
    calls: {
      begin: () => {
        calls.begun++;
        return () => void calls.ended++;
      },
    },
  });
  return { sim, set, limiter, breaker, waits, calls };
}

const context = (signal = new AbortController().signal) => ({ timeoutMs: 5_000, deadlineAt: Date.now() + 10_000, signal });

describe('DownstreamSet', () => {
  it('an attempt waiting for a rate-limit token is counted as waiting, and is not a call until it leaves', async () => {
    const { sim, set, waits, calls } = await setup();
    expect((await set.send(request, context())).status).toBe(200); // the burst's one token
    const second = set.send(request, context());
    await new Promise((resolve) => setImmediate(resolve));
    expect(waits).toHaveLength(1);
    expect(waits[0]!.ms).toBeGreaterThan(0);
    expect(set.waitingForRateLimit).toBe(1);
    // The adaptive limit has heard of one call only, and the downstream has received one.
    expect(calls).toEqual({ begun: 1, ended: 1 });
    expect(sim.counters().received).toBe(1);

    waits[0]!.wake();
    expect((await second).status).toBe(200);
    expect(set.waitingForRateLimit).toBe(0);
    expect(calls).toEqual({ begun: 2, ended: 2 });
    expect(sim.counters().received).toBe(2);
  });

  it('an attempt aborted while it waits for its token stops waiting, gives the token back and sends nothing', async () => {
    const { sim, set, limiter, breaker, waits, calls } = await setup();
    await set.send(request, context());
    const tokensBefore = limiter.snapshot().tokens;
    const controller = new AbortController();
    const second = set.send(request, context(controller.signal));
    await new Promise((resolve) => setImmediate(resolve));
    expect(limiter.snapshot().tokens).toBeLessThan(tokensBefore);
    expect(set.waitingForRateLimit).toBe(1);

    controller.abort();
    waits[0]!.fail(new Error('aborted'));
    await expect(second).rejects.toBeInstanceOf(AttemptAbortedError);
    expect(set.waitingForRateLimit).toBe(0);
    expect(limiter.snapshot().tokens).toBeGreaterThanOrEqual(tokensBefore);
    expect(calls).toEqual({ begun: 1, ended: 1 });
    expect(breaker.snapshot().calls).toBe(1);
    expect(sim.counters().received).toBe(1);
  });
});

describe('DownstreamSet with a fleet rate limit (STORE=redis)', () => {
  /**
   * A FleetRateLimiter whose "Redis" grants one slot per lease, due 20 ms out
   * and usable until 25 ms out (the script's reply format, Redis's clock = ours).
   */
  function fleetLimiter() {
    const leases: number[] = [];
    const fleet = {
      shared: true,
      instances: 1,
      onModeChange: () => () => undefined,
      run: async () => {
        leases.push(Date.now());
        return [1, String(Date.now()), '20', '25'];
      },
    };
    const limiter = new FleetRateLimiter({
      clock: systemClock,
      fleet,
      knobs: { mode: 'enforce', ratePerSecond: 50, burst: 2, warmupMs: 0, warmupStartRatePerSecond: 1, canaryPercent: 10 },
      key: 'test:bucket',
    });
    return { limiter, leases };
  }

  it("a caller that wakes past its slot's deadline sends nothing on it and takes the next slot, so late timers cannot bunch calls above the fleet's bound", async () => {
    sim = await startSimulator({ profile: { failRate: 0, latencyMs: 0, jitterMs: 0, tailRate: 0, hangRate: 0 } });
    const { limiter, leases } = fleetLimiter();
    const client = new DownstreamClient({ url: `${sim.url}/`, connections: 2 });
    const { waits, sleep } = manualSleep();
    set = new DownstreamSet([{ route: 'default', name: 'primary', url: sim.url, client, breaker: new CircuitBreaker({ clock: systemClock }), limiter, headers: { set: {}, remove: [] } }], {
      clock: systemClock,
      attemptTimeoutMs: 5_000,
      sleep,
      calls: { begin: () => () => undefined },
    });
    const sent = set.send(request, context());
    const untilAsleep = async (n: number) => {
      while (waits.length < n) await new Promise((resolve) => setTimeout(resolve, 1));
    };

    // Its first slot: asleep until it is due; the event loop then wakes it 40 ms late, past the slot's deadline.
    await untilAsleep(1);
    await new Promise((resolve) => setTimeout(resolve, 45));
    waits[0]!.wake();
    // Nothing was sent on the missed slot: the caller leased another and sleeps again.
    await untilAsleep(2);
    expect(sim.counters().received).toBe(0);
    expect(leases).toHaveLength(2);
    expect(limiter.snapshot().slotsMissed).toBe(1);

    // Woken in time, it sends.
    waits[1]!.wake();
    expect((await sent).status).toBe(200);
    expect(sim.counters().received).toBe(1);
    expect(limiter.snapshot().slotsMissed).toBe(1);
  });
});
