import type { Clock } from '../clock.js';
import { protectionMode, type ProtectionMode } from './mode.js';

export interface AimdChange {
  from: number;
  to: number;
  /** One human sentence, e.g. "overload: HTTP 503". */
  reason: string;
}

export interface AimdOptions {
  clock: Clock;
  /** @default 'enforce' */
  mode?: ProtectionMode;
  /** The limit never goes below it. @default 1 */
  min?: number;
  /** The limit never goes above it: the WORKERS setting. */
  max: number;
  /** @default max */
  initial?: number;
  /** A success slower than this is an overload signal too. @default 1000 */
  latencyTargetMs?: number;
  /** Multiplicative cut on overload. @default 0.5 */
  decreaseFactor?: number;
  /** At most one cut per cooldown, so one overload event seen by N calls in flight cuts once, not N times. @default 1000 */
  cooldownMs?: number;
  /**
   * Near the limit where the last overload happened, grow this many times more
   * slowly (CUBIC's plateau): probing above a downstream's capacity costs a whole
   * round trip of overloaded calls, so the relay probes there rarely and spends
   * its time just below. Far from it, +1 per round trip as usual. 1 turns it off.
   * @default 20
   */
  plateauRoundTrips?: number;
  /** The computed limit moved (in shadow mode too). */
  onChange?: (change: AimdChange) => void;
}

export interface AimdOutcome {
  /** A timeout or an HTTP 429/503. */
  overload: boolean;
  latencyMs: number;
  reason?: string;
  /**
   * When the call started (clock ms). An overload reported by a call that started
   * before the last cut was sent under the old, higher limit: it says nothing new
   * and does not cut again (TCP cuts once per window, not once per lost segment).
   */
  startedAt?: number;
}

/** Float noise must not keep 3 + 1/3 + 1/3 + 1/3 below 4. */
const EPSILON = 1e-9;

/**
 * Adaptive concurrency, TCP-style: additive increase (+1 per `limit` healthy
 * outcomes, i.e. about +1 per round trip of the whole window; `plateauRoundTrips`
 * times slower just below the limit where the last overload happened),
 * multiplicative decrease on an overload signal (limit = max(min, floor(limit x
 * decreaseFactor)), once per generation of calls and at most once per cooldownMs).
 *
 * In shadow mode the limit is computed (`computedLimit`, onChange) but `limit`
 * stays `max`; off: nothing moves.
 */
export class AimdLimiter {
  private readonly clock: Clock;
  private readonly mode: ProtectionMode;
  private readonly min: number;
  private readonly max: number;
  private readonly latencyTargetMs: number;
  private readonly decreaseFactor: number;
  private readonly cooldownMs: number;
  private readonly onChange: ((change: AimdChange) => void) | undefined;
  /** Fractional: each healthy outcome adds 1/limit. */
  private value: number;
  private lastCutAt = Number.NEGATIVE_INFINITY;
  private lastChangeAt = Number.NEGATIVE_INFINITY;
  /** Latencies of healthy calls sent under the current limit, judged once there are `limit` of them. */
  private roundTrip: number[] = [];
  /** The limit at which the last overload was seen; undefined once the limit grew past it unharmed. */
  private ceiling: number | undefined;
  private readonly plateauRoundTrips: number;
  private increases = 0;
  private decreases = 0;

