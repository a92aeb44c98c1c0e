import type { Clock } from '../clock.js';
import { Enforcement, type CanarySide, type CanarySnapshot } from './canary.js';
import type { ProtectionMode } from './mode.js';
import { TimeBuckets } from './time-buckets.js';

export type BreakerState = 'closed' | 'open' | 'half_open';

/** An operator's override of the state machine (POST /admin/routes/{name}/breaker); null: automatic. */
export type ForcedBreakerState = 'open' | 'closed';

export interface BreakerStateChange {
  from: BreakerState;
  to: BreakerState;
  /** One human sentence, e.g. "failure rate 62% >= 50% over 24 calls in 10 s". */
  reason: string;
}

export interface CircuitBreakerOptions {
  clock: Clock;
  /** @default 'enforce' */
  mode?: ProtectionMode;
  /** In `canary` mode: the share of requests (by their relay-made id) it refuses for; the rest it only reports. @default 10 */
  canaryPercent?: number;
  /** The sliding window the rates are judged over, kept in 10 buckets so memory is bounded. @default 10000 */
  windowMs?: number;
  /**
   * Calls the window must hold before its rates are judged. 100, not 20: a downstream failing 30% of
   * calls at random shows 50% failures over the first 20 calls of an empty window 6.5% of the time
   * (process start, every close); over the first 100, 0.003% (LEARNINGS.md, "Breaker: fast detection and recovery").
   * @default 100
   */
  minimumCalls?: number;
  /** Opens when at least this fraction of the calls in the window failed. @default 0.5 */
  failureRateThreshold?: number;
  /** A call (failed or not) slower than this counts as slow. @default 2500 */
  slowCallMs?: number;
  /** Opens when at least this fraction of the calls in the window were slow. @default 0.8 */
  slowCallRateThreshold?: number;
  /**
   * Opens when the last this many calls all failed, within `windowMs`, whatever the rate says: an outage
   * after a long healthy or noisy period is seen within this many calls, not after the window's history
   * is outvoted (Envoy's `consecutive_5xx`). A run of 20 at 30% random failures: 0.3^20 = 3.5e-11 per call. 0 turns it off.
   * @default 20
   */
  consecutiveFailures?: number;
  /** How long it stays open after it trips, before letting probes through. @default 1000 */
  openMs?: number;
  /**
   * Each failed probe doubles the open interval, from `openMs` up to this (raised to `openMs` when lower):
   * a long outage costs the downstream fewer probes, and a return is still seen within this long. @default 2000
   */
  openMaxMs?: number;
  /** Probes in flight at once in half-open, and probe successes needed to close. @default 3 */
  halfOpenProbes?: number;
  /** Every transition, in shadow mode too. */
  onStateChange?: (change: BreakerStateChange) => void;
}

export interface BreakerOutcome {
  ok: boolean;
  durationMs: number;
  /** Why it failed, e.g. "HTTP 503"; quoted in the transition reason. */
  reason?: string;
}

export interface BreakerPermit {
  readonly allowed: true;
  /** A half-open trial call (always false in shadow and off mode, and on a canary's shadow side). */
  readonly probe: boolean;
  /** The call's outcome. Only the first record or cancel of a permit counts. */
  record(outcome: BreakerOutcome): void;
  /** The call never happened (e.g. its rate-limit wait was aborted): frees a probe slot, counts nothing. */
  cancel(): void;
}

export interface BreakerRejection {
  readonly allowed: false;
  /** Ms until the next probe may go, >= 1. */
  readonly retryAfterMs: number;
}

/** `intervalMs`: how long this open spell lasts (or the last one lasted): a failed probe doubles it. */
type Internal =
  | { kind: 'closed' }
  | { kind: 'open'; until: number; intervalMs: number }
  | { kind: 'half_open'; inFlight: number; successes: number; intervalMs: number };

const NOOP_PERMIT: BreakerPermit = Object.freeze({ allowed: true, probe: false, record() {}, cancel() {} });

const percent = (rate: number) => `${Math.round(rate * 100)}%`;

