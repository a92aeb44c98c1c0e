import { describe, expect, it } from 'vitest';
import { assertDlqFilter, assertEpochMs, assertLeaseMs, assertLimit } from './arguments.js';
import type { DlqFilter } from './types.js';

describe('store argument checks', () => {
  it('a page limit below 1 or not whole is refused, naming the value', () => {
    for (const limit of [0, -1, 1.5, Number.NaN]) {
      expect(() => assertLimit(limit)).toThrow(`Expected \`limit\` to be an integer from 1 and up, got \`${limit}\``);
    }
    expect(() => assertLimit(1)).not.toThrow();
  });

  it('a lease of no time is refused', () => {
    expect(() => assertLeaseMs(0)).toThrow('Expected `leaseMs` to be a number above 0, got `0`');
    expect(() => assertLeaseMs(Number.POSITIVE_INFINITY)).toThrow(RangeError);
    expect(() => assertLeaseMs(0.5)).not.toThrow();
  });

  it('a time that is not a finite number is refused under the name the caller gives', () => {
    expect(() => assertEpochMs('before', Number.NaN)).toThrow('Expected `before` to be epoch milliseconds, got `NaN`');
    expect(() => assertEpochMs('before', 0)).not.toThrow();
  });

  it('a DLQ filter is refused by the field that is wrong', () => {
    // Cast: the point is a value the type system would have caught, arriving at run time.
    expect(() => assertDlqFilter({ reason: 'lost' } as unknown as DlqFilter)).toThrow(
      "Expected `filter.reason` to be 'permanent' or 'transient', got `lost`",
    );
    expect(() => assertDlqFilter({ updatedBefore: Number.NaN })).toThrow(
      'Expected `filter.updatedBefore` to be epoch milliseconds, got `NaN`',
    );
    expect(() => assertDlqFilter({ redrivesBelow: 2.5 })).toThrow('Expected `filter.redrivesBelow` to be an integer, got `2.5`');
  });

  it('an empty or fully valid DLQ filter passes', () => {
    expect(() => assertDlqFilter({})).not.toThrow();
    expect(() => assertDlqFilter({ reason: 'transient', updatedBefore: 1_000, redrivesBelow: 3 })).not.toThrow();
  });
});
