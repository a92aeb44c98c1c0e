import { describe, expect, it } from 'vitest';
import { randomHex } from './random-hex.js';

describe('randomHex', () => {
  it('gives hex of the asked length, never the same twice across many pool refills', () => {
    const seen = new Set<string>();
    // 2,000 x 24 bytes is about 12 refills of the 4 KB pool.
    for (let i = 0; i < 2_000; i++) {
      const span = randomHex(8);
      const trace = randomHex(16);
      expect(span).toMatch(/^[0-9a-f]{16}$/);
      expect(trace).toMatch(/^[0-9a-f]{32}$/);
      seen.add(span).add(trace);
    }
    expect(seen.size).toBe(4_000);
  });

  it('refuses more bytes than its pool holds', () => {
    expect(() => randomHex(5_000)).toThrow('Expected at most 4096 bytes, got 5000');
  });
});