/**
 * A circuit breaker per downstream: closed -> open when the failure rate or the
 * slow-call rate over a sliding window crosses its threshold (once `minimumCalls`
 * are in the window), or when the last `consecutiveFailures` calls all failed;
 * open -> half_open lazily after the open interval (`openMs`, doubled by each
 * failed probe up to `openMaxMs`); half_open -> closed after `halfOpenProbes`
 * probe successes, or back to open on any probe failure. No timers: it moves
 * only when called.
 *
 * In shadow mode the state machine runs exactly as in enforce but every call is
 * let through; the calls enforce would have refused are counted
 * (`shadowRejections`) and their outcomes ignored, as enforce would never have seen them.
 * In canary mode one state machine serves both sides: a call on the enforced
 * side is treated as in enforce, one on the shadow side as in shadow, and each
 * side's calls, failures and (would-be) refusals are counted apart.
 */
export class CircuitBreaker {
  private readonly clock: Clock;
  private readonly mode: ProtectionMode;
  private readonly enforcement: Enforcement;
  private readonly windowMs: number;
  private readonly minimumCalls: number;
  private readonly failureRateThreshold: number;
  private readonly slowCallMs: number;
  private readonly slowCallRateThreshold: number;
  private readonly consecutiveFailures: number;
  private readonly openMs: number;
  private readonly openMaxMs: number;
  private readonly halfOpenProbes: number;
  private readonly onStateChange: ((change: BreakerStateChange) => void) | undefined;
  private readonly window: TimeBuckets<'calls' | 'failures' | 'slow'>;
  /** When each failure of the current run happened, the last `consecutiveFailures` of them, as a ring. */
  private readonly runAt: number[];
  /** Failures in a row while closed; a success (or a transition) ends the run. */
  private runLength = 0;
  /** Calls let through so far, in the order they were let through (each permit's number). */
  private permitsIssued = 0;
  /** The latest-let-through call whose outcome is known, and whether it failed or was slow. */
  private newestSettled = 0;
  private newestUnhealthy = false;
  private current: Internal = { kind: 'closed' };
  private transitions = 0;
  private shadowRejections = 0;
  private forced: ForcedBreakerState | null = null;

  constructor(options: CircuitBreakerOptions) {
    this.clock = options.clock;
    this.enforcement = new Enforcement({ mode: options.mode, canaryPercent: options.canaryPercent, salt: 'breaker' });
    this.mode = this.enforcement.mode;
    this.windowMs = options.windowMs ?? 10_000;
    this.window = new TimeBuckets({ windowMs: this.windowMs, counters: ['calls', 'failures', 'slow'] });
    this.minimumCalls = options.minimumCalls ?? 100;
    if (!(Number.isInteger(this.minimumCalls) && this.minimumCalls >= 1)) {
      throw new TypeError(`Expected \`minimumCalls\` to be an integer from 1 and up, got \`${this.minimumCalls}\``);
    }
    this.failureRateThreshold = fraction('failureRateThreshold', options.failureRateThreshold ?? 0.5);
    this.slowCallMs = options.slowCallMs ?? 2500;
    if (!(Number.isFinite(this.slowCallMs) && this.slowCallMs >= 0)) {
      throw new TypeError(`Expected \`slowCallMs\` to be a number from 0 and up, got \`${this.slowCallMs}\``);
    }
    this.slowCallRateThreshold = fraction('slowCallRateThreshold', options.slowCallRateThreshold ?? 0.8);
    this.consecutiveFailures = options.consecutiveFailures ?? 20;
    if (!(Number.isInteger(this.consecutiveFailures) && this.consecutiveFailures >= 0)) {
      throw new TypeError(`Expected \`consecutiveFailures\` to be an integer from 0 and up, got \`${this.consecutiveFailures}\``);
    }
    this.runAt = new Array<number>(this.consecutiveFailures).fill(0);
    this.openMs = options.openMs ?? 1000;
    if (!(Number.isFinite(this.openMs) && this.openMs >= 1)) {
      throw new TypeError(`Expected \`openMs\` to be a number from 1 and up, got \`${this.openMs}\``);
    }
    const openMaxMs = options.openMaxMs ?? 2000;
    if (!(Number.isFinite(openMaxMs) && openMaxMs >= 1)) {
      throw new TypeError(`Expected \`openMaxMs\` to be a number from 1 and up, got \`${openMaxMs}\``);
    }
    // A cap below the first interval would shorten it; setting only BREAKER_OPEN_MS keeps a fixed interval instead.
    this.openMaxMs = Math.max(this.openMs, openMaxMs);
    this.halfOpenProbes = options.halfOpenProbes ?? 3;
    if (!(Number.isInteger(this.halfOpenProbes) && this.halfOpenProbes >= 1)) {
      throw new TypeError(`Expected \`halfOpenProbes\` to be an integer from 1 and up, got \`${this.halfOpenProbes}\``);
    }
    this.onStateChange = options.onStateChange;
  }

