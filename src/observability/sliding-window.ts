import { BIN_COUNT, binOf, quantileFromBins } from './percentiles.js';

export interface SlidingWindowOptions {
  /** Time source in epoch milliseconds (inject a fake one in tests). */
  now: () => number;
  /**
   * How far back the window looks.
   * @default 60_000
   */
  windowMs?: number;
  /**
   * Width of one time bucket: the granularity with which old events are forgotten.
   * @default 1_000
   */
  bucketMs?: number;
}

/** One finished request, as the RED window counts it. */
export interface WindowSample {
  /** Counted towards the error count. */
  failed: boolean;
  /** Omit to count the event without adding it to the latency distribution. */
  durationMs?: number;
}

export interface WindowReading {
  /** Events in the window. */
  count: number;
  /** Events in the window recorded with `failed: true`. */
  failed: number;
  /**
   * Time the window actually covers: from the start of its oldest bucket, or
   * from its creation if younger, to now. The honest denominator for a rate.
   */
  spanMs: number;
  /** Events in the window that carried a duration. */
  durationCount: number;
  /** Quantiles within percentiles.ts's RELATIVE_ERROR, never above maxMs; 0 when empty. */
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  /** Exact; 0 when empty. */
  maxMs: number;
}

interface Bucket {
  count: number;
  failed: number;
  durationCount: number;
  maxMs: number;
  /** Allocated on first duration, so an idle window costs a few bytes. */
  bins: Uint32Array | null;
}

function validatePositive(name: string, value: number): void {
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(`Expected \`${name}\` to be a finite number above 0, got \`${value}\``);
  }
}

/**
 * Counts, errors and a latency distribution over the last `windowMs`, kept in a
 * ring of time buckets so memory is bounded whatever the request rate.
 *
 * `record` is O(1): it touches the current bucket and a running total. Buckets
 * are evicted (and subtracted from the total) as time moves on, at most once
 * per bucket, so `read` costs one pass over the histogram bins, not over the
 * events. An event is forgotten once its bucket leaves the ring: between
 * `windowMs - bucketMs` and `windowMs` after it was recorded.
 */
export class SlidingWindow {
  private readonly now: () => number;
  private readonly bucketMs: number;
  private readonly buckets: Bucket[];
  private readonly createdAt: number;
  /** Index of the bucket `now` falls in (floor(now / bucketMs)) as of the last advance. */
  private headEpoch: number;
  /** The sum of every bucket still in the ring, kept so a read never re-merges them. */
  private readonly total = { count: 0, failed: 0, durationCount: 0 };
  private readonly totalBins = new Uint32Array(BIN_COUNT);

  constructor(options: SlidingWindowOptions) {
    const windowMs = options.windowMs ?? 60_000;
    const bucketMs = options.bucketMs ?? 1_000;
    validatePositive('windowMs', windowMs);
    validatePositive('bucketMs', bucketMs);
    if (bucketMs > windowMs) {
      throw new RangeError(`Expected \`bucketMs\` to be at most \`windowMs\` (${windowMs}), got \`${bucketMs}\``);
    }
    this.now = options.now;
    this.bucketMs = bucketMs;
    this.buckets = Array.from({ length: Math.ceil(windowMs / bucketMs) }, () => ({
      count: 0,
      failed: 0,
      durationCount: 0,
      maxMs: 0,
      bins: null,
    }));
    this.createdAt = this.now();
    this.headEpoch = Math.floor(this.createdAt / bucketMs);
  }

  record(sample: WindowSample): void {
    this.advance();
    const bucket = this.bucketAt(this.headEpoch);
    const total = this.total;
    bucket.count++;
    total.count++;
    if (sample.failed) {
      bucket.failed++;
      total.failed++;
    }
    const durationMs = sample.durationMs;
    if (durationMs === undefined) return;
    const bin = binOf(durationMs);
    bucket.bins ??= new Uint32Array(BIN_COUNT);
    bucket.bins[bin]!++;
    this.totalBins[bin]!++;
    bucket.durationCount++;
    total.durationCount++;
    if (durationMs > bucket.maxMs) bucket.maxMs = durationMs;
  }

  read(): WindowReading {
    const now = this.now();
    this.advance(now);
    const { count, failed, durationCount } = this.total;
    let maxMs = 0;
    for (const bucket of this.buckets) {
      if (bucket.durationCount > 0 && bucket.maxMs > maxMs) maxMs = bucket.maxMs;
    }
    const oldestStart = (this.headEpoch - this.buckets.length + 1) * this.bucketMs;
    const quantile = (q: number): number => Math.min(quantileFromBins(this.totalBins, durationCount, q), maxMs);
    return {
      count,
      failed,
      spanMs: Math.max(0, now - Math.max(oldestStart, this.createdAt)),
      durationCount,
      p50Ms: quantile(0.5),
      p90Ms: quantile(0.9),
      p99Ms: quantile(0.99),
      maxMs,
    };
  }

  private bucketAt(epoch: number): Bucket {
    const length = this.buckets.length;
    // Epochs are only negative with a clock before 1970, but `%` keeps the sign.
    return this.buckets[((epoch % length) + length) % length]!;
  }

  /** Evicts the buckets that fell out of the window since the last call. */
  private advance(now: number = this.now()): void {
    const epoch = Math.floor(now / this.bucketMs);
    // A clock that stepped back keeps writing into the newest bucket.
    if (epoch <= this.headEpoch) return;
    const steps = Math.min(epoch - this.headEpoch, this.buckets.length);
    for (let step = 1; step <= steps; step++) this.evict(this.bucketAt(this.headEpoch + step));
    this.headEpoch = epoch;
  }

  private evict(bucket: Bucket): void {
    if (bucket.count === 0) return;
    const total = this.total;
    total.count -= bucket.count;
    total.failed -= bucket.failed;
    total.durationCount -= bucket.durationCount;
    if (bucket.bins && bucket.durationCount > 0) {
      for (let bin = 0; bin < BIN_COUNT; bin++) this.totalBins[bin]! -= bucket.bins[bin]!;
      bucket.bins.fill(0);
    }
    bucket.count = 0;
    bucket.failed = 0;
    bucket.durationCount = 0;
    bucket.maxMs = 0;
  }
}
