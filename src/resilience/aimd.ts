import type { Clock } from '../clock.js';
import { Enforcement, type CanarySnapshot } from './canary.js';
import type { ProtectionMode } from './mode.js';

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
  /** In `canary` mode: the share of requests (by their relay-made id) held to the limit (see `acquireSlot`). @default 10 */
  canaryPercent?: number;
  /** The limit never goes below it. @default 1 */
  min?: number;
  /** The limit never goes above it: the WORKERS setting. */
  max: number;
  /** @default max */
  initial?: number;
  /**
   * Grow from `initial` by slow start (one per healthy call sent at the limit:
   * double per round trip) up to `max`, until the first cut or drift (see
   * `inUse`). A fresh process knows nothing of the downstream: it starts small
   * (TCP's initial window) and finds out within a few round trips, instead of at
   * `max` at once.
   * @default false
   */
  slowStart?: boolean;
  /** A success slower than this is an overload signal too. @default 1000 */
  latencyTargetMs?: number;
  /** Multiplicative cut on overload. @default 0.5 */
  decreaseFactor?: number;
  /** At most one cut per cooldown, so one overload event seen by N calls in flight cuts once, not N times. @default 1000 */
  cooldownMs?: number;
  /**
   * Near a confirmed ceiling, grow this many times more slowly (CUBIC's plateau):
   * probing above a downstream's capacity costs a whole round trip of overloaded
   * calls, so the relay probes there rarely and spends its time just below. A
   * ceiling is the limit where overload was met; it is confirmed when overload
   * is met there (or higher) again, after a climb back. A failed probe at a
   * confirmed ceiling goes back to the limit just below it, which held for the
   * whole plateau, rather than a multiplicative cut below that. Near a ceiling
   * met once, growth is only `min(4, plateauRoundTrips)` times slower: one
   * overload alone says little (a steady background of 503s cuts at whatever
   * limit the relay has then, where a long plateau would hold it below what the
   * traffic needs), but it is worth a few round trips of care. Overload met
   * lower replaces the ceiling, unconfirmed; growing two past it unharmed forgets
   * it. Elsewhere, +1 per round trip as usual. 1 turns all of it off.
   * @default 40
   */
  plateauRoundTrips?: number;
  /**
   * Tasks the pool runs right now. The limit grows only while it binds (this
   * reaches it, both when a call is sent and when it comes back), and a limit
   * left more than half unused for a round trip drifts down to 1.5x the use it
   * saw (TCP's congestion window validation, RFC 7661):
   * an idle relay's limit was never shown safe, so a burst after a quiet spell
   * probes up from what was used instead of arriving at `max` at once.
   * @default () => the computed limit (always binding; nothing drifts)
   */
  inUse?: () => number;
  /** The computed limit moved (in shadow mode too). */
  onChange?: (change: AimdChange) => void;
}

export interface AimdOutcome {
  /** The downstream said "too many" outright (HTTP 429): a cut at once. */
  overload: boolean;
  /**
   * A timeout or an HTTP 503: overload only if such failures grow with
   * concurrency. They are counted per round of calls and judged against the
   * downstream's background failure rate (see `AimdLimiter`).
   */
  failed?: boolean;
  latencyMs: number;
  reason?: string;
}

/** Ends a call `begin()` counted: with its outcome, or null when it ended with no verdict on the downstream (our own abort, a deadline cut it short). */
export type AimdCallEnd = (outcome: AimdOutcome | null) => void;

const IGNORE: AimdCallEnd = () => undefined;

/** Near a ceiling met only once, growth is this many times slower (capped by plateauRoundTrips). */
const APPROACH_ROUND_TRIPS = 4;

/** Calls in a round of failure counting (at least; a limit above it counts `limit` calls). */
const FAILURE_ROUND_CALLS = 32;
/**
 * A cut on failures halves the limit whatever `decreaseFactor` is: the round
 * after it must be able to show the failures falling, and at 0.9 of a limit
 * twice the capacity they would not, so overload would pass for background.
 */