  constructor(options: AimdOptions) {
    this.clock = options.clock;
    this.mode = protectionMode(options.mode);
    this.max = options.max;
    if (!(Number.isInteger(this.max) && this.max >= 1)) throw new TypeError(`Expected \`max\` to be an integer from 1 and up, got \`${this.max}\``);
    this.min = options.min ?? 1;
    if (!(Number.isInteger(this.min) && this.min >= 1 && this.min <= this.max)) {
      throw new TypeError(`Expected \`min\` to be an integer from 1 to max (${this.max}), got \`${this.min}\``);
    }
    const initial = options.initial ?? this.max;
    if (!(Number.isInteger(initial) && initial >= this.min && initial <= this.max)) {
      throw new TypeError(`Expected \`initial\` to be an integer from min (${this.min}) to max (${this.max}), got \`${initial}\``);
    }
    this.value = initial;
    this.latencyTargetMs = options.latencyTargetMs ?? 1000;
    if (!(Number.isFinite(this.latencyTargetMs) && this.latencyTargetMs > 0)) {
      throw new TypeError(`Expected \`latencyTargetMs\` to be a number above 0, got \`${this.latencyTargetMs}\``);
    }
    this.decreaseFactor = options.decreaseFactor ?? 0.5;
    if (!(typeof this.decreaseFactor === 'number' && this.decreaseFactor > 0 && this.decreaseFactor < 1)) {
      throw new TypeError(`Expected \`decreaseFactor\` to be a number above 0 and below 1, got \`${this.decreaseFactor}\``);
    }
    this.cooldownMs = options.cooldownMs ?? 1000;
    if (!(Number.isFinite(this.cooldownMs) && this.cooldownMs >= 0)) {
      throw new TypeError(`Expected \`cooldownMs\` to be a number from 0 and up, got \`${this.cooldownMs}\``);
    }
    this.plateauRoundTrips = options.plateauRoundTrips ?? 20;
    if (!(Number.isInteger(this.plateauRoundTrips) && this.plateauRoundTrips >= 1)) {
      throw new TypeError(`Expected \`plateauRoundTrips\` to be an integer from 1 and up, got \`${this.plateauRoundTrips}\``);
    }
    this.onChange = options.onChange;
  }

  /** The limit the worker pool should enforce: the computed one in enforce, `max` in shadow and off. */
  get limit(): number {
    return this.mode === 'enforce' ? this.computedLimit : this.max;
  }

  /** What AIMD decided (also in shadow mode). */
  get computedLimit(): number {
    return Math.floor(this.value + EPSILON);
  }

  /** One call that reached a downstream finished. */
  record(outcome: AimdOutcome): void {
    if (this.mode === 'off') return;
    // A call sent before the limit last changed reports on the old limit: it says nothing about this one.
    if (outcome.startedAt !== undefined && outcome.startedAt < this.lastChangeAt) return;
    const from = this.computedLimit;
    if (outcome.overload) {
      this.cut(from, `overload: ${outcome.reason ?? 'overloaded'}`);
      return;
    }
    // Latency is judged per round trip on the median, so one call delayed by a GC pause or a busy
    // event loop does not cut the limit; a downstream slowing down moves the median.
    this.roundTrip.push(outcome.latencyMs);
    if (this.roundTrip.length >= from) {
      const median = medianOf(this.roundTrip);
      this.roundTrip = [];
      if (median > this.latencyTargetMs) {
        this.cut(from, `median latency ${Math.round(median)} ms > target ${this.latencyTargetMs} ms over ${from} calls`);
        return;
      }
    }
    if (from >= this.max) return;
    const nearCeiling = this.ceiling !== undefined && from + 1 >= this.ceiling;
    this.value = Math.min(this.max, this.value + 1 / (from * (nearCeiling ? this.plateauRoundTrips : 1)));
    if (this.computedLimit === from) return;
    if (this.ceiling !== undefined && this.computedLimit > this.ceiling) this.ceiling = undefined;
    // Snap to the integer so the next step is exactly 1/(new limit), without carrying float noise.
    this.value = this.computedLimit;
    this.increases++;
    this.changed();
    this.onChange?.({ from, to: this.computedLimit, reason: `${from} healthy calls at limit ${from}` });
  }

  private cut(from: number, reason: string): void {
    const now = this.clock.now();
    if (now - this.lastCutAt < this.cooldownMs) return;
    this.lastCutAt = now;
    this.ceiling = from;
    this.value = Math.max(this.min, Math.floor(from * this.decreaseFactor));
    this.changed();
    if (this.computedLimit === from) return;
    this.decreases++;
    this.onChange?.({ from, to: this.computedLimit, reason });
  }

  private changed(): void {
    this.lastChangeAt = this.clock.now();
    this.roundTrip = [];
  }

  snapshot(): { mode: ProtectionMode; limit: number; computedLimit: number; min: number; max: number; increases: number; decreases: number } {
    return {
      mode: this.mode,
      limit: this.limit,
      computedLimit: this.computedLimit,
      min: this.min,
      max: this.max,
      increases: this.increases,
      decreases: this.decreases,
    };
  }
}

function medianOf(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
