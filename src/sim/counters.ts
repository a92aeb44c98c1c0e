import type { IncomingHttpHeaders } from 'node:http';

/** What the simulator saw on the simulated route since start or the last reset. */
export interface SimCounters {
  /** Simulated calls received. */
  received: number;
  /** Answers sent, by status code (as a string). */
  answered: Record<string, number>;
  /** Calls whose client went away before the answer was sent. */
  aborted: number;
  inFlight: number;
  peakInFlight: number;
  /** Calls received per `Idempotency-Key` (at most 10,000 keys are tracked). */
  byKey: Record<string, number>;
  /** Headers of the most recent call, so tests can check what was forwarded. */
  lastHeaders: Record<string, string | string[] | undefined> | null;
  /**
   * Calls received in each 100 ms since start or the last reset, by the
   * simulator's own clock (the first hour): a rate limit's bound is checked over
   * any 1-s window from these, with no polling delay in the way.
   */
  arrivalsPer100ms: number[];
}

// A load test with unique keys must not grow the map without bound.
const MAX_TRACKED_KEYS = 10_000;
const ARRIVAL_BUCKET_MS = 100;
const MAX_ARRIVAL_BUCKETS = 36_000;

/** The mutable book behind `SimCounters`; handed out only as snapshots. */
export class CounterBook {
  private received = 0;
  private aborted = 0;
  private inFlight = 0;
  private peakInFlight = 0;
  private answered = new Map<number, number>();
  private byKey = new Map<string, number>();
  private lastHeaders: IncomingHttpHeaders | null = null;
  private bucketsFrom = performance.now();
  private arrivals: number[] = [];

  /** Records an arriving call; returns the number in flight, this one included. */
  onReceived(headers: IncomingHttpHeaders): number {
    this.received += 1;
    this.inFlight += 1;
    const bucket = Math.floor((performance.now() - this.bucketsFrom) / ARRIVAL_BUCKET_MS);
    if (bucket < MAX_ARRIVAL_BUCKETS) {
      while (this.arrivals.length <= bucket) this.arrivals.push(0);
      this.arrivals[bucket]! += 1;
    }
    if (this.inFlight > this.peakInFlight) this.peakInFlight = this.inFlight;
    this.lastHeaders = headers;
    const key = headers['idempotency-key'];
    if (typeof key === 'string') {
      const seen = this.byKey.get(key);
      if (seen !== undefined) this.byKey.set(key, seen + 1);
      else if (this.byKey.size < MAX_TRACKED_KEYS) this.byKey.set(key, 1);
    }
    return this.inFlight;
  }

  current(): number {
    return this.inFlight;
  }

  onAnswered(status: number): void {
    this.answered.set(status, (this.answered.get(status) ?? 0) + 1);
    this.inFlight -= 1;
  }

  onAborted(): void {
    this.aborted += 1;
    this.inFlight -= 1;
  }

  /** Clears the history; calls still in flight stay counted so they can settle. */
  reset(): void {
    this.received = 0;
    this.aborted = 0;
    this.peakInFlight = this.inFlight;
    this.answered.clear();
    this.byKey.clear();
    this.lastHeaders = null;
    this.bucketsFrom = performance.now();
    this.arrivals = [];
  }

  snapshot(): SimCounters {
    return {
      received: this.received,
      answered: Object.fromEntries([...this.answered].map(([status, n]) => [String(status), n])),
      aborted: this.aborted,
      inFlight: this.inFlight,
      peakInFlight: this.peakInFlight,
      byKey: Object.fromEntries(this.byKey),
      lastHeaders: this.lastHeaders === null ? null : { ...this.lastHeaders },
      arrivalsPer100ms: [...this.arrivals],
    };
  }
}
