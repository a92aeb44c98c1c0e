/**
 * A FIFO with a fixed capacity and O(1) removal of any entry (a waiting client
 * that disconnects leaves at once). A doubly linked list, because removal from
 * the middle is as common as shift under load.
 */
export interface QueueNode<T> {
  readonly value: T;
  prev: QueueNode<T> | null;
  next: QueueNode<T> | null;
  /** false once shifted or removed. */
  queued: boolean;
}

export class BoundedQueue<T> {
  private head: QueueNode<T> | null = null;
  private tail: QueueNode<T> | null = null;
  private count = 0;

  /** @param capacity entries that may wait at once; 0 means none may wait. */
  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 0) {
      throw new TypeError(`Expected \`capacity\` to be an integer from 0 and up, got \`${capacity}\``);
    }
  }

  get size(): number {
    return this.count;
  }

  get isFull(): boolean {
    return this.count >= this.capacity;
  }

  /** The most recently pushed entry still waiting (what a shedder evicts first), or null when empty. */
  get newest(): QueueNode<T> | null {
    return this.tail;
  }

  /** Appends, or returns null when full. */
  push(value: T): QueueNode<T> | null {
    if (this.isFull) return null;
    const node: QueueNode<T> = { value, prev: this.tail, next: null, queued: true };
    if (this.tail) this.tail.next = node;
    else this.head = node;
    this.tail = node;
    this.count++;
    return node;
  }

  shift(): T | undefined {
    const node = this.head;
    if (!node) return undefined;
    this.unlink(node);
    return node.value;
  }

  /** Removes a node still in the queue; returns false if it already left. */
  remove(node: QueueNode<T>): boolean {
    if (!node.queued) return false;
    this.unlink(node);
    return true;
  }

  private unlink(node: QueueNode<T>): void {
    if (node.prev) node.prev.next = node.next;
    else this.head = node.next;
    if (node.next) node.next.prev = node.prev;
    else this.tail = node.prev;
    node.prev = node.next = null;
    node.queued = false;
    this.count--;
  }
}