  get state(): BreakerState {
    this.advance(this.clock.now());
    return this.current.kind;
  }

  /** `id`: the relay-made id of the request (or job) the call is for; it chooses the side in canary mode. */
  tryAcquire(id?: string): BreakerPermit | BreakerRejection {
    if (this.mode === 'off') return NOOP_PERMIT;
    const side = this.enforcement.sideOf(id);
    this.enforcement.count(side, 'requests');
    // Forced open refuses in shadow mode too: the operator asked for it. No probe is due, so the longest interval.
    if (this.forced === 'open') {
      this.enforcement.count(side, 'rejected');
      return { allowed: false, retryAfterMs: this.openMaxMs };
    }
    const now = this.clock.now();
    this.advance(now);
    const state = this.current;
    switch (state.kind) {
      case 'closed':
        return this.permit(false, side);
      case 'open':
        return this.reject(state.until - now, side);
      case 'half_open':
        // Never more probes out than the successes still needed: a recovering downstream gets as few calls as the decision takes.
        if (state.inFlight + state.successes >= this.halfOpenProbes) {
          // When a slot frees is unknown; a probe slower than slowCallMs counts as failed, so by then the probes have decided.
          return this.reject(this.slowCallMs, side);
        }
        state.inFlight++;
        return this.permit(true, side);
    }
  }

  /**
   * While the breaker would refuse a call right now (open, or half-open with every
   * probe slot taken) and enforces: the Retry-After tryAcquire would give, in ms;
   * else null. No side effect on probes: callers use it to refuse work before
   * queueing it (a request that would only be refused later need not wait for a worker).
   * In canary mode only for a request on the enforced side (`id` as in tryAcquire).
   */
  openForMs(id?: string): number | null {
    if (this.mode === 'off') return null;
    if (this.forced === 'open') return this.openMaxMs;
    if (this.enforcement.sideOf(id) !== 'enforced') return null;
    const now = this.clock.now();
    this.advance(now);
    const state = this.current;
    if (state.kind === 'open') return Math.max(1, Math.ceil(state.until - now));
    if (state.kind === 'half_open' && state.inFlight + state.successes >= this.halfOpenProbes) return Math.max(1, Math.ceil(this.slowCallMs));
    return null;
  }

  /** The request `id` was refused before queueing because `openForMs(id)` said so: counted as tryAcquire would have. */
  countRefusal(id: string): void {
    const side = this.enforcement.sideOf(id);
    this.enforcement.count(side, 'requests');
    this.enforcement.count(side, 'rejected');
  }

  snapshot(): {
    state: BreakerState;
    mode: ProtectionMode;
    calls: number;
    failureRate: number;
    slowCallRate: number;
    /** Failures in a row while closed (it opens at `consecutiveFailures`). */
    consecutiveFailures: number;
    /** Epoch ms when the next probe may go; null when closed, forced, or every probe slot is taken. */
    nextProbeAt: number | null;
    shadowRejections: number;
    transitions: number;
    /** An operator's override (see `force`); null: automatic. */
    forced: ForcedBreakerState | null;
    /** Canary mode only: both sides' calls, failures and (would-be) refusals. */
    canary?: CanarySnapshot;
  } {
    const now = this.clock.now();
    this.advance(now);
    const { calls, failures, slow } = this.window.totals(now);
    const state = this.current;
    let nextProbeAt: number | null = null;
    if (state.kind === 'open') nextProbeAt = this.forced === 'open' ? null : state.until;
    else if (state.kind === 'half_open' && state.inFlight + state.successes < this.halfOpenProbes) nextProbeAt = now;
    return {
      state: state.kind,
      mode: this.mode,
      calls,
      failureRate: calls === 0 ? 0 : failures / calls,
      slowCallRate: calls === 0 ? 0 : slow / calls,
      consecutiveFailures: this.runLength,
      nextProbeAt,
      shadowRejections: this.shadowRejections,
      transitions: this.transitions,
      forced: this.forced,
      ...this.enforcement.member(),
    };
  }


