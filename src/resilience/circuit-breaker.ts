import type { Clock } from '../clock.js';
import { protectionMode, type ProtectionMode } from './mode.js';
import { TimeBuckets } from './time-buckets.js';

export type BreakerState = 'closed' | 'open' | 'half_open';

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
  /** The sliding window the rates are judged over, kept in 10 buckets so memory is bounded. @default 10000 */
  windowMs?: number;
  /** Calls the window must hold before its rates are judged, so a handful of requests never opens it. @default 20 */
  minimumCalls?: number;
  /** Opens when at least this fraction of the calls in the window failed. @default 0.5 */
  failureRateThreshold?: number;
  /** A call (failed or not) slower than this counts as slow. @default 2500 */
  slowCallMs?: number;
  /** Opens when at least this fraction of the calls in the window were slow. @default 0.8 */
  slowCallRateThreshold?: number;
  /** How long it stays open before letting probes through. @default 5000 */
  openMs?: number;
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
  /** A half-open trial call (always false in shadow and off mode). */
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

type Internal =
  | { kind: 'closed' }
  | { kind: 'open'; until: number }
  | { kind: 'half_open'; inFlight: number; successes: number };

const NOOP_PERMIT: BreakerPermit = Object.freeze({ allowed: true, probe: false, record() {}, cancel() {} });

const percent = (rate: number) => `${Math.round(rate * 100)}%`;

/**
 * A circuit breaker per downstream: closed -> open when the failure rate or the
 * slow-call rate over a sliding window crosses its threshold (once `minimumCalls`
 * are in the window); open -> half_open lazily after `openMs`; half_open ->
 * closed after `halfOpenProbes` probe successes, or back to open on any probe
 * failure. No timers: it moves only when called.
 *
 * In shadow mode the state machine runs exactly as in enforce but every call is
 * let through; the calls enforce would have refused are counted
 * (`shadowRejections`) and their outcomes ignored, as enforce would never have seen them.
 */
export class CircuitBreaker {
  private readonly clock: Clock;
  private readonly mode: ProtectionMode;
  private readonly windowMs: number;
  private readonly minimumCalls: number;
  private readonly failureRateThreshold: number;
  private readonly slowCallMs: number;
  private readonly slowCallRateThreshold: number;
  private readonly openMs: number;
  private readonly halfOpenProbes: number;
  private readonly onStateChange: ((change: BreakerStateChange) => void) | undefined;
  private readonly window: TimeBuckets<'calls' | 'failures' | 'slow'>;
  private current: Internal = { kind: 'closed' };
  private transitions = 0;
  private shadowRejections = 0;