const FAILURE_CUT_FACTOR = 0.5;
/** How far each round moves the background failure rate toward its own. */
const BACKGROUND_WEIGHT = 0.2;

/**
 * How far a round's failure rate must rise above the background to say
 * overload: three standard errors of a rate measured over `calls` calls, plus
 * five points. At a background of 30% over 32 calls that is 59% (random failures
 * reach it about once in 5,000 rounds); from 0%, 17%.
 */
function failureMargin(background: number, calls: number): number {
  const p = Math.min(0.95, Math.max(0.05, background));
  return 0.05 + 3 * Math.sqrt((p * (1 - p)) / calls);
}

/**
 * A drift lands at this multiple of the use it saw: room for the use to vary
 * without queueing, while a burst meets what was shown safe plus a half, not
 * twice it (S4: a warm-up peak of 6 left 12 against a capacity of 10).
 */
const DRIFT_HEADROOM = 1.5;

/** Float noise must not keep 3 + 1/3 + 1/3 + 1/3 below 4. */
const EPSILON = 1e-9;

/**
 * Adaptive concurrency, TCP-style: additive increase (+1 per `limit` healthy
 * outcomes, i.e. about +1 per round trip of the whole window, and only while the
 * limit binds, on calls sent under the current limit; `plateauRoundTrips` times
 * slower around a limit where overload was met twice in a row, 4 times around one
 * met once), multiplicative decrease on an overload signal (limit = max(min,
 * floor(L x decreaseFactor)), L the limit the overloaded call was sent under; a
 * failed probe above a confirmed ceiling goes back to just below it), at most
 * once per cooldownMs and once per generation: after a cut, no other until every
 * call in flight at the cut has finished (NewReno's recovery: those calls, and
 * the calls sent beside them into a still-crowded downstream, report the overload
 * that was just answered), and then only for calls sent after it).
 *
 * Every call is counted in flight from `begin()` until the function it returns
 * is called. A call belongs to the generation (cuts so far) it was sent in: a
 * call sent before the last cut reports on the old, higher limit and says
 * nothing about this one (TCP cuts once per window, not per lost segment).
 *
 * Failures (timeouts, 503s) are overload only when they grow with concurrency:
 * a downstream failing 30% of calls at random fails as often at 2 calls in
 * flight as at 20, and cutting on each of them ratchets the limit to the floor.
 * They are counted over rounds of at least 32 calls; a round whose failure rate
 * is above the background rate by more than `failureMargin` cuts, and the round
 * after the cut, at the lower limit, tells which it was: failures that fell are
 * overload (the cut stands), failures that did not are the downstream's new
 * background (the cut is undone). The background rises only on rounds sent at
 * or below the limit where it was learnt, so failures that grow a step at a time
 * above it are compared with what the downstream did there. A 429 and a median
 * latency above the target are overload at once.
 *
 * After an outage (`restart`), the limit starts again from `min` and doubles
 * per round trip (TCP's slow start) until it is back where it was, or a cut.
 *
 * In shadow mode the limit is computed (`computedLimit`, onChange) but `limit`
 * stays `max`; off: nothing moves. In canary mode the limit is computed from
 * every call, `limit` stays `max`, and the enforced side alone is held to its
 * share of the computed limit (`acquireSlot`).
 */
