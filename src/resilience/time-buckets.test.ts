import { describe, expect, it } from 'vitest';
import { TimeBuckets } from './time-buckets.js';

const window = () => new TimeBuckets({ windowMs: 10_000, counters: ['calls', 'failures'] }); // 1 s buckets

describe('TimeBuckets', () => {
  it('sums what was added within the window, per counter', () => {
    const w = window();
    w.add(1_000, { calls: 1 });
    w.add(4_500, { calls: 1, failures: 1 });
    w.add(9_999, { calls: 2 });
    expect(w.totals(10_000)).toEqual({ calls: 4, failures: 1 });
  });

  it('starts at zero for every counter, even ones never added to', () => {
    expect(window().totals(0)).toEqual({ calls: 0, failures: 0 });
  });

  it('forgets a bucket once the window has moved a whole window past its start', () => {
    const w = window();
    w.add(1_000, { calls: 1 }); // bucket [1 s, 2 s)
    w.add(5_000, { calls: 1 });
    expect(w.totals(10_999).calls).toBe(2);
    expect(w.totals(11_000).calls).toBe(1);
    expect(w.totals(15_000).calls).toBe(0);
  });

  it('reuses a slot for a later lap without carrying the old counts into it', () => {
    const w = window();
    w.add(1_000, { calls: 5 });
    w.add(11_000, { calls: 1 }); // same ring slot, ten buckets later
    expect(w.totals(11_000).calls).toBe(1);
  });

  it('leaves out counts from the future when the clock steps back', () => {
    const w = window();
    w.add(5_000, { calls: 1 });
    w.add(8_000, { calls: 1 });
    expect(w.totals(6_000).calls).toBe(1);
  });

  it('clear forgets everything counted so far', () => {
    const w = window();
    w.add(1_000, { calls: 3, failures: 2 });
    w.clear();
    expect(w.totals(1_000)).toEqual({ calls: 0, failures: 0 });
    w.add(1_000, { calls: 1 });
    expect(w.totals(1_000)).toEqual({ calls: 1, failures: 0 });
  });

  it('honours a bucket count other than 10', () => {
    const w = new TimeBuckets({ windowMs: 1_000, counters: ['n'], buckets: 2 }); // 500 ms buckets
    w.add(0, { n: 1 });
    w.add(600, { n: 1 });
    expect(w.totals(999).n).toBe(2);
    expect(w.totals(1_000).n).toBe(1);
  });

  it('refuses a window shorter than its bucket count, naming the value', () => {
    expect(() => new TimeBuckets({ windowMs: 9, counters: ['n'] })).toThrow('Expected `windowMs` to be a number from 10 and up, got `9`');
    expect(() => new TimeBuckets({ windowMs: Number.NaN, counters: ['n'] })).toThrow(TypeError);
    expect(() => new TimeBuckets({ windowMs: 100, counters: ['n'], buckets: 0 })).toThrow('Expected `buckets` to be an integer from 1 and up, got `0`');
  });
});
