import { describe, it, expect } from 'vitest';
import { BIN_COUNT, MAX_TRACKED_MS, MIN_TRACKED_MS, RELATIVE_ERROR, binOf, binValue, quantileFromBins } from './percentiles.js';

describe('log-scale duration bins', () => {
  it('reads every tracked value back within the relative error bound', () => {
    for (let value = MIN_TRACKED_MS * 1.001; value < MAX_TRACKED_MS; value *= 1.0037) {
      const readBack = binValue(binOf(value));
      expect(Math.abs(readBack - value) / value).toBeLessThanOrEqual(RELATIVE_ERROR + 1e-12);
    }
  });

  it('reads zero, negatives and sub-resolution values back as 0', () => {
    for (const value of [0, -5, Number.NaN, MIN_TRACKED_MS / 2]) expect(binValue(binOf(value))).toBe(0);
  });

  it('puts values beyond the tracked range in the last bin', () => {
    expect(binOf(MAX_TRACKED_MS * 10)).toBe(BIN_COUNT - 1);
  });

  it('takes nearest-rank quantiles from the bins', () => {
    const bins = new Uint32Array(BIN_COUNT);
    for (let ms = 1; ms <= 1000; ms++) bins[binOf(ms)]!++;
    expect(Math.abs(quantileFromBins(bins, 1000, 0.5) - 500) / 500).toBeLessThanOrEqual(RELATIVE_ERROR);
    expect(Math.abs(quantileFromBins(bins, 1000, 0.99) - 990) / 990).toBeLessThanOrEqual(RELATIVE_ERROR);
  });

  it('answers 0 for an empty distribution', () => {
    expect(quantileFromBins(new Uint32Array(BIN_COUNT), 0, 0.99)).toBe(0);
  });
});
