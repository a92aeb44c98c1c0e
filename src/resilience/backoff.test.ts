import { describe, expect, it } from 'vitest';
import { fullJitterDelayMs, parseRetryAfterMs } from './backoff.js';

const options = { baseDelayMs: 100, maxDelayMs: 2000 };

describe('full jitter backoff', () => {
  it('never exceeds min(max, base * 2^n) and never goes below 0', () => {
    for (let n = 0; n < 12; n++) {
      const ceiling = Math.min(2000, 100 * 2 ** n);
      expect(fullJitterDelayMs(n, options, () => 0)).toBe(0);
      expect(fullJitterDelayMs(n, options, () => 0.999999)).toBeLessThan(ceiling);
      expect(fullJitterDelayMs(n, options, () => 0.999999)).toBeGreaterThanOrEqual(ceiling - 1);
    }
  });

  it('caps the delay at maxDelayMs however many retries came before', () => {
    expect(fullJitterDelayMs(30, options, () => 0.5)).toBe(1000);
  });

  it('spreads delays over the whole interval rather than bunching them', () => {
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const delays = Array.from({ length: 2000 }, () => fullJitterDelayMs(3, options, random)); // ceiling 800
    const quartiles = [0, 0, 0, 0];
    for (const d of delays) quartiles[Math.min(3, Math.floor(d / 200))]!++;
    for (const count of quartiles) expect(count).toBeGreaterThan(400); // ~500 each
    expect(new Set(delays).size).toBeGreaterThan(500);
  });
});

describe('Retry-After parsing', () => {
  const now = Date.parse('2026-11-23T10:00:00Z');
  it('reads delta-seconds', () => expect(parseRetryAfterMs('3', now)).toBe(3000));
  it('reads an HTTP-date relative to now', () => expect(parseRetryAfterMs('Mon, 23 Nov 2026 10:00:05 GMT', now)).toBe(5000));
  it('treats a date in the past as no wait', () => expect(parseRetryAfterMs('Mon, 23 Nov 2026 09:00:00 GMT', now)).toBe(0));
  it('ignores absent and garbage values', () => {
    expect(parseRetryAfterMs(undefined, now)).toBeUndefined();
    expect(parseRetryAfterMs('soon', now)).toBeUndefined();
    expect(parseRetryAfterMs('1.5', now)).toBeUndefined();
  });
});