export class AimdLimiter {
  private readonly clock: Clock;
  private readonly mode: ProtectionMode;
  private readonly enforcement: Enforcement;
  /** Canary mode: enforced-side calls holding a slot, and those waiting for one. */
  private enforcedInFlight = 0;
  private readonly slotWaiters: Array<(granted: boolean) => void> = [];
  private readonly min: number;
  private readonly max: number;
  private readonly latencyTargetMs: number;
  private readonly decreaseFactor: number;
  private readonly cooldownMs: number;
  private readonly onChange: ((change: AimdChange) => void) | undefined;
  /** Fractional: each healthy outcome adds 1/limit. */
  private value: number;
  private lastCutAt = Number.NEGATIVE_INFINITY;
  /** Goes up by one at every cut; a call belongs to the generation it was sent in. */
  private generation = 0;
  /** Calls begun and not yet ended. */
  private inFlight = 0;
  /** Calls in flight at the last cut that have not finished: until they have, no other cut. */
  private inFlightAtCut = 0;
  /** Healthy calls of this round trip, judged once there are `limit` of them. */
  private roundCalls = 0;
  /** Their latencies, of the calls sent with this limit reached: only these met the downstream at the limit. */
  private roundTrip: number[] = [];
  /** A call of this round sent at the limit was slower than the target: the round grows nothing more. */
  private roundSlow = false;
  /** The limit of the last round trip sent at the limit whose median met the target: where a failed step up goes back to. */
  private heldLimit: number | undefined;
  /** The most tasks in use at any outcome of this round trip. */
  private roundPeakInUse = 0;
  private readonly inUse: (() => number) | undefined;
  /** Where overload starts, as far as the last cuts tell; forgotten once the limit grows two past it unharmed, or an outage ends. */
  private ceiling: number | undefined;
  private readonly plateauRoundTrips: number;
  /** The last cut met overload at or above the standing ceiling: `ceiling` holds. */
  private ceilingConfirmed = false;
  private increases = 0;
  private decreases = 0;
  /** Drifts down toward use (see `inUse`). */
  private drifts = 0;
  /** Calls and failures (timeouts, 503s) of this generation, counted toward the next failure judgement, and the limits they were sent under. */
  private failureRound = newFailureRound();
  /** The downstream's failure rate that is not overload; undefined until a round has been judged. */
  private backgroundFailureRate: number | undefined;
  /** The highest limit at which the background was measured (or shown): a round above it may not raise it. */
  private backgroundLimit: number | undefined;
  /** After a cut on failures: the round's rate and the limit to give back if the next round fails as often. */
  private failureCut: { rate: number; restoreTo: number; slowStartUntil: number | undefined } | undefined;
  /** Slow start after an outage: +1 per healthy call while the limit is below this. */
  private slowStartUntil: number | undefined;

  constructor(options: AimdOptions) {
    this.clock = options.clock;
    this.enforcement = new Enforcement({ mode: options.mode, canaryPercent: options.canaryPercent, salt: 'aimd' });
    this.mode = this.enforcement.mode;
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
    this.plateauRoundTrips = options.plateauRoundTrips ?? 40;
    if (!(Number.isInteger(this.plateauRoundTrips) && this.plateauRoundTrips >= 1)) {
      throw new TypeError(`Expected \`plateauRoundTrips\` to be an integer from 1 and up, got \`${this.plateauRoundTrips}\``);
    }
    this.inUse = options.inUse;
    this.onChange = options.onChange;
    if (options.slowStart && initial < this.max) this.slowStartUntil = this.max;
  }

  /** The limit the worker pool should enforce: the computed one in enforce, `max` in shadow, canary and off. */
  get limit(): number {
    return this.mode === 'enforce' ? this.computedLimit : this.max;
  }

  /** What AIMD decided (also in shadow mode). */
  get computedLimit(): number {
    return Math.floor(this.value + EPSILON);
  }

  /**
   * A call to a downstream starts now; call what this returns when it ends.
   * `id`: the relay-made id of its request (or job), its side in canary mode.
   */
  begin(id?: string): AimdCallEnd {
    if (this.mode === 'off') return IGNORE;
    const side = this.enforcement.sideOf(id);
    this.enforcement.count(side, 'requests');
    // The shadow side of a canary would have waited for a worker with this many calls out.
    if (side === 'shadow' && this.inFlight >= this.computedLimit) this.enforcement.count(side, 'delayed');
    this.inFlight++;
    const generation = this.generation;
    const sentAtLimit = this.computedLimit;
    // Sent with the limit reached (TCP's "cwnd-limited" test, at send time): only such a call's health
    // says the limit could be higher. Calls sent in a quiet spell that come back once a burst has filled
    // the limit otherwise grew it at once: S4's limit went from 12 to 13 as its burst began.
    const sentBinding = (this.inUse?.() ?? sentAtLimit) >= sentAtLimit;
    let ended = false;
    return (outcome) => {
      if (ended) return;
      ended = true;
      this.inFlight--;
      if (outcome && (outcome.overload || outcome.failed)) this.enforcement.count(side, 'failures');
      if (generation < this.generation) {
        if (this.inFlightAtCut > 0) this.inFlightAtCut--;
        return;
      }
      if (outcome) this.judge(outcome, sentAtLimit, sentBinding);
    };
  }

