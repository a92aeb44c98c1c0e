import { describe, expect, it } from 'vitest';
import { PriorityQueue } from './priority-queue.js';

describe('PriorityQueue', () => {
  it('serves higher classes first and keeps FIFO within a class', () => {
    const q = new PriorityQueue<string>(10);
    q.push('low-1', 'low');
    q.push('normal-1', 'normal');
    q.push('high-1', 'high');
    q.push('normal-2', 'normal');
    q.push('high-2', 'high');
    const order = Array.from({ length: 6 }, () => q.shift());
    expect(order).toEqual(['high-1', 'high-2', 'normal-1', 'normal-2', 'low-1', undefined]);
    expect(q.size).toBe(0);
  });

  it('shares one capacity across the classes', () => {
    const q = new PriorityQueue<string>(2);
    expect(q.push('a', 'low')).not.toBeNull();
    expect(q.push('b', 'normal')).not.toBeNull();
    expect(q.push('c', 'high')).toBeNull();
    expect(q.isFull).toBe(true);
    expect([q.sizeOf('high'), q.sizeOf('normal'), q.sizeOf('low')]).toEqual([0, 1, 1]);
  });

  it('removing an entry frees its slot once', () => {
    const q = new PriorityQueue<string>(1);
    const a = q.push('a', 'normal')!;
    expect(q.remove(a)).toBe(true);
    expect(q.remove(a)).toBe(false);
    expect(q.size).toBe(0);
    expect(q.push('b', 'low')).not.toBeNull();
  });

  it('offers the newest entry of the lowest class below the arrival for eviction', () => {
    const q = new PriorityQueue<string>(10);
    q.push('normal-1', 'normal');
    q.push('low-1', 'low');
    q.push('low-2', 'low');
    q.push('normal-2', 'normal');
    expect(q.newestBelow('high')?.node.value).toBe('low-2');
    expect(q.newestBelow('normal')?.node.value).toBe('low-2');
    expect(q.newestBelow('low')).toBeUndefined();
    q.remove(q.newestBelow('high')!);
    q.remove(q.newestBelow('high')!);
    expect(q.newestBelow('high')?.node.value).toBe('normal-2');
    expect(q.newestBelow('normal')).toBeUndefined();
  });

  it('names the bad capacity', () => {
    expect(() => new PriorityQueue(1.5)).toThrow('Expected `capacity` to be an integer from 0 and up, got `1.5`');
  });
});
