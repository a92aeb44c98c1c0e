import { describe, it, expect } from 'vitest';
import { RELATIVE_ERROR } from './percentiles.js';
import { SlidingWindow } from './sliding-window.js';

function fakeClock(start = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

describe('SlidingWindow', () => {
  it('forgets events older than windowMs', () => {
    const clock = fakeClock();
    const window = new SlidingWindow({ now: clock.now, windowMs: 60_000 });
    window.record({ failed: true, durationMs: 5_000 });
    clock.advance(30_000);
    window.record({ failed: false, durationMs: 10 });
    expect(window.read()).toMatchObject({ count: 2, failed: 1, maxMs: 5_000 });

    clock.advance(30_000);
    expect(window.read()).toMatchObject({ count: 1, failed: 0, durationCount: 1, maxMs: 10 });

    clock.advance(30_000);
    expect(window.read()).toMatchObject({ count: 0, failed: 0, durationCount: 0, p99Ms: 0, maxMs: 0 });
  });

  it('keeps an event for the whole window when it lands at the start of a bucket', () => {
    const clock = fakeClock(0);
    const window = new SlidingWindow({ now: clock.now, windowMs: 60_000 });
    window.record({ failed: false });
    clock.advance(59_999);
    expect(window.read().count).toBe(1);
    clock.advance(1);
    expect(window.read().count).toBe(0);
  });

  it('starts empty again after an idle gap longer than the window', () => {
    const clock = fakeClock();
    const window = new SlidingWindow({ now: clock.now, windowMs: 10_000 });
    for (let i = 0; i < 100; i++) window.record({ failed: i % 2 === 0, durationMs: i });
    clock.advance(3_600_000);
    expect(window.read()).toMatchObject({ count: 0, failed: 0, durationCount: 0, maxMs: 0 });
    window.record({ failed: false, durationMs: 7 });
    expect(window.read()).toMatchObject({ count: 1, durationCount: 1, maxMs: 7 });
  });

  it('reports percentiles of a known distribution within the documented error', () => {
    const clock = fakeClock();
    const window = new SlidingWindow({ now: clock.now });
    // 1..1000 ms spread over 50 s, so the distribution spans many buckets.
    for (let ms = 1; ms <= 1000; ms++) {
      window.record({ failed: false, durationMs: ms });
      if (ms % 20 === 0) clock.advance(1_000);
    }
    const reading = window.read();
    expect(Math.abs(reading.p50Ms - 500) / 500).toBeLessThanOrEqual(RELATIVE_ERROR);
    expect(Math.abs(reading.p90Ms - 900) / 900).toBeLessThanOrEqual(RELATIVE_ERROR);
    expect(Math.abs(reading.p99Ms - 990) / 990).toBeLessThanOrEqual(RELATIVE_ERROR);
  });

  it('reports the maximum exactly and never a percentile above it', () => {
    const clock = fakeClock();
    const window = new SlidingWindow({ now: clock.now });
    window.record({ failed: false, durationMs: 12.345 });
    window.record({ failed: false, durationMs: 123.456 });
    const reading = window.read();
    expect(reading.maxMs).toBe(123.456);
    expect(reading.p99Ms).toBeLessThanOrEqual(123.456);
  });

  it('counts events without a duration but leaves them out of the percentiles', () => {
    const clock = fakeClock();
    const window = new SlidingWindow({ now: clock.now });
    for (let i = 0; i < 99; i++) window.record({ failed: false });
    window.record({ failed: false, durationMs: 800 });
    expect(window.read()).toMatchObject({ count: 100, durationCount: 1, p50Ms: 800, maxMs: 800 });
  });

  it('covers only the time since it was created while younger than the window', () => {
    const clock = fakeClock(1_000_500);
    const window = new SlidingWindow({ now: clock.now, windowMs: 60_000 });
    clock.advance(30_000);
    expect(window.read().spanMs).toBe(30_000);
    clock.advance(300_000);
    const { spanMs } = window.read();
    expect(spanMs).toBeGreaterThan(59_000);
    expect(spanMs).toBeLessThanOrEqual(60_000);
  });

  it('keeps writing into the newest bucket when the clock steps back', () => {
    const clock = fakeClock();
    const window = new SlidingWindow({ now: clock.now, windowMs: 5_000 });
    clock.advance(4_000);
    window.record({ failed: false });
    clock.advance(-10_000);
    window.record({ failed: false });
    expect(window.read().count).toBe(2);
  });

  it('names the bad value when the window is misconfigured', () => {
    const { now } = fakeClock();
    expect(() => new SlidingWindow({ now, windowMs: 0 })).toThrow('got `0`');
    expect(() => new SlidingWindow({ now, windowMs: 1_000, bucketMs: 5_000 })).toThrow('got `5000`');
  });
});
