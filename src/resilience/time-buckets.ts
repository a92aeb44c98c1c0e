export interface TimeBucketsOptions<K extends string> {
  /** How far back `totals` looks. Must be at least `buckets` (a bucket of under 1 ms would never fill). */
  windowMs: number;
  /** The names of what is counted, e.g. `['calls', 'failures']`. */
  counters: readonly K[];
  /** Ring size: memory is this many buckets whatever the traffic; an event is forgotten 0.9 to 1 window after it happened. @default 10 */
  buckets?: number;
}

interface Bucket<K extends string> {
  /** floor(time / bucketMs) of the counts held; a stale epoch means the counts belong to an old lap of the ring. */
  epoch: number;
  counts: Record<K, number>;
}

/**
 * Named counts over a sliding time window, kept in a fixed ring of buckets: the
 * bookkeeping the circuit breaker (calls, failures, slow calls) and the retry
 * budget (requests, retries) share. I/O-free: the caller passes the time.
 *
 * A clock that steps back is tolerated: counts in buckets "from the future" are
 * left out of `totals` until time catches up or the slot is reused.
 */
export class TimeBuckets<K extends string> {
  private readonly counters: readonly K[];
  private readonly bucketMs: number;
  private readonly ring: Bucket<K>[];

  /** @throws TypeError when `windowMs` is not a finite number from `buckets` and up. */
  constructor(options: TimeBucketsOptions<K>) {
    const size = options.buckets ?? 10;
    if (!(Number.isInteger(size) && size >= 1)) {
      throw new TypeError(`Expected \`buckets\` to be an integer from 1 and up, got \`${size}\``);
    }
    const { windowMs } = options;
    if (!(Number.isFinite(windowMs) && windowMs >= size)) {
      throw new TypeError(`Expected \`windowMs\` to be a number from ${size} and up, got \`${windowMs}\``);
    }
    this.counters = options.counters;
    this.bucketMs = windowMs / size;
    this.ring = Array.from({ length: size }, () => ({ epoch: Number.NEGATIVE_INFINITY, counts: this.zeros() }));
  }

  /** Adds `counts` to the bucket `now` falls in. */
  add(now: number, counts: Partial<Record<K, number>>): void {
    const epoch = Math.floor(now / this.bucketMs);
    const size = this.ring.length;
    // Epochs are only negative with a clock before 1970, but `%` keeps the sign.
    const bucket = this.ring[((epoch % size) + size) % size]!;
    if (bucket.epoch !== epoch) {
      bucket.epoch = epoch;
      for (const name of this.counters) bucket.counts[name] = 0;
    }
    for (const name of this.counters) bucket.counts[name] += counts[name] ?? 0;
  }

  /** The sums over the buckets of the window that ends at `now`. */
  totals(now: number): Record<K, number> {
    const epoch = Math.floor(now / this.bucketMs);
    const sum = this.zeros();
    for (const bucket of this.ring) {
      if (bucket.epoch <= epoch - this.ring.length || bucket.epoch > epoch) continue;
      for (const name of this.counters) sum[name] += bucket.counts[name];
    }
    return sum;
  }

  /** Forgets everything counted so far. */
  clear(): void {
    for (const bucket of this.ring) bucket.epoch = Number.NEGATIVE_INFINITY;
  }

  private zeros(): Record<K, number> {
    const counts = {} as Record<K, number>;
    for (const name of this.counters) counts[name] = 0;
    return counts;
  }
}
