import { describe, expect, it } from 'vitest';
import { AimdLimiter, type AimdChange, type AimdOptions } from './aimd.js';

function aimd(extra: Partial<AimdOptions> = {}) {
  let now = 1_000_000;
  const time = { clock: { now: () => now }, advance: (ms: number) => (now += ms) };
  const changes: AimdChange[] = [];
  const limiter = new AimdLimiter({
    clock: time.clock,
    min: 1,
    max: 10,
    latencyTargetMs: 1000,
    decreaseFactor: 0.5,
    cooldownMs: 1000,
    onChange: (c) => changes.push(c),
    ...extra,
  });
  return { limiter, time, changes };
}

const healthy = { overload: false, latencyMs: 50 };
const overloaded = { overload: true, latencyMs: 50, reason: 'HTTP 503' };

function repeat(limiter: AimdLimiter, count: number, outcome: { overload: boolean; latencyMs: number; reason?: string }) {
  for (let i = 0; i < count; i++) limiter.record(outcome);
}

describe('AimdLimiter', () => {
  it('grows by one per `limit` healthy outcomes, up to max', () => {
    const { limiter, changes } = aimd({ initial: 3 });
    repeat(limiter, 2, healthy);
    expect(limiter.limit).toBe(3);
    repeat(limiter, 1, healthy);
    expect(limiter.limit).toBe(4);
    repeat(limiter, 3, healthy);
    expect(limiter.limit).toBe(4);
    repeat(limiter, 1, healthy);
    expect(limiter.limit).toBe(5);
    repeat(limiter, 5 + 6 + 7 + 8 + 9, healthy);
    expect(limiter.limit).toBe(10);
    repeat(limiter, 100, healthy);
    expect(limiter.snapshot()).toMatchObject({ limit: 10, computedLimit: 10, increases: 7 });
    expect(changes[0]).toEqual({ from: 3, to: 4, reason: '3 healthy calls at limit 3' });
  });

  it('halves on a timeout or 503 and never goes below min', () => {
    const { limiter, time, changes } = aimd({ min: 2 });
    limiter.record({ overload: true, latencyMs: 5000, reason: 'attempt timed out after 5000 ms' });
    expect(limiter.limit).toBe(5);
    time.advance(1000);
    limiter.record(overloaded);
    expect(limiter.limit).toBe(2); // floor(2.5)
    time.advance(1000);
    limiter.record(overloaded);
    expect(limiter.limit).toBe(2);
    expect(changes).toEqual([
      { from: 10, to: 5, reason: 'overload: attempt timed out after 5000 ms' },
      { from: 5, to: 2, reason: 'overload: HTTP 503' },
    ]);
    expect(limiter.snapshot().decreases).toBe(2);
  });

  it('cuts once for a burst of overload outcomes within cooldownMs', () => {
    const { limiter, time } = aimd();
    repeat(limiter, 8, overloaded);
    time.advance(999);
    repeat(limiter, 8, overloaded);
    expect(limiter.limit).toBe(5);
    time.advance(1);
    limiter.record(overloaded);
    expect(limiter.limit).toBe(2);
  });

  it('does not cut again for overloads of calls sent before the last cut, even with no cooldown', () => {
    const { limiter, time } = aimd({ cooldownMs: 0 });
    const sentBefore = time.clock.now();
    time.advance(10);
    limiter.record({ ...overloaded, startedAt: sentBefore });
    expect(limiter.limit).toBe(5);
    limiter.record({ ...overloaded, startedAt: sentBefore });
    limiter.record({ ...overloaded, startedAt: sentBefore });
    expect(limiter.limit).toBe(5);
    time.advance(10);
    limiter.record({ ...overloaded, startedAt: time.clock.now() - 5 });
    expect(limiter.limit).toBe(2);
  });

  it('grows slowly just below the limit where the last overload happened, and quickly below that', () => {
    const { limiter, time } = aimd({ initial: 8, decreaseFactor: 0.5, cooldownMs: 0, plateauRoundTrips: 10 });
    limiter.record(overloaded); // overload at 8: cut to 4
    expect(limiter.limit).toBe(4);
    time.advance(1);
    repeat(limiter, 4 + 5 + 6, healthy); // one round trip each: 4 -> 5 -> 6 -> 7
    expect(limiter.limit).toBe(7);
    repeat(limiter, 7 * 9, healthy); // at 7, one below the overload: ten round trips per step
    expect(limiter.limit).toBe(7);
    repeat(limiter, 7, healthy);
    expect(limiter.limit).toBe(8);
    repeat(limiter, 8 * 10, healthy); // at the old ceiling: still slow
    expect(limiter.limit).toBe(9);
    repeat(limiter, 9, healthy); // past it unharmed: back to one round trip per step
    expect(limiter.limit).toBe(10);
  });

  it('cuts when the median latency of a round trip of calls is above the target', () => {
    const { limiter, changes } = aimd();
    repeat(limiter, 9, { overload: false, latencyMs: 1500 });
    expect(limiter.limit).toBe(10);
    limiter.record({ overload: false, latencyMs: 1500 });
    expect(limiter.limit).toBe(5);
    expect(changes[0]?.reason).toBe('median latency 1500 ms > target 1000 ms over 10 calls');
  });

  it('one slow call among fast ones (a GC pause) does not cut', () => {
    const { limiter } = aimd({ initial: 4 });
    limiter.record({ overload: false, latencyMs: 5000 });
    repeat(limiter, 3, healthy);
    expect(limiter.limit).toBe(5);
  });

  it('climbs back after a cut as healthy outcomes return', () => {
    const { limiter } = aimd();
    limiter.record(overloaded);
    repeat(limiter, 5 + 6, healthy);
    expect(limiter.limit).toBe(7);
  });

  it('in shadow mode computes the limit but tells the pool to use max', () => {
    const { limiter, changes } = aimd({ mode: 'shadow' });
    limiter.record(overloaded);
    expect(limiter.computedLimit).toBe(5);
    expect(limiter.limit).toBe(10);
    expect(limiter.snapshot()).toMatchObject({ mode: 'shadow', limit: 10, computedLimit: 5, decreases: 1 });
    expect(changes).toHaveLength(1);
  });

  it('in off mode moves nothing', () => {
    const { limiter, time, changes } = aimd({ mode: 'off', initial: 4 });
    repeat(limiter, 50, healthy);
    time.advance(5000);
    limiter.record(overloaded);
    expect(limiter.snapshot()).toMatchObject({ limit: 10, computedLimit: 4, increases: 0, decreases: 0 });
    expect(changes).toEqual([]);
  });

  it('rejects bad options naming the value', () => {
    const clock = { now: () => 0 };
    expect(() => new AimdLimiter({ clock, max: 0 })).toThrow('Expected `max` to be an integer from 1 and up, got `0`');
    expect(() => new AimdLimiter({ clock, max: 5, min: 6 })).toThrow('got `6`');
    expect(() => new AimdLimiter({ clock, max: 5, decreaseFactor: 1 })).toThrow('got `1`');
  });
});
