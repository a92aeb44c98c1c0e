import { describe, expect, it } from 'vitest';
import { decideResponse, decideScripted, sampleLatencyMs } from './decide.js';
import { applySimProfilePatch, defaultSimProfile } from './profile.js';
import type { SimProfile } from './profile.js';

const calm: SimProfile = { ...defaultSimProfile, failRate: 0, latencyMs: 20, jitterMs: 0, tailRate: 0 };
const always = (value: number) => () => value;

describe('decideResponse', () => {
  it('answers 200 after the mean latency when nothing goes wrong', () => {
    expect(decideResponse(calm, 1, always(0.99))).toMatchObject({ kind: 'answer', status: 200, delayMs: 20 });
  });

  it('sheds with an immediate 503 beyond twice the capacity', () => {
    const decision = decideResponse({ ...calm, capacity: 2, retryAfterS: 1 }, 5, always(0.99));
    expect(decision).toEqual({ kind: 'answer', status: 503, delayMs: 0, retryAfterS: 1, reason: 'overload' });
  });

  it('adds latencyMs per request over capacity', () => {
    expect(decideResponse({ ...calm, capacity: 4 }, 6, always(0.99))).toMatchObject({ status: 200, delayMs: 60 });
  });

  it('caps the added overload latency', () => {
    expect(decideResponse({ ...calm, capacity: 100 }, 150, always(0.99))).toMatchObject({ delayMs: 20 + 10 * 20 });
  });

  it('answers 503 over capacity with a chance growing with the overload', () => {
    const profile = { ...calm, capacity: 4 };
    // 2 over a capacity of 4: a 50 % chance.
    expect(decideResponse(profile, 6, always(0.49))).toMatchObject({ status: 503, reason: 'overload', delayMs: 60 });
    expect(decideResponse(profile, 6, always(0.51))).toMatchObject({ status: 200 });
  });

  it('hangs when the draw falls under hangRate', () => {
    expect(decideResponse({ ...calm, hangRate: 0.5 }, 1, always(0.1))).toEqual({ kind: 'hang' });
  });

  it('fails with failStatus and Retry-After only for 503 and 429', () => {
    const failing = { ...calm, failRate: 1, retryAfterS: 3 };
    expect(decideResponse({ ...failing, failStatus: 429 }, 1, always(0.5))).toMatchObject({ status: 429, retryAfterS: 3 });
    expect(decideResponse({ ...failing, failStatus: 502 }, 1, always(0.5))).toMatchObject({ status: 502, retryAfterS: null });
  });
});

describe('sampleLatencyMs', () => {
  it('a long-tail request takes tailMs instead of the latency', () => {
    expect(sampleLatencyMs({ ...calm, tailRate: 0.5, tailMs: 700 }, always(0.1))).toBe(700);
  });

  it('stays within latencyMs +- jitterMs and never goes negative', () => {
    const profile = { ...calm, latencyMs: 20, jitterMs: 10 };
    expect(sampleLatencyMs(profile, always(0))).toBe(10);
    expect(sampleLatencyMs(profile, always(0.999999))).toBeCloseTo(30, 3);
    expect(sampleLatencyMs({ ...profile, jitterMs: 50 }, always(0))).toBe(0);
  });
});

describe('decideScripted', () => {
  it('defaults to an immediate 200 and keeps a custom body', () => {
    expect(decideScripted({})).toMatchObject({ status: 200, delayMs: 0, retryAfterS: null });
    expect(decideScripted({ status: 201, body: { a: 1 } })).toMatchObject({ customBody: { value: { a: 1 } } });
    expect(decideScripted({ hang: true })).toEqual({ kind: 'hang' });
  });
});

describe('applySimProfilePatch', () => {
  it('setting latencyMs alone resets the jitter to half of it', () => {
    expect(applySimProfilePatch(defaultSimProfile, { latencyMs: 100 })).toMatchObject({ latencyMs: 100, jitterMs: 50 });
    expect(applySimProfilePatch(defaultSimProfile, { latencyMs: 100, jitterMs: 0 })).toMatchObject({ jitterMs: 0 });
  });

  it('names the bad field and the value it got', () => {
    expect(() => applySimProfilePatch(defaultSimProfile, { capacity: 0 })).toThrow(
      'capacity: expected a positive integer, or null for unlimited, got 0',
    );
    expect(() => applySimProfilePatch(defaultSimProfile, { failRat: 0.1 })).toThrow('failRat: unknown setting');
  });
});
