import type { Clock } from '../clock.js';
import { Enforcement, type CanarySnapshot } from './canary.js';
import type { ProtectionMode } from './mode.js';

export interface RateLimiterOptions {
  clock: Clock;
  /** @default 'enforce' */
  mode?: ProtectionMode;
  /** In `canary` mode: the share of requests (by their relay-made id) it delays and refuses; the rest it only reports. @default 10 */
  canaryPercent?: number;
  /** The steady refill rate. @default 200 */
  ratePerSecond?: number;
  /** Bucket size. The bucket starts full, so a handful of requests at start-up pass at once. @default 20 */
  burst?: number;
  /** How long the refill rate takes to ramp up to ratePerSecond after `startWarmup()` (and start-up, with `warmupAtStart`); 0 disables. @default 10000 */
  warmupMs?: number;
  /**
   * Start in a warm-up. Off for live traffic: a process that just started has
   * not seen the downstream fail (HAProxy: "the slowstart never applies when
   * haproxy starts"), and a rolling deploy would otherwise throttle every new
   * instance. On for a backlog found at start, which would arrive all at once.
   * @default false
   */
  warmupAtStart?: boolean;
  /** The refill rate at the start of a warm-up (at most ratePerSecond). @default 1 */
  warmupStartRatePerSecond?: number;
}

/** Float noise in the ramp maths must not turn an exact 5 ms wait into 6. */
const WAIT_EPSILON_MS = 1e-6;

/**
 * A token bucket with slow start: during a warm-up (after `startWarmup()`, when
 * a breaker closes) the refill rate ramps linearly from warmupStartRatePerSecond
 * to ratePerSecond, so a downstream that just came back is not handed the whole
 * backlog at once.
 *
 * `reserve` borrows from the future (tokens may go negative): each caller is
 * told how long to wait, and callers that sleep that long are spaced at the
 * current rate. No timers: refilling is computed from the clock on each call.
 *
 * In shadow mode it keeps the bucket exactly as enforce would (a call it would
 * have delayed still takes its token) but never makes anyone wait. In canary
 * mode one bucket serves both sides: a call on the enforced side waits or is
 * refused as in enforce, one on the shadow side takes its token and goes.
 */
export class RateLimiter {
  private readonly clock: Clock;
  private readonly mode: ProtectionMode;
  private readonly enforcement: Enforcement;
  private readonly ratePerSecond: number;
  private readonly burst: number;
  private readonly warmupMs: number;
  private readonly warmupStartRatePerSecond: number;
  private tokens: number;
  private refilledAt: number;
  private warmupStartedAt: number;
  private delayed = 0;
  private rejected = 0;
  private shadowDelayed = 0;
  private shadowRejected = 0;

  constructor(options: RateLimiterOptions) {
    this.clock = options.clock;
    this.enforcement = new Enforcement({ mode: options.mode, canaryPercent: options.canaryPercent, salt: 'rate-limit' });
    this.mode = this.enforcement.mode;
    this.ratePerSecond = options.ratePerSecond ?? 200;
    if (!(Number.isFinite(this.ratePerSecond) && this.ratePerSecond > 0)) {
      throw new TypeError(`Expected \`ratePerSecond\` to be a number above 0, got \`${this.ratePerSecond}\``);
    }
    this.burst = options.burst ?? 20;
    if (!(Number.isInteger(this.burst) && this.burst >= 1)) {
      throw new TypeError(`Expected \`burst\` to be an integer from 1 and up, got \`${this.burst}\``);
    }
    this.warmupMs = options.warmupMs ?? 10_000;
    if (!(Number.isFinite(this.warmupMs) && this.warmupMs >= 0)) {
      throw new TypeError(`Expected \`warmupMs\` to be a number from 0 and up, got \`${this.warmupMs}\``);
    }
    this.warmupStartRatePerSecond = options.warmupStartRatePerSecond ?? Math.min(1, this.ratePerSecond);
    const start = this.warmupStartRatePerSecond;
    if (!(typeof start === 'number' && start > 0 && start <= this.ratePerSecond)) {
      throw new TypeError(`Expected \`warmupStartRatePerSecond\` to be a number above 0 and at most ratePerSecond (${this.ratePerSecond}), got \`${start}\``);
    }
    const now = this.clock.now();
    this.tokens = this.burst;
    this.refilledAt = now;
    // Not warming up at start: the ramp ended before the process began.
    this.warmupStartedAt = options.warmupAtStart ? now : Number.NEGATIVE_INFINITY;
  }

