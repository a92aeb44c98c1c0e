import { describe, expect, it } from 'vitest';
import { BoundedQueue } from './bounded-queue.js';

describe('BoundedQueue', () => {
  it('keeps FIFO order', () => {
    const q = new BoundedQueue<number>(3);
    q.push(1);
    q.push(2);
    q.push(3);
    expect([q.shift(), q.shift(), q.shift(), q.shift()]).toEqual([1, 2, 3, undefined]);
  });

  it('refuses an entry beyond capacity', () => {
    const q = new BoundedQueue<string>(1);
    expect(q.push('a')).not.toBeNull();
    expect(q.push('b')).toBeNull();
    expect(q.size).toBe(1);
  });

  it('a zero-capacity queue holds nothing', () => {
    expect(new BoundedQueue<string>(0).push('a')).toBeNull();
  });

  it('removes an entry from the middle and keeps the order of the rest', () => {
    const q = new BoundedQueue<number>(5);
    q.push(1);
    const two = q.push(2)!;
    q.push(3);
    expect(q.remove(two)).toBe(true);
    expect(q.remove(two)).toBe(false);
    expect(q.size).toBe(2);
    expect([q.shift(), q.shift()]).toEqual([1, 3]);
  });

  it('removing head and tail leaves a usable queue', () => {
    const q = new BoundedQueue<number>(3);
    const one = q.push(1)!;
    const two = q.push(2)!;
    q.remove(one);
    q.remove(two);
    expect(q.size).toBe(0);
    q.push(9);
    expect(q.shift()).toBe(9);
  });

  it('newest is the last entry still waiting', () => {
    const q = new BoundedQueue<number>(3);
    expect(q.newest).toBeNull();
    q.push(1);
    const two = q.push(2)!;
    expect(q.newest?.value).toBe(2);
    q.remove(two);
    expect(q.newest?.value).toBe(1);
    q.shift();
    expect(q.newest).toBeNull();
  });

  it('names the bad capacity', () => {
    expect(() => new BoundedQueue(-1)).toThrow('Expected `capacity` to be an integer from 0 and up, got `-1`');
  });
});
