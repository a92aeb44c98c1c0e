import { describe, expect, it } from 'vitest';
import { reconnectDelayMs } from './connection.js';

describe('reconnectDelayMs', () => {
  it('grows from 100 ms and is capped at 2 s', () => {
    const highest = (attempt: number) => reconnectDelayMs(attempt, () => 0.999_999);
    expect([1, 2, 3, 4, 5, 6, 20, 1_000].map(highest)).toEqual([99, 199, 399, 799, 1_599, 1_999, 1_999, 1_999]);
  });

  it('is spread over the whole interval but never below 50 ms', () => {
    expect(reconnectDelayMs(6, () => 0.5)).toBe(1_000);
    expect(reconnectDelayMs(6, () => 0)).toBe(50);
    expect(reconnectDelayMs(1, () => 0.2)).toBe(50);
  });
});
