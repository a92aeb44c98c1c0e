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
  /** The computed limit moved (in shadow mode too). */
  onChange?: (change: AimdChange) => void;
}

export interface AimdOutcome {
  /** A timeout or an HTTP 429/503. */
  overload: boolean;
  latencyMs: number;
  reason?: string;
}

/** Float noise must not keep 3 + 1/3 + 1/3 + 1/3 below 4. */
const EPSILON = 1e-9;

/**
 * Adaptive concurrency, TCP-style: additive increase (+1 per `limit` healthy
 * outcomes, i.e. about +1 per round trip of the whole window), multiplicative
 * decrease on an overload signal (limit = max(min, floor(limit x decreaseFactor)),
 * at most once per cooldownMs).
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
    const from = this.computedLimit;
    if (outcome.overload || outcome.latencyMs > this.latencyTargetMs) {
      const now = this.clock.now();
      if (now - this.lastCutAt < this.cooldownMs) return;
      this.lastCutAt = now;
      this.value = Math.max(this.min, Math.floor(from * this.decreaseFactor));
      if (this.computedLimit === from) return;
      this.decreases++;
      const why = outcome.overload
        ? `overload: ${outcome.reason ?? 'overloaded'}`
        : `latency ${Math.round(outcome.latencyMs)} ms > target ${this.latencyTargetMs} ms`;
      this.onChange?.({ from, to: this.computedLimit, reason: why });
      return;
    }
    if (from >= this.max) return;
    this.value = Math.min(this.max, this.value + 1 / from);
    if (this.computedLimit === from) return;
    // Snap to the integer so the next step is exactly 1/(new limit), without carrying float noise.
    this.value = this.computedLimit;
    this.increases++;
    this.onChange?.({ from, to: this.computedLimit, reason: `${from} healthy calls at limit ${from}` });
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
