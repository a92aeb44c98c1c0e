import type { Clock } from '../clock.js';
import { Enforcement, type CanarySnapshot } from './canary.js';
import type { ProtectionMode } from './mode.js';
import { TimeBuckets } from './time-buckets.js';

export interface RetryBudgetOptions {
  clock: Clock;
  /** @default 'enforce' */
  mode?: ProtectionMode;
  /** In `canary` mode: the share of requests (by their relay-made id) whose retries it may deny; the rest it only reports. @default 10 */
  canaryPercent?: number;
  /**
   * Retries allowed per request admitted in the window (Envoy's retry budget,
   * Finagle's RetryBudget, gRPC's retry throttling).
   *
   * 0.5 because it never binds while the downstream is merely flaky, and caps
   * the damage when it is down: with 4 attempts a request whose attempts fail
   * 30% of the time independently needs 0.3 + 0.09 + 0.027 = 0.42 retries on
   * average, under 0.5, and still succeeds 1 - 0.3^4 = 99.2% of the time; when
   * every attempt fails, the downstream sees at most 1.5 attempts per request
   * (plus the floor) instead of 4.
   * @default 0.5
   */
  ratio?: number;
  /** Retries allowed per second whatever the traffic, so a quiet relay can still retry. @default 10 */
  minRetriesPerSecond?: number;
  /** Requests and retries are counted over this sliding window, in 10 buckets so memory is bounded. @default 10000 */
  windowMs?: number;
}

/**
 * Retries in the last `windowMs` may be at most `ratio` x requests in the
 * window + `minRetriesPerSecond` x the window in seconds. A spent budget makes
 * the failed attempt final rather than queueing the retry: the point is to stop
 * a struggling downstream from receiving several times its normal load.
 *
 * In shadow mode it decides as in enforce (a retry it would have denied is not
 * added to `retries`) but lets every retry go, counting `shadowDenied`. In
 * canary mode one budget serves both sides: a request on the enforced side has
 * its retry denied as in enforce, one on the shadow side as in shadow.
 */
export class RetryBudget {
  private readonly clock: Clock;
  private readonly mode: ProtectionMode;
  private readonly enforcement: Enforcement;
  private readonly ratio: number;
  private readonly minRetriesPerSecond: number;
  private readonly floorRetries: number;
  private readonly window: TimeBuckets<'requests' | 'retries'>;
  private denied = 0;
  private shadowDenied = 0;

  constructor(options: RetryBudgetOptions) {
    this.clock = options.clock;
    this.enforcement = new Enforcement({ mode: options.mode, canaryPercent: options.canaryPercent, salt: 'retry-budget' });
    this.mode = this.enforcement.mode;
    this.ratio = options.ratio ?? 0.5;
    if (!(Number.isFinite(this.ratio) && this.ratio >= 0)) {
      throw new TypeError(`Expected \`ratio\` to be a number from 0 and up, got \`${this.ratio}\``);
    }
    this.minRetriesPerSecond = options.minRetriesPerSecond ?? 10;
    if (!(Number.isFinite(this.minRetriesPerSecond) && this.minRetriesPerSecond >= 0)) {
      throw new TypeError(`Expected \`minRetriesPerSecond\` to be a number from 0 and up, got \`${this.minRetriesPerSecond}\``);
    }
    const windowMs = options.windowMs ?? 10_000;
    this.window = new TimeBuckets({ windowMs, counters: ['requests', 'retries'] });
    this.floorRetries = (this.minRetriesPerSecond * windowMs) / 1000;
  }

  /**
   * A new relay request was admitted: it earns `ratio` retries. `id`, here and
   * below: the relay-made id of the request (or job), its side in canary mode.
   */
  recordRequest(id?: string): void {
    if (this.mode === 'off') return;
    this.enforcement.count(this.enforcement.sideOf(id), 'requests');
    this.window.add(this.clock.now(), { requests: 1 });
  }

  /** True when the retry may go (and is counted); false when the budget is spent (enforce, and a canary's enforced side). */
  tryRetry(id?: string): boolean {
    if (this.mode === 'off') return true;
    const now = this.clock.now();
    if (this.available(now) >= 1) {
      this.window.add(now, { retries: 1 });
      return true;
    }
    const side = this.enforcement.sideOf(id);
    this.enforcement.count(side, 'rejected');
    if (side === 'shadow') {
      this.shadowDenied++;
      return true;
    }
    this.denied++;
    return false;
  }

  /** Canary mode: the request `id` ended without a definitive answer (counted on its side). */
  recordFailure(id?: string): void {
    if (this.mode === 'canary') this.enforcement.count(this.enforcement.sideOf(id), 'failures');
  }

  snapshot(): {
    mode: ProtectionMode;
    ratio: number;
    minRetriesPerSecond: number;
    requests: number;
    /** Retries the budget let go in the window (shadow: would have let go). */
    retries: number;
    /** Retries still allowed now. */
    available: number;
    denied: number;
    shadowDenied: number;
    /** Canary mode only: both sides' requests, failed requests and (would-be) denied retries. */
    canary?: CanarySnapshot;
  } {
    const now = this.clock.now();
    const { requests, retries } = this.window.totals(now);
    return {
      mode: this.mode,
      ratio: this.ratio,
      minRetriesPerSecond: this.minRetriesPerSecond,
      requests,
      retries,
      available: this.mode === 'off' ? 0 : this.available(now),
      denied: this.denied,
      shadowDenied: this.shadowDenied,
      ...this.enforcement.member(),
    };
  }

  private available(now: number): number {
    const { requests, retries } = this.window.totals(now);
    return Math.max(0, Math.floor(this.ratio * requests + this.floorRetries - retries));
  }
}
