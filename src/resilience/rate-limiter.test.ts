import { describe, expect, it } from 'vitest';
import { RateLimiter, type RateLimiterOptions } from './rate-limiter.js';
import { idsOn } from '../../test/helpers/canary-ids.js';

function limiter(extra: Partial<RateLimiterOptions> = {}) {
  let now = 1_000_000;
  const time = { clock: { now: () => now }, advance: (ms: number) => (now += ms) };
  return { limiter: new RateLimiter({ clock: time.clock, ratePerSecond: 200, burst: 20, warmupMs: 0, ...extra }), time };
}

const FOREVER = 60_000;

/** Callers arriving back to back, each as soon as the previous one was let go; returns the waits. */
function stream(l: RateLimiter, advance: (ms: number) => void, count: number): number[] {
  const waits: number[] = [];
  for (let i = 0; i < count; i++) {
    const wait = l.reserve(FOREVER)!;
    waits.push(wait);
    advance(wait);
  }
  return waits;
}

describe('RateLimiter', () => {
  it('lets a full bucket of `burst` calls through at once', () => {
    const { limiter: l } = limiter();
    const waits = Array.from({ length: 20 }, () => l.reserve(FOREVER));
    expect(waits).toEqual(Array(20).fill(0));
    expect(l.snapshot()).toMatchObject({ tokens: 0, delayed: 0 });
  });

  it('then spaces calls 1/rate apart, each waiter queued behind the previous one', () => {
    const { limiter: l, time } = limiter();
    for (let i = 0; i < 20; i++) l.reserve(FOREVER);
    expect([l.reserve(FOREVER), l.reserve(FOREVER), l.reserve(FOREVER)]).toEqual([5, 10, 15]);
    time.advance(5);
    expect(l.reserve(FOREVER)).toBe(15); // goes at +20 ms, 5 ms after the third
    expect(l.snapshot()).toMatchObject({ delayed: 4, tokens: -3 });
  });

  it('during warm-up spaces calls at about 1/startRate at first and closer as the rate ramps up', () => {
    const { limiter: l, time } = limiter({ ratePerSecond: 20, burst: 1, warmupMs: 10_000, warmupStartRatePerSecond: 10, warmupAtStart: true });
    expect(l.reserve(FOREVER)).toBe(0);
    const waits = stream(l, time.advance, 160);
    expect(waits[0]).toBeGreaterThanOrEqual(99); // 10 rps, already ramping
    expect(waits[0]).toBeLessThanOrEqual(100);
    for (let i = 1; i < waits.length; i++) expect(waits[i]).toBeLessThanOrEqual(waits[i - 1]! + 1);
    let elapsed = 0;
    const waitAt = (ms: number) => waits.find((w) => (elapsed += w) >= ms)!;
    expect(waitAt(5_000)).toBeCloseTo(1000 / 15, -1); // half-way: 15 rps
    expect(waits.at(-1)).toBe(50); // past warm-up: 20 rps
  });

  it('ramps the rate linearly from the start rate to the full rate over warmupMs', () => {
    const { limiter: l, time } = limiter({ ratePerSecond: 200, warmupMs: 10_000, warmupStartRatePerSecond: 1, warmupAtStart: true });
    const rates = [0, 2_500, 2_500, 5_000, 1_000].map((step) => {
      time.advance(step);
      return l.currentRatePerSecond();
    });
    expect(rates).toEqual([1, 50.75, 100.5, 200, 200]);
    expect(l.snapshot().warmingUp).toBe(false);
  });

  it('with the defaults does not warm up at start: the call after the burst waits the full-rate 5 ms', () => {
    const l = new RateLimiter({ clock: { now: () => 0 } });
    for (let i = 0; i < 20; i++) expect(l.reserve(FOREVER)).toBe(0);
    expect(l.reserve(FOREVER)).toBe(5);
    expect(l.snapshot()).toMatchObject({ warmingUp: false, currentRatePerSecond: 200 });
  });

  it('with warmupAtStart (a backlog found at start) makes the call after the burst wait for the ramp (271 ms)', () => {
    let now = 0;
    const l = new RateLimiter({ clock: { now: () => now }, warmupAtStart: true });
    for (let i = 0; i < 20; i++) expect(l.reserve(FOREVER)).toBe(0);
    const wait = l.reserve(FOREVER)!;
    // From 1 rps gaining 19.9 rps per second: the token is earned when w + 0.00995 w^2 = 1000 ms, w = 270.4.
    expect(wait).toBe(271);
    now += wait;
    expect(l.snapshot()).toMatchObject({ warmingUp: true, delayed: 1 });
  });

  it('refills across a long gap by the area under the ramp, not rate x time', () => {
    const { limiter: l, time } = limiter({ ratePerSecond: 100, burst: 1000, warmupMs: 10_000, warmupStartRatePerSecond: 10, warmupAtStart: true });
    for (let i = 0; i < 1000; i++) l.reserve(FOREVER);
    time.advance(10_000);
    expect(l.snapshot().tokens).toBeCloseTo((10 + 100) / 2 * 10, 6); // 550
    time.advance(2_000);
    expect(l.snapshot().tokens).toBeCloseTo(750, 6);
  });

  it('startWarmup restarts the ramp without adding tokens', () => {
    const { limiter: l, time } = limiter({ ratePerSecond: 100, burst: 5, warmupMs: 10_000, warmupStartRatePerSecond: 10 });
    time.advance(20_000);
    for (let i = 0; i < 5; i++) l.reserve(FOREVER);
    expect(l.currentRatePerSecond()).toBe(100);
    l.startWarmup();
    expect(l.snapshot()).toMatchObject({ currentRatePerSecond: 10, tokens: 0, warmingUp: true });
    expect(l.reserve(FOREVER)).toBeGreaterThan(90); // about 100 ms at 10 rps, not 10 ms
    time.advance(10_000);
    expect(l.currentRatePerSecond()).toBe(100);
  });

  it('refuses with null when the wait would exceed maxWaitMs, and takes nothing', () => {
    const { limiter: l } = limiter({ ratePerSecond: 10, burst: 1 });
    expect(l.reserve(0)).toBe(0);
    expect(l.reserve(99)).toBeNull();
    expect(l.snapshot()).toMatchObject({ tokens: 0, rejected: 1, delayed: 0 });
    expect(l.reserve(100)).toBe(100);
  });

  it('gives the token of an aborted waiter back to the next caller', () => {
    const { limiter: l } = limiter({ ratePerSecond: 10, burst: 1 });
    l.reserve(FOREVER);
    expect(l.reserve(FOREVER)).toBe(100);
    expect(l.reserve(FOREVER)).toBe(200);
    l.refund();
    expect(l.reserve(FOREVER)).toBe(200);
  });

  it('in shadow mode never delays or refuses, but keeps the bucket and counts as enforce would', () => {
    const { limiter: l } = limiter({ mode: 'shadow', ratePerSecond: 10, burst: 2 });
    expect([l.reserve(FOREVER), l.reserve(FOREVER), l.reserve(FOREVER), l.reserve(FOREVER)]).toEqual([0, 0, 0, 0]);
    expect(l.snapshot()).toMatchObject({ mode: 'shadow', tokens: -2, delayed: 0, shadowDelayed: 2 });
    expect(l.reserve(50)).toBe(0);
    expect(l.snapshot()).toMatchObject({ tokens: -2, rejected: 0, shadowRejected: 1 });
  });

  it('in off mode never delays and counts nothing', () => {
    const { limiter: l } = limiter({ mode: 'off', ratePerSecond: 10, burst: 1 });
    expect(Array.from({ length: 10 }, () => l.reserve(0))).toEqual(Array(10).fill(0));
    expect(l.snapshot()).toMatchObject({ tokens: 1, delayed: 0, rejected: 0, shadowDelayed: 0 });
  });

  it('rejects bad options naming the value', () => {
    const clock = { now: () => 0 };
    expect(() => new RateLimiter({ clock, burst: 0 })).toThrow('Expected `burst` to be an integer from 1 and up, got `0`');
    expect(() => new RateLimiter({ clock, ratePerSecond: 10, warmupStartRatePerSecond: 20 })).toThrow('got `20`');
  });
});

describe('RateLimiter in canary mode', () => {
  const [enforcedId] = idsOn('enforced', 50, 'rate-limit');
  const [shadowId] = idsOn('shadow', 50, 'rate-limit');

  it('delays and refuses the enforced side only; the shadow side takes its token and goes', () => {
    const { limiter: l } = limiter({ mode: 'canary', canaryPercent: 50, ratePerSecond: 10, burst: 1 });
    expect(l.reserve(0, shadowId)).toBe(0);
    // The bucket is empty: the enforced side is refused (wait > 0 allowed), or waits when it may.
    expect(l.reserve(0, enforcedId)).toBeNull();
    expect(l.reserve(FOREVER, enforcedId)).toBe(100);
    expect(l.reserve(0, shadowId)).toBe(0);
    l.recordFailure(shadowId);
    expect(l.snapshot().canary).toEqual({
      percent: 50,
      enforced: { requests: 2, failures: 0, rejected: 1, delayed: 1 },
      shadow: { requests: 2, failures: 1, rejected: 1, delayed: 0 },
    });
    expect(l.headerState()).toBeNull();
  });
});
