import type { Random } from '../../src/clock.js';

/**
 * mulberry32: a tiny 32-bit generator, good enough to make an experiment's
 * random choices (simulated failures, jitter) repeat run after run. Not for
 * anything that must be unpredictable.
 */
export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
