import { describe, expect, it } from 'vitest';
import { RetryBudget, type RetryBudgetOptions } from './retry-budget.js';
import { idsOn } from '../../test/helpers/canary-ids.js';

function budget(extra: Partial<RetryBudgetOptions> = {}) {
  let now = 1_000_000;
  const time = { clock: { now: () => now }, advance: (ms: number) => (now += ms) };
  return { budget: new RetryBudget({ clock: time.clock, ratio: 0.5, minRetriesPerSecond: 1, windowMs: 10_000, ...extra }), time };
}

/** Asks for retries until refused (at most `limit` times); returns how many went. */
function retriesAllowed(b: RetryBudget, limit = 10_000): number {
  let allowed = 0;
  while (allowed < limit && b.tryRetry()) allowed++;
  return allowed;
}

describe('RetryBudget', () => {
  it('lets the floor of retries through with no requests at all', () => {
    const { budget: b } = budget(); // 1 retry/s over 10 s
    expect(b.snapshot().available).toBe(10);
    expect(retriesAllowed(b)).toBe(10);
    expect(b.tryRetry()).toBe(false);
    expect(b.snapshot()).toMatchObject({ retries: 10, available: 0, denied: 2 });
  });

  it('caps retries at ratio x requests + the floor under load', () => {
    const { budget: b } = budget({ minRetriesPerSecond: 10 }); // floor 100
    for (let i = 0; i < 1000; i++) b.recordRequest();
    expect(retriesAllowed(b)).toBe(600);
    expect(b.tryRetry()).toBe(false);
    expect(b.snapshot()).toMatchObject({ requests: 1000, retries: 600, available: 0, denied: 2 });
  });

  it('refills as old retries slide out of the window', () => {
    const { budget: b, time } = budget();
    expect(retriesAllowed(b)).toBe(10);
    time.advance(5_000);
    expect(b.tryRetry()).toBe(false); // the spent retries are still in the window
    time.advance(5_000);
    expect(b.snapshot().available).toBe(10);
    expect(b.tryRetry()).toBe(true);
  });

  it('lets more retries through as new requests arrive', () => {
    const { budget: b } = budget({ minRetriesPerSecond: 0 });
    expect(b.tryRetry()).toBe(false);
    b.recordRequest();
    expect(b.tryRetry()).toBe(false); // half a retry earned
    b.recordRequest();
    expect(b.tryRetry()).toBe(true);
  });

  it('in shadow mode decides as enforce would but lets every retry go', () => {
    const { budget: b } = budget({ mode: 'shadow' });
    expect(retriesAllowed(b, 15)).toBe(15);
    expect(b.snapshot()).toMatchObject({ mode: 'shadow', retries: 10, available: 0, denied: 0, shadowDenied: 5 });
  });

  it('in off mode always allows and counts nothing', () => {
    const { budget: b } = budget({ mode: 'off' });
    for (let i = 0; i < 50; i++) b.recordRequest();
    expect(retriesAllowed(b, 500)).toBe(500);
    expect(b.snapshot()).toMatchObject({ mode: 'off', requests: 0, retries: 0, denied: 0, shadowDenied: 0 });
  });

  it('rejects bad options naming the value', () => {
    const clock = { now: () => 0 };
    expect(() => new RetryBudget({ clock, ratio: -1 })).toThrow('Expected `ratio` to be a number from 0 and up, got `-1`');
    expect(() => new RetryBudget({ clock, windowMs: Number.NaN })).toThrow('got `NaN`');
  });
});

describe('RetryBudget in canary mode', () => {
  it('denies a spent budget to the enforced side only, and counts both sides', () => {
    const [enforcedId] = idsOn('enforced', 50, 'retry-budget');
    const [shadowId] = idsOn('shadow', 50, 'retry-budget');
    const { budget: b } = budget({ mode: 'canary', canaryPercent: 50, ratio: 0, minRetriesPerSecond: 0.1 }); // 1 retry over the window
    b.recordRequest(enforcedId);
    b.recordRequest(shadowId);
    expect(b.tryRetry(enforcedId)).toBe(true);
    expect(b.tryRetry(enforcedId)).toBe(false);
    expect(b.tryRetry(shadowId)).toBe(true);
    b.recordFailure(enforcedId);
    expect(b.snapshot()).toMatchObject({
      denied: 1,
      shadowDenied: 1,
      canary: {
        percent: 50,
        enforced: { requests: 1, failures: 1, rejected: 1, delayed: 0 },
        shadow: { requests: 1, failures: 0, rejected: 1, delayed: 0 },
      },
    });
  });
});