  constructor(options: CircuitBreakerOptions) {
    this.clock = options.clock;
    this.mode = protectionMode(options.mode);
    this.windowMs = options.windowMs ?? 10_000;
    this.window = new TimeBuckets({ windowMs: this.windowMs, counters: ['calls', 'failures', 'slow'] });
    this.minimumCalls = options.minimumCalls ?? 20;
    if (!(Number.isInteger(this.minimumCalls) && this.minimumCalls >= 1)) {
      throw new TypeError(`Expected \`minimumCalls\` to be an integer from 1 and up, got \`${this.minimumCalls}\``);
    }
    this.failureRateThreshold = fraction('failureRateThreshold', options.failureRateThreshold ?? 0.5);
    this.slowCallMs = options.slowCallMs ?? 2500;
    if (!(Number.isFinite(this.slowCallMs) && this.slowCallMs >= 0)) {
      throw new TypeError(`Expected \`slowCallMs\` to be a number from 0 and up, got \`${this.slowCallMs}\``);
    }
    this.slowCallRateThreshold = fraction('slowCallRateThreshold', options.slowCallRateThreshold ?? 0.8);
    this.openMs = options.openMs ?? 5000;
    if (!(Number.isFinite(this.openMs) && this.openMs >= 1)) {
      throw new TypeError(`Expected \`openMs\` to be a number from 1 and up, got \`${this.openMs}\``);
    }
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

  tryAcquire(): BreakerPermit | BreakerRejection {
    if (this.mode === 'off') return NOOP_PERMIT;
    const now = this.clock.now();
    this.advance(now);
    const state = this.current;
    switch (state.kind) {
      case 'closed':
        return this.permit(false);
      case 'open':
        return this.reject(state.until - now);
      case 'half_open':
        // Never more probes out than the successes still needed: a recovering downstream gets as few calls as the decision takes.
        if (state.inFlight + state.successes >= this.halfOpenProbes) {
          // When a slot frees is unknown; a probe slower than slowCallMs counts as failed, so by then the probes have decided.
          return this.reject(this.slowCallMs);
        }
        state.inFlight++;
        return this.permit(true);
    }
  }

  /**
   * While the breaker would refuse a call right now (open, or half-open with every
   * probe slot taken) and enforces: the Retry-After tryAcquire would give, in ms;
   * else null. No side effect on probes: callers use it to refuse work before
   * queueing it (a request that would only be refused later need not wait for a worker).
   */
  openForMs(): number | null {
    if (this.mode !== 'enforce') return null;
    const now = this.clock.now();
    this.advance(now);
    const state = this.current;
    if (state.kind === 'open') return Math.max(1, Math.ceil(state.until - now));
    if (state.kind === 'half_open' && state.inFlight + state.successes >= this.halfOpenProbes) return Math.max(1, Math.ceil(this.slowCallMs));
    return null;
  }

  snapshot(): {
    state: BreakerState;
    mode: ProtectionMode;
    calls: number;
    failureRate: number;
    slowCallRate: number;
    /** Epoch ms when the next probe may go; null when closed or every probe slot is taken. */
    nextProbeAt: number | null;
    shadowRejections: number;
    transitions: number;
  } {
    const now = this.clock.now();
    this.advance(now);
    const { calls, failures, slow } = this.window.totals(now);
    const state = this.current;
    let nextProbeAt: number | null = null;
    if (state.kind === 'open') nextProbeAt = state.until;
    else if (state.kind === 'half_open' && state.inFlight + state.successes < this.halfOpenProbes) nextProbeAt = now;
    return {
      state: state.kind,
      mode: this.mode,
      calls,
      failureRate: calls === 0 ? 0 : failures / calls,
      slowCallRate: calls === 0 ? 0 : slow / calls,
      nextProbeAt,
      shadowRejections: this.shadowRejections,
      transitions: this.transitions,
    };
  }

  /** Open -> half_open once openMs has passed: lazily, as there is no timer. */
  private advance(now: number): void {
    if (this.current.kind === 'open' && now >= this.current.until) {
      this.transition({ kind: 'half_open', inFlight: 0, successes: 0 }, `open for ${this.openMs} ms; probing`);
    }
  }

  private reject(waitMs: number): BreakerPermit | BreakerRejection {
    if (this.mode === 'shadow') {
      this.shadowRejections++;
      return NOOP_PERMIT;
    }
    return { allowed: false, retryAfterMs: Math.max(1, Math.ceil(waitMs)) };
  }

  private permit(probe: boolean): BreakerPermit {
    // Transitions count as generations: an outcome that arrives after the state moved on belongs to a state
    // that no longer exists (a slow call from before the breaker opened must not count as a probe).
    const generation = this.transitions;
    let settled = false;
    return {
      allowed: true,
      probe: this.mode === 'enforce' && probe,
      record: (outcome) => {
        if (settled) return;
        settled = true;
        if (generation === this.transitions) this.onOutcome(probe, outcome);
      },
      cancel: () => {
        if (settled) return;
        settled = true;
        if (generation === this.transitions && this.current.kind === 'half_open' && probe) this.current.inFlight--;
      },
    };
  }

  private onOutcome(probe: boolean, outcome: BreakerOutcome): void {
    const now = this.clock.now();
    const slow = outcome.durationMs > this.slowCallMs;
    const state = this.current;
    if (probe && state.kind === 'half_open') {
      state.inFlight--;
      // A slow probe is a failed one: slowness alone is enough to open the breaker, so it is not recovery.
      if (!outcome.ok) return this.open(now, `probe failed: ${outcome.reason ?? 'error'}`);
      if (slow) return this.open(now, `probe slow: ${Math.round(outcome.durationMs)} ms > ${this.slowCallMs} ms`);
      state.successes++;
      if (state.successes >= this.halfOpenProbes) {
        this.transition({ kind: 'closed' }, `${this.halfOpenProbes} probe${this.halfOpenProbes === 1 ? '' : 's'} succeeded`);
      }
      return;
    }
    if (state.kind !== 'closed') return;
    this.window.add(now, { calls: 1, failures: outcome.ok ? 0 : 1, slow: slow ? 1 : 0 });
    const { calls, failures, slow: slowCalls } = this.window.totals(now);
    if (calls < this.minimumCalls) return;
    const over = `over ${calls} calls in ${this.windowMs / 1000} s`;
    const failureRate = failures / calls;
    if (failureRate >= this.failureRateThreshold) {
      return this.open(now, `failure rate ${percent(failureRate)} >= ${percent(this.failureRateThreshold)} ${over}`);
    }
    const slowRate = slowCalls / calls;
    if (slowRate >= this.slowCallRateThreshold) {
      return this.open(now, `slow-call rate ${percent(slowRate)} >= ${percent(this.slowCallRateThreshold)} (slower than ${this.slowCallMs} ms) ${over}`);
    }
  }

  private open(now: number, reason: string): void {
    this.transition({ kind: 'open', until: now + this.openMs }, reason);
  }

  private transition(next: Internal, reason: string): void {
    const from = this.current.kind;
    this.current = next;
    this.transitions++;
    // A closed breaker starts from a clean window, or the failures that opened it would open it again at once.
    if (next.kind === 'closed') this.window.clear();
    this.onStateChange?.({ from, to: next.kind, reason });
  }
}

function fraction(name: string, value: number): number {
  if (!(typeof value === 'number' && value > 0 && value <= 1)) {
    throw new TypeError(`Expected \`${name}\` to be a number above 0 and at most 1, got \`${value}\``);
  }
  return value;
}