  /**
   * An operator's override, acting in every mode but `off`: 'open' refuses
   * every call (CIRCUIT_OPEN, Retry-After `openMaxMs`) and sends no probe;
   * 'closed' lets every call through and keeps counting outcomes, but never
   * opens; null returns to automatic from a clean closed state (a recovered
   * downstream gets the warm-up of any close). The one place a forced state
   * enters, so a fleet can mirror it.
   */
  force(state: ForcedBreakerState | null): void {
    this.forced = state;
    if (this.mode === 'off') return;
    const who = 'by an operator';
    if (state === 'open') {
      // Already open: stay, with no end, and no second "open" transition for dashboards to count.
      if (this.current.kind === 'open') this.current = { kind: 'open', until: Number.POSITIVE_INFINITY, intervalMs: this.current.intervalMs };
      else this.transition({ kind: 'open', until: Number.POSITIVE_INFINITY, intervalMs: this.openMs }, `forced open ${who}`);
      return;
    }
    if (this.current.kind !== 'closed') {
      this.transition({ kind: 'closed' }, state === 'closed' ? `forced closed ${who}` : `returned to automatic ${who}`);
    } else if (state === null) {
      // Failures counted while forced closed must not open it the moment it is automatic again.
      this.window.clear();
      this.runLength = 0;
    }
  }

  /** Open -> half_open once the open interval has passed: lazily, as there is no timer. */
  private advance(now: number): void {
    const state = this.current;
    if (state.kind === 'open' && now >= state.until && this.forced === null) {
      this.transition({ kind: 'half_open', inFlight: 0, successes: 0, intervalMs: state.intervalMs }, `open for ${state.intervalMs} ms; probing`);
    }
  }

  private reject(waitMs: number, side: CanarySide): BreakerPermit | BreakerRejection {
    this.enforcement.count(side, 'rejected');
    if (side === 'shadow') {
      this.shadowRejections++;
      return this.passThrough(side);
    }
    return { allowed: false, retryAfterMs: Math.max(1, Math.ceil(waitMs)) };
  }

  /** A call let through that enforce would have refused: its outcome is not the state machine's, only the canary's. */
  private passThrough(side: CanarySide): BreakerPermit {
    if (this.mode !== 'canary') return NOOP_PERMIT;
    let settled = false;
    return {
      allowed: true,
      probe: false,
      record: (outcome) => {
        if (settled) return;
        settled = true;
        if (!outcome.ok) this.enforcement.count(side, 'failures');
      },
      cancel: () => {
        settled = true;
      },
    };
  }

  private permit(probe: boolean, side: CanarySide): BreakerPermit {
    // Transitions count as generations: an outcome that arrives after the state moved on belongs to a state
    // that no longer exists (a slow call from before the breaker opened must not count as a probe).
    const generation = this.transitions;
    const sequence = ++this.permitsIssued;
    let settled = false;
    return {
      allowed: true,
      probe: side === 'enforced' && probe,
      record: (outcome) => {
        if (settled) return;
        settled = true;
        if (!outcome.ok) this.enforcement.count(side, 'failures');
        if (generation === this.transitions) this.onOutcome(probe, outcome, sequence);
      },
      cancel: () => {
        if (settled) return;
        settled = true;
        if (generation === this.transitions && this.current.kind === 'half_open' && probe) this.current.inFlight--;
      },
    };
  }

