import { describe, expect, it } from 'vitest';
import { DrainRateEstimator } from './drain-rate.js';

function fakeClock(start = 0) {
  let now = start;
  return { now: () => now, set: (t: number) => (now = t) };
}

describe('DrainRateEstimator', () => {
  it('knows nothing before two completions and falls back', () => {
    const clock = fakeClock();
    const rate = new DrainRateEstimator(clock);
    expect(rate.perSecond()).toBeNull();
    expect(rate.retryAfterSeconds(10, 4)).toBe(4);
  });

  it('estimates completions per second from recent completions', () => {
    const clock = fakeClock(1000);
    const rate = new DrainRateEstimator(clock);
    for (let i = 0; i <= 20; i++) {
      clock.set(1000 + i * 100); // 10 per second
      rate.recordCompletion();
    }
    expect(rate.perSecond()).toBeCloseTo(10.5, 0);
    // 20 ahead at ~10/s: about 2 s
    expect(rate.retryAfterSeconds(20, 1)).toBe(2);
  });

  it('never advises less than 1 s or more than the cap', () => {
    const clock = fakeClock(0);
    const rate = new DrainRateEstimator(clock);
    for (let i = 0; i < 64; i++) {
      clock.set(i);
      rate.recordCompletion();
    }
    expect(rate.retryAfterSeconds(1, 5)).toBe(1);
    const slow = new DrainRateEstimator(clock);
    clock.set(0);
    slow.recordCompletion();
    clock.set(9000);
    slow.recordCompletion();
    expect(slow.retryAfterSeconds(10_000, 1, 60)).toBe(60);
  });

  it('forgets completions older than the horizon', () => {
    const clock = fakeClock(0);
    const rate = new DrainRateEstimator(clock, 64, 10_000);
    rate.recordCompletion();
    clock.set(100);
    rate.recordCompletion();
    clock.set(20_000);
    expect(rate.perSecond()).toBeNull();
  });
});