  /**
   * Canary mode: a call of request `id` on the enforced side takes one of that
   * side's slots, its share of the computed limit (ceil(limit x percent / 100),
   * at least 1), and waits while every one is taken, as enforce would hold it in
   * the queue; the shadow side never waits (the pool runs at `max`). Returns null
   * when no slot is needed, else the slot's release (call it once the call has
   * ended), at once or as a promise. The wait rejects with `wait.timeout()` at
   * `wait.deadlineAt`, and with `wait.aborted()` when `wait.signal` fires.
   */
  acquireSlot(
    id: string | undefined,
    wait: { signal: AbortSignal; deadlineAt: number; timeout: () => Error; aborted: () => Error },
  ): (() => void) | Promise<() => void> | null {
    if (this.mode !== 'canary' || this.enforcement.sideOf(id) !== 'enforced') return null;
    if (this.slotWaiters.length === 0 && this.enforcedInFlight < this.enforcedShare()) {
      this.enforcedInFlight++;
      return this.slotRelease();
    }
    this.enforcement.count('enforced', 'delayed');
    return new Promise((resolve, reject) => {
      const settle = (granted: boolean, error?: Error) => {
        clearTimeout(timer);
        wait.signal.removeEventListener('abort', onAbort);
        const index = this.slotWaiters.indexOf(grant);
        if (index !== -1) this.slotWaiters.splice(index, 1);
        if (granted) resolve(this.slotRelease());
        else reject(error);
      };
      // A release hands its slot over: counted here, so that no call arriving meanwhile takes it.
      const grant = (granted: boolean) => settle(granted);
      const onAbort = () => settle(false, wait.aborted());
      // No deadline, no timer: node turns a delay it cannot hold (Infinity, past 2^31 - 1 ms) into 1 ms.
      const timer = Number.isFinite(wait.deadlineAt)
        ? setTimeout(() => settle(false, wait.timeout()), Math.max(0, wait.deadlineAt - this.clock.now()))
        : undefined;
      wait.signal.addEventListener('abort', onAbort, { once: true });
      this.slotWaiters.push(grant);
    });
  }

  private enforcedShare(): number {
    return Math.max(1, Math.ceil((this.computedLimit * this.enforcement.percent) / 100));
  }

