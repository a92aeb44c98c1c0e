import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Enforcement, canarySide } from './canary.js';

const ids = Array.from({ length: 10_000 }, () => randomUUID());
const enforcedShare = (percent: number, salt = 'breaker') => ids.filter((id) => canarySide(id, percent, salt) === 'enforced').length / ids.length;

describe('canarySide', () => {
  it('puts close to `percent` of 10,000 ids on the enforced side', () => {
    // Binomial: 3 standard deviations of a share over 10,000 draws is at most 1.5 points.
    for (const percent of [1, 10, 50, 90]) expect(Math.abs(enforcedShare(percent) * 100 - percent)).toBeLessThan(1.5);
  });

  it('gives an id the same side every time (a retry, a restart, a redrive)', () => {
    for (const id of ids.slice(0, 100)) expect(canarySide(id, 30, 'rate-limit')).toBe(canarySide(id, 30, 'rate-limit'));
  });

  it('is all shadow at 0 and all enforced at 100', () => {
    expect(enforcedShare(0)).toBe(0);
    expect(enforcedShare(100)).toBe(1);
  });

  it('keeps an id enforced when the percent grows (a canary widened keeps its requests)', () => {
    const at10 = ids.filter((id) => canarySide(id, 10, 'aimd') === 'enforced');
    expect(at10.every((id) => canarySide(id, 25, 'aimd') === 'enforced')).toBe(true);
  });

  it('splits by protection: two canaries at 50% share about a quarter of ids, not half', () => {
    const both = ids.filter((id) => canarySide(id, 50, 'breaker') === 'enforced' && canarySide(id, 50, 'rate-limit') === 'enforced').length / ids.length;
    expect(Math.abs(both - 0.25)).toBeLessThan(0.02);
  });
});

describe('Enforcement', () => {
  it('enforces everything in enforce mode and nothing in shadow mode, whatever the id', () => {
    expect(new Enforcement({ mode: 'enforce', salt: 's' }).sideOf(undefined)).toBe('enforced');
    expect(new Enforcement({ mode: 'shadow', salt: 's' }).sideOf('x')).toBe('shadow');
  });

  it('puts a canary call with no id on the shadow side, and counts only in canary mode', () => {
    const canary = new Enforcement({ mode: 'canary', canaryPercent: 100, salt: 's' });
    expect(canary.sideOf(undefined)).toBe('shadow');
    expect(canary.sideOf('x')).toBe('enforced');
    canary.count('enforced', 'rejected');
    expect(canary.snapshot()).toEqual({
      percent: 100,
      enforced: { requests: 0, failures: 0, rejected: 1, delayed: 0 },
      shadow: { requests: 0, failures: 0, rejected: 0, delayed: 0 },
    });
    expect(new Enforcement({ mode: 'enforce', salt: 's' }).member()).toEqual({});
  });

  it('refuses a percent outside 0-100, naming it', () => {
    expect(() => new Enforcement({ mode: 'canary', canaryPercent: 101, salt: 's' })).toThrow('Expected `canaryPercent` to be a number from 0 to 100, got `101`');
  });
});
