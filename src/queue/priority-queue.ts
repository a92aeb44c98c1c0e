import type { Priority } from '../storage/types.js';
import { BoundedQueue, type QueueNode } from './bounded-queue.js';

/** Served in this order: every waiting `high` before any `normal`, every `normal` before any `low`. */
export const PRIORITIES: readonly Priority[] = ['high', 'normal', 'low'];

const RANK: Record<Priority, number> = { high: 2, normal: 1, low: 0 };

/** Where an entry waits, so that it can leave in O(1). */
export interface PriorityEntry<T> {
  readonly priority: Priority;
  readonly node: QueueNode<T>;
}

/**
 * One FIFO per priority class sharing a single capacity: the highest non-empty
 * class is served first, FIFO within a class. It only keeps order; who may be
 * admitted or evicted is the pool's policy.
 */
export class PriorityQueue<T> {
  private readonly classes: Record<Priority, BoundedQueue<T>>;
  private count = 0;

  /** @param capacity entries that may wait at once across all classes; 0 means none may wait. */
  constructor(readonly capacity: number) {
    // Each class may hold the whole capacity; the shared limit is enforced here.
    this.classes = {
      high: new BoundedQueue<T>(capacity),
      normal: new BoundedQueue<T>(capacity),
      low: new BoundedQueue<T>(capacity),
    };
  }

  get size(): number {
    return this.count;
  }

  get isFull(): boolean {
    return this.count >= this.capacity;
  }

  sizeOf(priority: Priority): number {
    return this.classes[priority].size;
  }

  /** Appends to the end of its class, or returns null when the shared capacity is used up. */
  push(value: T, priority: Priority): PriorityEntry<T> | null {
    if (this.isFull) return null;
    const node = this.classes[priority].push(value);
    if (!node) return null;
    this.count++;
    return { priority, node };
  }

  /** Takes the oldest entry of the highest non-empty class. */
  shift(): T | undefined {
    for (const priority of PRIORITIES) {
      const queue = this.classes[priority];
      if (queue.size === 0) continue;
      this.count--;
      return queue.shift();
    }
    return undefined;
  }

  /** Removes an entry still waiting; returns false if it already left. */
  remove(entry: PriorityEntry<T>): boolean {
    if (!this.classes[entry.priority].remove(entry.node)) return false;
    this.count--;
    return true;
  }

  /**
   * The entry to evict for an arrival of `priority`: the newest of the lowest
   * non-empty class strictly below it (newest, because it has waited least and
   * its client loses least). undefined when nothing waits below `priority`.
   */
  newestBelow(priority: Priority): PriorityEntry<T> | undefined {
    for (let i = PRIORITIES.length - 1; i >= 0; i--) {
      const lower = PRIORITIES[i]!;
      if (RANK[lower] >= RANK[priority]) return undefined;
      const node = this.classes[lower].newest;
      if (node) return { priority: lower, node };
    }
    return undefined;
  }
}