  private slotRelease(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.enforcedInFlight--;
      // The limit may have grown since: hand out every slot now free.
      while (this.slotWaiters.length > 0 && this.enforcedInFlight < this.enforcedShare()) {
        this.enforcedInFlight++;
        this.slotWaiters.shift()!(true);
      }
    };
  }

  /**
   * The downstream came back from an outage (its breaker closed): the ceiling
   * learnt from overload signals before it, and during it from failed probes, says
   * nothing about the capacity now. Growth is no longer slowed near it.
   */
  forgetCeiling(): void {
    this.ceiling = undefined;
    this.ceilingConfirmed = false;
    this.heldLimit = undefined;
  }

  /**
   * The downstream came back from an outage and nothing else ramps its traffic
   * (a route without a rate limit): start again from `min` and double per round
   * trip up to the limit held before (TCP's slow start), so the backlog meets a
   * ramp instead of the whole limit at once. Forgets what the outage taught.
   */
  restart(): void {
    if (this.mode === 'off') return;
    const from = this.computedLimit;
    this.forgetCeiling();
    this.backgroundFailureRate = undefined;
    this.backgroundLimit = undefined;
    this.failureCut = undefined;
    this.slowStartUntil = Math.max(from, this.min + 1);
    this.value = this.min;
    this.newRound();
    this.failureRound = newFailureRound();
    if (this.computedLimit !== from) this.onChange?.({ from, to: this.computedLimit, reason: 'downstream recovered: slow start' });
  }

  /** One call sent under the current generation reached a downstream and finished. */
  private judge(outcome: AimdOutcome, sentAtLimit: number, sentBinding: boolean): void {
    const from = this.computedLimit;
    if (outcome.overload) {
      // Cut from (and remember as the ceiling) the limit the overloaded call was sent under, not
      // the one the limit grew to while it was out: that is where the downstream said no.
      this.cut(from, Math.min(from, sentAtLimit), `overload: ${outcome.reason ?? 'overloaded'}`);
      return;
    }
    this.failureRound.calls++;
    this.failureRound.lowest = Math.min(this.failureRound.lowest, sentAtLimit);
    this.failureRound.highest = Math.max(this.failureRound.highest, sentAtLimit);
    if (outcome.failed) {
      this.failureRound.failures++;
      if (this.failureRound.calls >= Math.max(FAILURE_ROUND_CALLS, from)) this.judgeFailures(from, sentAtLimit);
      return;
    }
    if (this.failureRound.calls >= Math.max(FAILURE_ROUND_CALLS, from) && this.judgeFailures(from, sentAtLimit)) return;
    // Latency is judged per round trip on the median, so one call delayed by a GC pause or a busy
    // event loop does not cut the limit; a downstream slowing down moves the median.
    this.roundCalls++;
    if (sentBinding && sentAtLimit >= from) {
      this.roundTrip.push(outcome.latencyMs);
      if (outcome.latencyMs > this.latencyTargetMs) this.roundSlow = true;
    }
    const inUse = this.inUse?.() ?? from;
    this.roundPeakInUse = Math.max(this.roundPeakInUse, inUse);
    if (this.roundCalls >= from) {
      const binding = this.roundTrip;
      const peak = this.roundPeakInUse;
      this.newRound();
      // Judged on the calls sent with the limit reached, if they are half the round or more: a call sent
      // while the pool filled met fewer calls than the limit. S4's burst filled a limit of 12 above its
      // capacity of 10; its first ten calls came back in 50 ms, passed the round and grew the limit to 13.
      if (binding.length * 2 >= from) {
        const median = medianOf(binding);
        if (median > this.latencyTargetMs) {
          this.cut(from, from, `median latency ${Math.round(median)} ms > target ${this.latencyTargetMs} ms over ${binding.length} calls`);
          return;
        }
        this.heldLimit = from;
      }
      if (peak * 2 < from) {
        this.value = Math.max(this.min, Math.ceil(peak * DRIFT_HEADROOM));
        this.heldLimit = undefined;
        // The drift is "probe up from what was used": by one per round trip. A slow start left running
        // doubled from there per round trip instead, to twice a downstream's capacity before the news of
        // the first call over it came back (S4: 12 -> 21 in 70 ms at its burst, then 20 503s in a row
        // opened the breaker). TCP ends slow start on loss; a relay that drifted has learnt the use.
        if (this.computedLimit < from) this.slowStartUntil = undefined;
        this.drifts++;
        this.onChange?.({ from, to: this.computedLimit, reason: `at most ${peak} of ${from} in use over ${from} calls` });
        return;
      }
    }
    // A call at the limit slower than the target is no sign the downstream could take more, though one
    // alone does not cut: the rest of its round trip grows nothing either (S4: a relay at 11-12 calls kept
    // its downstream of capacity 10 at 10-11, and half its calls fast grew it to 13).
    if (this.roundSlow || outcome.latencyMs > this.latencyTargetMs) return;
    // Growth needs the limit to bind, now and when the call was sent (a limit nobody reached says
    // nothing about the downstream), a call sent under this limit (one sent under a lower one is stale
    // news: growing on it went past a ceiling before the overload there came back), and no call from
    // before the last cut still out (NewReno: no growth during recovery).
    // In slow start every healthy call sent with the limit reached adds one (TCP: one per ACK), so calls
    // sent under the limit of a moment ago count too: that is how the limit doubles per round trip.
    const slowStart = this.slowStartUntil !== undefined && from < this.slowStartUntil;
    if (from >= this.max || !sentBinding || this.inFlightAtCut > 0) return;
    if (!slowStart && (inUse < from || sentAtLimit < from)) return;
    const nearCeiling = this.ceiling !== undefined && from + 1 >= this.ceiling && from <= this.ceiling;
    const slower = !nearCeiling ? 1 : this.ceilingConfirmed ? this.plateauRoundTrips : Math.min(APPROACH_ROUND_TRIPS, this.plateauRoundTrips);
    this.value = Math.min(this.max, this.value + (slowStart ? 1 : 1 / (from * slower)));
    if (this.slowStartUntil !== undefined && this.computedLimit >= this.slowStartUntil) this.slowStartUntil = undefined;
    if (this.computedLimit === from) return;
    if (this.ceiling !== undefined && this.computedLimit > this.ceiling + 1) {
      this.ceiling = undefined;
      this.ceilingConfirmed = false;
    }
    // Snap to the integer so the next step is exactly 1/(new limit), without carrying float noise.
    this.value = this.computedLimit;
    this.increases++;
    this.newRound();
    this.onChange?.({ from, to: this.computedLimit, reason: `${from} healthy calls at limit ${from}` });
  }

  /**
   * A round of calls is complete: were its failures overload? Returns true when
   * it changed the limit (the outcome that completed the round is then spent).
   */
  private judgeFailures(from: number, sentAtLimit: number): boolean {
    const { calls, failures, lowest, highest } = this.failureRound;
    this.failureRound = newFailureRound();
    const rate = failures / calls;
    const background = this.backgroundFailureRate ?? 0;
    const judged = this.failureCut;
    if (judged) {
      this.failureCut = undefined;
      // Back nearer the background than the round that cut: the failures fell with concurrency, overload.
      if (rate < (background + judged.rate) / 2) return false;
      // Fewer calls in flight, as many failures: they are the downstream's, not the load's, up to the limit cut.
      this.backgroundFailureRate = rate;
      this.backgroundLimit = Math.max(from, Math.floor(judged.restoreTo + EPSILON));
      if (judged.restoreTo <= this.value) return false;
      this.value = judged.restoreTo;
      // The cut took the limit for a ceiling, and ended a slow start; it was neither.
      this.forgetCeiling();
      this.slowStartUntil = judged.slowStartUntil;
      this.newRound();
      this.onChange?.({ from, to: this.computedLimit, reason: `failure rate ${percent(rate)} did not fall with concurrency: background, not overload` });
      return true;
    }
    if (rate > background + failureMargin(background, calls)) {
      const restoreTo = this.value;
      const slowStartUntil = this.slowStartUntil;
      const reason = `overload: failure rate ${percent(rate)} over ${calls} calls, background ${percent(background)}`;
      if (this.cut(from, Math.min(from, sentAtLimit), reason, Math.min(this.decreaseFactor, FAILURE_CUT_FACTOR))) {
        this.failureCut = { rate, restoreTo, slowStartUntil };
        return true;
      }
      return false;
    }
    // Up only from a round at a limit where the background was learnt: failures that grow a little per
    // step of the limit each stayed under the margin, and a background that followed them up took the
    // limit to twice a capacity with half the calls failing (aimd.test.ts, "creep"). Down from any round:
    // a background that only fell would settle below the true rate and make noise look like overload.
    // A round at or below the background vouches for the lowest limit its calls were sent under (a round
    // spans several as the limit grows); a cut undone, for the limit it undid.
    const learntAt = this.backgroundLimit ?? highest;
    if (highest <= learntAt || rate <= background) {
      this.backgroundFailureRate = background + (rate - background) * BACKGROUND_WEIGHT;
      this.backgroundLimit = rate <= background ? Math.max(learntAt, lowest) : learntAt;
    }
    return false;
  }

  /** Returns false when the cooldown or a recovery in progress held it back. */
  /** `factor` given (a cut on failures): always multiplicative, so the round after it can tell overload from background. */
  private cut(from: number, ceiling: number, reason: string, factor?: number): boolean {
    const now = this.clock.now();
    if (now - this.lastCutAt < this.cooldownMs || this.inFlightAtCut > 0) return false;
    this.lastCutAt = now;
    this.generation++;
    this.inFlightAtCut = this.inFlight;
    this.slowStartUntil = undefined;
    this.failureRound = newFailureRound();
    // Overload met again at or above the standing ceiling confirms it (the ceiling stays where overload
    // was first met). Met lower: not where we thought; a new, unconfirmed one. No tolerance of one below:
    // with S2's steady random 503s, each cut then lowered the ceiling by one, a ratchet to the floor.
    this.ceilingConfirmed = this.ceiling !== undefined && ceiling >= this.ceiling;
    if (!this.ceilingConfirmed) this.ceiling = ceiling;
    const multiplied = Math.floor(ceiling * (factor ?? this.decreaseFactor));
    // A failed probe above a confirmed ceiling: the limit just below it held for the whole plateau (or
    // the approach), and the downstream said no only one step above it. A multiplicative cut below that
    // costs a round trip or more at too few calls each time the relay probes (S4: 11 -> 9 is 10% of
    // goodput for a round trip, 11 -> 10 nothing).
    // Likewise a failed step up from a limit whose last round trip at the limit met the target (S4: 10
    // held, 11 did not; 11 -> 9 cost a round trip at 90%, and the next probe came sooner). Overload at or
    // below that limit says it no longer holds: the downstream changed, and the cut is multiplicative.
    const held = this.heldLimit !== undefined && this.heldLimit < ceiling ? this.heldLimit : undefined;
    if (held === undefined) this.heldLimit = undefined;
    const back = factor !== undefined ? multiplied : Math.max(multiplied, this.ceilingConfirmed ? this.ceiling! - 1 : 0, held ?? 0);
    this.value = Math.max(this.min, back);
    this.newRound();
    if (this.computedLimit === from) return true;
    this.decreases++;
    this.onChange?.({ from, to: this.computedLimit, reason });
    return true;
  }

  private newRound(): void {
    this.roundCalls = 0;
    this.roundSlow = false;
    this.roundTrip = [];
    this.roundPeakInUse = 0;
  }

  snapshot(): {
    mode: ProtectionMode;
    limit: number;
    computedLimit: number;
    min: number;
    max: number;
    increases: number;
    decreases: number;
    drifts: number;
    /** The failure rate judged not to be overload (null before the first round of calls). */
    backgroundFailureRate: number | null;
    slowStart: boolean;
    /** Canary mode only: both sides' calls, failures and calls that waited (or would have) for the limit. */
    canary?: CanarySnapshot;
  } {
    return {
      backgroundFailureRate: this.backgroundFailureRate ?? null,
      slowStart: this.slowStartUntil !== undefined,
      mode: this.mode,
      limit: this.limit,
      computedLimit: this.computedLimit,
      min: this.min,
      max: this.max,
      increases: this.increases,
      decreases: this.decreases,
      drifts: this.drifts,
      ...this.enforcement.member(),
    };
  }
}

function newFailureRound(): { calls: number; failures: number; lowest: number; highest: number } {
  return { calls: 0, failures: 0, lowest: Number.POSITIVE_INFINITY, highest: 0 };
}

function percent(rate: number): string {
  return `${Math.round(rate * 100)}%`;
}

function medianOf(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
