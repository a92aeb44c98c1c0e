import type { Clock } from '../clock.js';

/**
 * Estimates how fast the queue drains from the most recent completions, so that
 * a 429's Retry-After tells the client when a slot is likely to be free rather
 * than a constant.
 */
export class DrainRateEstimator {
  private readonly stamps: number[];
  private next = 0;
  private filled = 0;

  /**
   * @param sampleSize completions remembered. @default 64
   * @param horizonMs completions older than this are ignored. @default 10_000
   */
  constructor(
    private readonly clock: Clock,
    sampleSize = 64,
    private readonly horizonMs = 10_000,
  ) {
    this.stamps = new Array<number>(sampleSize).fill(0);
  }

  recordCompletion(): void {
    this.stamps[this.next] = this.clock.now();
    this.next = (this.next + 1) % this.stamps.length;
    this.filled = Math.min(this.filled + 1, this.stamps.length);
  }

  /** Completions per second over the recent sample, or null when there is too little to tell. */
  perSecond(): number | null {
    const now = this.clock.now();
    let oldest = Infinity;
    let n = 0;
    for (let i = 0; i < this.filled; i++) {
      const t = this.stamps[i]!;
      if (now - t > this.horizonMs) continue;
      n++;
      if (t < oldest) oldest = t;
    }
    if (n < 2) return null;
    const spanMs = Math.max(now - oldest, 1);
    return (n / spanMs) * 1000;
  }

  /** Whole seconds until `depth` entries ahead are likely drained, clamped to [1, maxS]. */
  retryAfterSeconds(depth: number, fallbackS: number, maxS = 60): number {
    const rate = this.perSecond();
    const estimate = rate === null ? fallbackS : Math.ceil((depth + 1) / rate);
    return Math.min(maxS, Math.max(1, estimate));
  }
}