  /**
   * Takes one token, borrowing from the future if need be. Returns the ms to
   * wait before the call (0 = now), or null when that wait would exceed
   * `maxWaitMs` (then nothing is taken). Shadow and off (and a canary's shadow
   * side): always 0. `id`: the relay-made id of the request (or job) the call is
   * for; it chooses the side in canary mode.
   */
  reserve(maxWaitMs: number, id?: string): number | null {
    if (this.mode === 'off') return 0;
    const side = this.enforcement.sideOf(id);
    this.enforcement.count(side, 'requests');
    const now = this.clock.now();
    this.refill(now);
    const waitMs = this.tokens >= 1 ? 0 : Math.ceil(this.msToEarn(now, 1 - this.tokens) - WAIT_EPSILON_MS);
    const shadow = side === 'shadow';
    if (waitMs > maxWaitMs) {
      this.enforcement.count(side, 'rejected');
      if (shadow) this.shadowRejected++;
      else this.rejected++;
      return shadow ? 0 : null;
    }
    this.tokens -= 1;
    if (waitMs > 0) {
      this.enforcement.count(side, 'delayed');
      if (shadow) this.shadowDelayed++;
      else this.delayed++;
    }
    return shadow ? 0 : waitMs;
  }

  /** Canary mode: the call it let go for the request `id` failed at the downstream (counted on that request's side). */
  recordFailure(id: string | undefined): void {
    if (this.mode === 'canary') this.enforcement.count(this.enforcement.sideOf(id), 'failures');
  }

  /** Gives one token back: a caller that reserved but never called (its wait was aborted). */
  refund(): void {
    if (this.mode === 'off') return;
    this.refill(this.clock.now());
    this.tokens = Math.min(this.burst, this.tokens + 1);
  }

  /** Restarts the ramp from warmupStartRatePerSecond (after an outage). Adds no tokens. */
  startWarmup(): void {
    if (this.warmupMs === 0) return;
    const now = this.clock.now();
    // Tokens earned so far were earned at the old rate.
    this.refill(now);
    this.warmupStartedAt = now;
  }

  /** True while the refill rate is still ramping up. */
  get warmingUp(): boolean {
    return this.mode !== 'off' && this.warmupMs > 0 && this.clock.now() < this.warmupStartedAt + this.warmupMs;
  }

  /** The refill rate now (lower than ratePerSecond while warming up). */
  currentRatePerSecond(): number {
    if (this.mode === 'off') return this.ratePerSecond;
    return this.rateAt(this.clock.now());
  }

  snapshot(): {
    mode: ProtectionMode;
    ratePerSecond: number;
    currentRatePerSecond: number;
    burst: number;
    /** Negative when callers have borrowed from the future. */
    tokens: number;
    warmingUp: boolean;
    delayed: number;
    rejected: number;
    shadowDelayed: number;
    /** Calls a shadow limiter would have refused (the wait exceeded their maxWaitMs). */
    shadowRejected: number;
    /** Canary mode only: both sides' calls, failures, delays and (would-be) refusals. */
    canary?: CanarySnapshot;
  } {
    const now = this.clock.now();
    if (this.mode !== 'off') this.refill(now);
    return {
      mode: this.mode,
      ratePerSecond: this.ratePerSecond,
      currentRatePerSecond: this.currentRatePerSecond(),
      burst: this.burst,
      tokens: this.tokens,
      warmingUp: this.mode !== 'off' && this.warmupMs > 0 && now < this.warmupStartedAt + this.warmupMs,
      delayed: this.delayed,
      rejected: this.rejected,
      shadowDelayed: this.shadowDelayed,
      shadowRejected: this.shadowRejected,
      ...this.enforcement.member(),
    };
  }

