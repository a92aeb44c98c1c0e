import { describe, expect, it } from 'vitest';
import { countAnswers, formatComparison, summarizeRun, toRateSeries, type CounterSample } from './series.js';

const sample = (atMs: number, received: number, errors = 0, inFlight = 0): CounterSample => ({ atMs, received, answered: received, errors, inFlight });

describe('toRateSeries', () => {
  it('turns cumulative counts into per-second rates over each interval', () => {
    const points = toRateSeries([sample(0, 0), sample(100, 900, 600, 80), sample(200, 1000, 650, 10)]);
    expect(points).toEqual([
      { tS: 0.1, rps: 9000, errorRps: 6000, inFlight: 80 },
      { tS: 0.2, rps: 1000, errorRps: 500, inFlight: 10 },
    ]);
  });

  it('uses the real interval when a timer fired late', () => {
    // A busy event loop delays the sampler; 500 requests over 250 ms is 2,000 req/s, not 5,000.
    expect(toRateSeries([sample(0, 0), sample(250, 500)])[0]!.rps).toBe(2000);
  });

  it('carries the relay\'s concurrency limit through when it was sampled', () => {
    const points = toRateSeries([sample(0, 0), { ...sample(100, 10), relayLimit: 13 }]);
    expect(points[0]!.relayLimit).toBe(13);
  });

  it('skips an interval of zero length instead of dividing by zero', () => {
    expect(toRateSeries([sample(0, 0), sample(0, 10), sample(100, 20)])).toEqual([{ tS: 0.1, rps: 100, errorRps: 0, inFlight: 0 }]);
  });
});

describe('countAnswers', () => {
  it('counts 4xx and 5xx as errors and everything as answered', () => {
    expect(countAnswers({ '200': 70, '503': 25, '429': 5 })).toEqual({ answered: 100, errors: 30 });
    expect(countAnswers({})).toEqual({ answered: 0, errors: 0 });
  });
});

describe('summarizeRun', () => {
  it('reports the busiest interval, the error share and the amplification', () => {
    const summary = summarizeRun({
      sent: 2000,
      succeeded: 1990,
      drainMs: 4200,
      series: toRateSeries([sample(0, 0), sample(100, 1800), sample(200, 2000)]),
      downstream: { received: 5000, answered: 5000, errors: 3000 },
    });
    expect(summary.peakRps).toBe(18000);
    expect(summary.downstreamErrorRate).toBe(0.6);
    expect(summary.amplification).toBe(2.5);
  });

  it('reports zeros, not NaN, for a run that sent nothing', () => {
    const summary = summarizeRun({ sent: 0, succeeded: 0, drainMs: 0, series: [], downstream: { received: 0, answered: 0, errors: 0 } });
    expect(summary).toMatchObject({ peakRps: 0, downstreamErrorRate: 0, amplification: 0 });
  });
});

describe('formatComparison', () => {
  it('prints both runs side by side, one metric a line', () => {
    const run = (peakRps: number, errors: number, received: number, drainMs: number, succeeded: number) => ({
      sent: 2000,
      succeeded,
      peakRps,
      downstreamErrorRate: errors,
      amplification: received / 2000,
      drainMs,
      downstreamReceived: received,
    });
    const table = formatComparison(run(18040, 0.532, 41000, 21300, 1200), run(2100, 0.01, 2030, 3400, 2000));
    const lines = table.split('\n');
    expect(lines).toHaveLength(7);
    expect(lines.find((l) => l.startsWith('downstream peak request rate'))).toMatch(/18,040 req\/s \|\s+2,100 req\/s$/);
    expect(table).toContain('53.2%');
    expect(table).toContain('20.50x');
    expect(table).toContain('21.3 s');
    expect(table).toContain('1,200 / 2,000');
    // Columns line up: every '|' at the same offset.
    expect(new Set(lines.map((l) => l.indexOf('|'))).size).toBe(1);
  });
});