  /** `sequence`: the call's place in the order calls were let through. */
  private onOutcome(probe: boolean, outcome: BreakerOutcome, sequence: number): void {
    const now = this.clock.now();
    const slow = outcome.durationMs > this.slowCallMs;
    // Calls of this generation were all let through after those of any earlier one: the newest is always here.
    if (sequence > this.newestSettled) {
      this.newestSettled = sequence;
      this.newestUnhealthy = !outcome.ok || slow;
    }
    const state = this.current;
    if (probe && state.kind === 'half_open') {
      state.inFlight--;
      // A slow probe is a failed one: slowness alone is enough to open the breaker, so it is not recovery.
      // Still down: wait longer before the next probes, so a long outage costs the downstream less.
      const intervalMs = Math.min(this.openMaxMs, 2 * state.intervalMs);
      if (!outcome.ok) return this.open(now, `probe failed: ${outcome.reason ?? 'error'}`, intervalMs);
      if (slow) return this.open(now, `probe slow: ${Math.round(outcome.durationMs)} ms > ${this.slowCallMs} ms`, intervalMs);
      state.successes++;
      if (state.successes >= this.halfOpenProbes) {
        this.transition({ kind: 'closed' }, `${this.halfOpenProbes} probe${this.halfOpenProbes === 1 ? '' : 's'} succeeded`);
      }
      return;
    }
    if (state.kind !== 'closed') return;
    this.window.add(now, { calls: 1, failures: outcome.ok ? 0 : 1, slow: slow ? 1 : 0 });
    const runStartedAt = this.extendRun(now, outcome.ok);
    // The window keeps every outcome (its rates stay true), but it opens only while the newest call it heard of
    // failed or was slow: bad outcomes of calls sent before one that went well are no news. A latency spike's
    // last timeouts arrive after the first quick successes of its end, and opened the breaker on a downstream
    // already back (LEARNINGS, "Late bad news does not open it").
    if (!this.newestUnhealthy) return;
    const { calls, failures, slow: slowCalls } = this.window.totals(now);
    if (calls >= this.minimumCalls) {
      const over = `over ${calls} calls in ${this.windowMs / 1000} s`;
      const failureRate = failures / calls;
      if (failureRate >= this.failureRateThreshold) {
        return this.open(now, `failure rate ${percent(failureRate)} >= ${percent(this.failureRateThreshold)} ${over}`, this.openMs);
      }
      const slowRate = slowCalls / calls;
      if (slowRate >= this.slowCallRateThreshold) {
        return this.open(now, `slow-call rate ${percent(slowRate)} >= ${percent(this.slowCallRateThreshold)} (slower than ${this.slowCallMs} ms) ${over}`, this.openMs);
      }
    }
    if (runStartedAt !== null) {
      const last = outcome.reason ? `, the last ${outcome.reason}` : '';
      return this.open(now, `${this.consecutiveFailures} consecutive failures in ${Math.round(now - runStartedAt)} ms${last}`, this.openMs);
    }
  }

  /**
   * Counts one closed-state outcome into the run of failures. Returns when the
   * run's last `consecutiveFailures` calls began failing, if they all fell within
   * the window (the breaker should open); else null.
   */
  private extendRun(now: number, ok: boolean): number | null {
    const size = this.consecutiveFailures;
    if (size === 0) return null;
    if (ok) {
      this.runLength = 0;
      return null;
    }
    this.runAt[this.runLength % size] = now;
    this.runLength++;
    if (this.runLength < size) return null;
    // The oldest of the last `size` failures sits where the next one will go.
    const oldest = this.runAt[this.runLength % size]!;
    return now - oldest < this.windowMs ? oldest : null;
  }

  private open(now: number, reason: string, intervalMs: number): void {
    if (this.forced === 'closed') return;
    this.transition({ kind: 'open', until: now + intervalMs, intervalMs }, reason);
  }

  private transition(next: Internal, reason: string): void {
    const from = this.current.kind;
    this.current = next;
    this.transitions++;
    // A closed breaker starts from a clean window, or the failures that opened it would open it again at once.
    if (next.kind === 'closed') this.window.clear();
    this.runLength = 0;
    this.onStateChange?.({ from, to: next.kind, reason });
  }

  /**
   * Another instance's breaker for the same downstream opened (issue 14): open
   * here too, for `openForMs`, its remaining interval. A breaker already open
   * keeps its own interval; off mode ignores it.
   */
  openFromPeer(reason: string, openForMs: number): void {
    if (this.mode === 'off' || this.forced !== null) return;
    const now = this.clock.now();
    this.advance(now);
    if (this.current.kind === 'open') return;
    const intervalMs = Math.min(this.openMaxMs, Math.max(this.openMs, openForMs));
    this.transition({ kind: 'open', until: now + Math.max(1, openForMs), intervalMs }, reason);
  }

  /** Enough probes succeeded across the fleet, or a peer closed (issue 14): close. No-op when already closed. */
  closeFromPeer(reason: string): void {
    if (this.mode === 'off' || this.forced !== null || this.current.kind === 'closed') return;
    this.transition({ kind: 'closed' }, reason);
  }
}

function fraction(name: string, value: number): number {
  if (!(typeof value === 'number' && value > 0 && value <= 1)) {
    throw new TypeError(`Expected \`${name}\` to be a number above 0 and at most 1, got \`${value}\``);
  }
  return value;
}