  /** Tokens per second at time t. */
  private rateAt(t: number): number {
    if (this.warmupMs === 0) return this.ratePerSecond;
    const progress = Math.min(1, Math.max(0, (t - this.warmupStartedAt) / this.warmupMs));
    return this.warmupStartRatePerSecond + (this.ratePerSecond - this.warmupStartRatePerSecond) * progress;
  }

  private refill(now: number): void {
    if (now <= this.refilledAt) return;
    // The cap applies once at the end: adding is monotonic, so capping along the way would give the same result.
    this.tokens = Math.min(this.burst, this.tokens + this.tokensEarned(this.refilledAt, now));
    this.refilledAt = now;
  }

  /** Tokens earned from `from` to `to`: the integral of the (possibly ramping) rate, not rate x time. */
  private tokensEarned(from: number, to: number): number {
    let earned = 0;
    const rampEnd = this.warmupStartedAt + this.warmupMs;
    if (from < rampEnd) {
      const end = Math.min(to, rampEnd);
      earned += ((this.rateAt(from) + this.rateAt(end)) / 2) * ((end - from) / 1000);
      from = end;
    }
    if (to > from) earned += this.ratePerSecond * ((to - from) / 1000);
    return earned;
  }

  /** Ms from `from` until `needed` tokens have been earned: the inverse of tokensEarned. */
  private msToEarn(from: number, needed: number): number {
    const rampEnd = this.warmupStartedAt + this.warmupMs;
    let waited = 0;
    if (from < rampEnd) {
      const inRamp = this.tokensEarned(from, rampEnd);
      if (inRamp >= needed) {
        // Solve a*w + k*w^2/2 = needed for w (a = rate now, k = ramp slope, both per ms);
        // written as 2n / (a + sqrt(a^2 + 2kn)) so it stays exact when k is tiny or 0.
        const a = this.rateAt(from) / 1000;
        const k = (this.ratePerSecond - this.warmupStartRatePerSecond) / this.warmupMs / 1000;
        return (2 * needed) / (a + Math.sqrt(a * a + 2 * k * needed));
      }
      needed -= inRamp;
      waited = rampEnd - from;
    }
    return waited + (needed / this.ratePerSecond) * 1000;
  }

  /**
   * What the IETF `RateLimit` header reports, read without taking or refilling:
   * whole tokens free now (never negative, though callers may have borrowed) and
   * whole seconds until one more is (0 with a full bucket). null unless enforcing:
   * a shadow or off limiter limits nobody, so it has nothing to advertise, and a
   * canary limits only some requests, so a quota would mislead the others.
   */
  headerState(): { ratePerSecond: number; remaining: number; resetS: number } | null {
    if (this.mode !== 'enforce') return null;
    const now = this.clock.now();
    const tokens = now > this.refilledAt ? Math.min(this.burst, this.tokens + this.tokensEarned(this.refilledAt, now)) : this.tokens;
    // Float noise must not turn 2 tokens into 1.999... and so 1.
    const whole = Math.floor(tokens + 1e-9);
    if (whole >= this.burst) return { ratePerSecond: this.ratePerSecond, remaining: this.burst, resetS: 0 };
    const waitMs = this.msToEarn(now, Math.max(1, whole + 1) - tokens);
    return { ratePerSecond: this.ratePerSecond, remaining: Math.max(0, whole), resetS: Math.ceil(waitMs / 1000 - WAIT_EPSILON_MS) };
  }
}

