import { describe, expect, it } from 'vitest';
import { bucketize, counterAt, firstAnswerWithCode, goodputPerS, recoveryTimeMs, summarize, windowLoad } from './analyze.js';
import type { Outcome } from './open-loop.js';

const answer = (sentMs: number, status: number, latencyMs = 5, code: string | null = null): Outcome => ({ sentMs, latencyMs, lateMs: 0, status, code, upstream: null });

/** One request every 10 ms from `fromMs` to `toMs`, each answered `status`. */
function steady(fromMs: number, toMs: number, status: number, latencyMs = 5, code: string | null = null): Outcome[] {
  const out: Outcome[] = [];
  for (let t = fromMs; t < toMs; t += 10) out.push(answer(t, status, latencyMs, code));
  return out;
}

describe('summarize', () => {
  it('counts only 2xx as success and takes percentiles over every request, timeouts included', () => {
    const outcomes = [...steady(0, 980, 200, 10), answer(980, 503, 20), { ...answer(990, 0, 6000), code: 'TIMEOUT' }];
    const summary = summarize(outcomes);
    expect(summary.sent).toBe(100);
    expect(summary.successRate).toBeCloseTo(0.98);
    expect(summary.p50Ms).toBe(10);
    expect(summary.maxMs).toBe(6000);
    expect(summary.statuses).toEqual({ '0': 1, '200': 98, '503': 1 });
    expect(summary.codes).toEqual({ TIMEOUT: 1 });
  });
});

describe('recoveryTimeMs', () => {
  it('is 0 when the first 250 ms after the recovery already succeed', () => {
    const outcomes = [...steady(0, 1000, 503), ...steady(1000, 3000, 200)];
    expect(recoveryTimeMs(outcomes, 1000, 3000)).toBe(0);
  });

  it('is the start of the first bucket from which success holds for a whole second', () => {
    // Fails until 1.6 s after the recovery at 1 s, then succeeds: the bucket from 1.75 s is the first clean one.
    const outcomes = [...steady(0, 1600, 503), ...steady(1600, 4000, 200)];
    expect(recoveryTimeMs(outcomes, 1000, 4000)).toBe(750);
  });

  it('does not count one good bucket in a flapping recovery', () => {
    const outcomes = [...steady(0, 1250, 503), ...steady(1250, 1500, 200), ...steady(1500, 2000, 503), ...steady(2000, 4000, 200)];
    expect(recoveryTimeMs(outcomes, 1000, 4000)).toBe(1000);
  });

  it('is null when success never comes back', () => {
    expect(recoveryTimeMs(steady(0, 3000, 503), 1000, 3000)).toBeNull();
  });
});

describe('counterAt', () => {
  it('interpolates between samples and holds the ends', () => {
    const samples = [
      { tMs: 0, value: 0 },
      { tMs: 100, value: 50 },
      { tMs: 200, value: 50 },
    ];
    expect(counterAt(samples, -10)).toBe(0);
    expect(counterAt(samples, 50)).toBe(25);
    expect(counterAt(samples, 150)).toBe(50);
    expect(counterAt(samples, 500)).toBe(50);
  });
});

describe('windowLoad', () => {
  it('compares what reached the downstream in the window with what clients sent in it', () => {
    const outcomes = [...steady(0, 1000, 200), ...steady(1000, 2000, 503, 1, 'CIRCUIT_OPEN')];
    const received = [
      { tMs: 0, value: 0 },
      { tMs: 1000, value: 100 },
      { tMs: 2000, value: 105 },
    ];
    const load = windowLoad(outcomes, received, 1000, 2000, 'CIRCUIT_OPEN');
    expect(load.clientSent).toBe(100);
    expect(load.downstreamReceived).toBe(5);
    expect(load.downstreamShare).toBeCloseTo(0.05);
    expect(load.failFast).toBe(100);
    expect(load.failFastP99Ms).toBe(1);
  });
});

describe('firstAnswerWithCode', () => {
  it('is when the first answer carrying the code arrived, not when it was sent', () => {
    const outcomes = [answer(100, 503, 50, 'CIRCUIT_OPEN'), answer(120, 503, 1, 'CIRCUIT_OPEN'), answer(90, 502, 1, 'UPSTREAM_FAILED')];
    expect(firstAnswerWithCode(outcomes, 'CIRCUIT_OPEN')).toBe(121);
    expect(firstAnswerWithCode(outcomes, 'RATE_LIMITED')).toBeNull();
  });
});

describe('goodputPerS and bucketize', () => {
  it('counts 2xx answers per second by arrival, and requests per bucket by send time', () => {
    const outcomes = [...steady(0, 1000, 200), ...steady(1000, 2000, 503)];
    expect(goodputPerS(outcomes, 0, 2000)).toBe(50);
    expect(bucketize(outcomes, 0, 2000, 1000)).toEqual([
      { startMs: 0, sent: 100, ok: 100 },
      { startMs: 1000, sent: 100, ok: 0 },
    ]);
  });
});
