import { describe, expect, it } from 'vitest';
import { CircuitBreaker, type BreakerPermit, type BreakerStateChange, type CircuitBreakerOptions } from './circuit-breaker.js';

function fakeClock(start = 1_000_000) {
  let now = start;
  return { clock: { now: () => now }, advance: (ms: number) => (now += ms) };
}

function breaker(extra: Partial<CircuitBreakerOptions> = {}) {
  const time = fakeClock();
  const changes: BreakerStateChange[] = [];
  const cb = new CircuitBreaker({
    clock: time.clock,
    windowMs: 10_000,
    minimumCalls: 20,
    failureRateThreshold: 0.5,
    slowCallMs: 2500,
    slowCallRateThreshold: 0.8,
    openMs: 5000,
    halfOpenProbes: 3,
    onStateChange: (c) => changes.push(c),
    ...extra,
  });
  return { cb, time, changes };
}

function acquire(cb: CircuitBreaker): BreakerPermit {
  const permit = cb.tryAcquire();
  if (!permit.allowed) throw new Error(`expected a permit, got a rejection (${permit.retryAfterMs} ms)`);
  return permit;
}

/** Runs `count` calls through the breaker, each with the given outcome. */
function calls(cb: CircuitBreaker, count: number, outcome: { ok: boolean; durationMs?: number; reason?: string }) {
  for (let i = 0; i < count; i++) acquire(cb).record({ durationMs: 10, ...outcome });
}

/** Opens the breaker with 20 failures. */
function trip(cb: CircuitBreaker) {
  calls(cb, 20, { ok: false, reason: 'HTTP 503' });
  expect(cb.state).toBe('open');
}

describe('CircuitBreaker', () => {
  it('stays closed below minimumCalls even when every call fails', () => {
    const { cb, changes } = breaker();
    calls(cb, 19, { ok: false });
    expect(cb.state).toBe('closed');
    expect(cb.tryAcquire().allowed).toBe(true);
    expect(changes).toEqual([]);
  });

  it('opens once minimumCalls are seen and the failure rate reaches the threshold, telling why once', () => {
    const { cb, changes } = breaker();
    calls(cb, 12, { ok: true });
    calls(cb, 11, { ok: false, reason: 'HTTP 503' });
    expect(cb.state).toBe('closed'); // 11/23 = 48%
    calls(cb, 1, { ok: false });
    expect(cb.state).toBe('open'); // 12/24 = 50%
    expect(changes).toEqual([{ from: 'closed', to: 'open', reason: 'failure rate 50% >= 50% over 24 calls in 10 s' }]);
    expect(cb.tryAcquire().allowed).toBe(false);
    expect(cb.snapshot()).toMatchObject({ state: 'open', calls: 24, failureRate: 0.5, transitions: 1 });
  });

  it('opens when most calls are slow, successful or not', () => {
    const { cb, changes } = breaker();
    calls(cb, 4, { ok: true, durationMs: 100 });
    calls(cb, 14, { ok: true, durationMs: 3000 });
    calls(cb, 2, { ok: false, durationMs: 3000 });
    expect(cb.state).toBe('open'); // 16/20 slow = 80%, failures only 10%
    expect(changes[0]?.reason).toBe('slow-call rate 80% >= 80% (slower than 2500 ms) over 20 calls in 10 s');
  });

  it('forgets calls older than the window', () => {
    const { cb, time } = breaker();
    calls(cb, 19, { ok: false });
    time.advance(10_001);
    calls(cb, 1, { ok: false });
    expect(cb.state).toBe('closed');
    expect(cb.snapshot().calls).toBe(1);
    // Half a window later the fresh failures still count together.
    time.advance(5_000);
    calls(cb, 19, { ok: false });
    expect(cb.state).toBe('open');
  });

  it('refuses while open with retryAfterMs = the time left until the first probe', () => {
    const { cb, time } = breaker();
    trip(cb);
    expect(cb.tryAcquire()).toEqual({ allowed: false, retryAfterMs: 5000 });
    time.advance(3_200);
    expect(cb.tryAcquire()).toEqual({ allowed: false, retryAfterMs: 1800 });
    expect(cb.snapshot().nextProbeAt).toBe(time.clock.now() + 1800);
    time.advance(1_799.5);
    expect(cb.tryAcquire()).toEqual({ allowed: false, retryAfterMs: 1 });
  });

  it('openForMs says when a call would be refused, without taking a probe slot', () => {
    const { cb, time } = breaker();
    expect(cb.openForMs()).toBeNull();
    trip(cb);
    time.advance(1000);
    expect(cb.openForMs()).toBe(4000);
    time.advance(4000);
    expect(cb.openForMs()).toBeNull(); // half-open with free probe slots
    acquire(cb);
    acquire(cb);
    acquire(cb);
    expect(cb.openForMs()).toBe(2500); // every probe slot taken: as tryAcquire would answer
    const shadow = breaker({ mode: 'shadow' }).cb;
    trip(shadow);
    expect(shadow.state).toBe('open');
    expect(shadow.openForMs()).toBeNull(); // shadow never refuses, so admission never fails fast
  });

  it('lets exactly halfOpenProbes probes through at once after openMs', () => {
    const { cb, time, changes } = breaker();
    trip(cb);
    time.advance(5_000);
    const probes = [cb.tryAcquire(), cb.tryAcquire(), cb.tryAcquire()];
    expect(probes.map((p) => p.allowed && p.probe)).toEqual([true, true, true]);
    expect(cb.tryAcquire().allowed).toBe(false);
    expect(cb.state).toBe('half_open');
    expect(changes[1]).toEqual({ from: 'open', to: 'half_open', reason: 'open for 5000 ms; probing' });
  });

  it('closes after the probes succeed, with a clean window', () => {
    const { cb, time, changes } = breaker();
    trip(cb);
    time.advance(5_000);
    const probes = [acquire(cb), acquire(cb), acquire(cb)];
    probes[0]!.record({ ok: true, durationMs: 50 });
    probes[1]!.record({ ok: true, durationMs: 50 });
    expect(cb.state).toBe('half_open');
    probes[2]!.record({ ok: true, durationMs: 50 });
    expect(cb.state).toBe('closed');
    expect(changes.at(-1)).toEqual({ from: 'half_open', to: 'closed', reason: '3 probes succeeded' });
    // The failures that opened it are gone: one more failure does not reopen it.
    calls(cb, 1, { ok: false });
    expect(cb.snapshot()).toMatchObject({ state: 'closed', calls: 1 });
  });

  it('reopens for another openMs on one probe failure', () => {
    const { cb, time, changes } = breaker();
    trip(cb);
    time.advance(5_000);
    const [first, second] = [acquire(cb), acquire(cb)];
    first.record({ ok: true, durationMs: 50 });
    second.record({ ok: false, durationMs: 50, reason: 'HTTP 503' });
    expect(cb.state).toBe('open');
    expect(changes.at(-1)).toEqual({ from: 'half_open', to: 'open', reason: 'probe failed: HTTP 503' });
    expect(cb.tryAcquire()).toEqual({ allowed: false, retryAfterMs: 5000 });
  });

  it('treats a slow probe as a failed one', () => {
    const { cb, time } = breaker();
    trip(cb);
    time.advance(5_000);
    acquire(cb).record({ ok: true, durationMs: 4000 });
    expect(cb.state).toBe('open');
  });

  it('frees a probe slot when a probe is cancelled, without counting it', () => {
    const { cb, time } = breaker();
    trip(cb);
    time.advance(5_000);
    const probes = [acquire(cb), acquire(cb), acquire(cb)];
    probes[0]!.cancel();
    probes[0]!.cancel(); // idempotent: frees one slot, not two
    expect(cb.tryAcquire().allowed).toBe(true);
    expect(cb.tryAcquire().allowed).toBe(false);
  });

  it('counts a permit once: a second record is ignored', () => {
    const { cb, time } = breaker();
    trip(cb);
    time.advance(5_000);
    const probe = acquire(cb);
    probe.record({ ok: true, durationMs: 50 });
    probe.record({ ok: true, durationMs: 50 });
    probe.record({ ok: true, durationMs: 50 });
    expect(cb.state).toBe('half_open');
  });

  it('ignores a slow call from before the breaker opened when it finishes during half-open', () => {
    const { cb, time } = breaker();
    const straggler = acquire(cb);
    trip(cb);
    time.advance(5_000);
    const probes = [acquire(cb), acquire(cb), acquire(cb)];
    straggler.record({ ok: false, durationMs: 9_000, reason: 'timeout' });
    expect(cb.state).toBe('half_open');
    expect(cb.tryAcquire().allowed).toBe(false); // its record freed no probe slot
    for (const p of probes) p.record({ ok: true, durationMs: 50 });
    expect(cb.state).toBe('closed');
  });

  it('in shadow mode runs the state machine but lets every call through, counting the refusals', () => {
    const { cb, time, changes } = breaker({ mode: 'shadow' });
    trip(cb);
    const during = [cb.tryAcquire(), cb.tryAcquire()];
    expect(during.every((p) => p.allowed)).toBe(true);
    expect(cb.snapshot()).toMatchObject({ state: 'open', mode: 'shadow', shadowRejections: 2 });
    // Outcomes of calls enforce would have refused do not count.
    for (const p of during) if (p.allowed) p.record({ ok: true, durationMs: 10 });
    expect(cb.state).toBe('open');

    time.advance(5_000);
    const permits = [acquire(cb), acquire(cb), acquire(cb), acquire(cb)];
    expect(permits.map((p) => p.probe)).toEqual([false, false, false, false]);
    expect(cb.snapshot().shadowRejections).toBe(3); // the fourth would have been refused
    for (const p of permits) p.record({ ok: true, durationMs: 10 });
    expect(cb.state).toBe('closed');
    expect(changes.map((c) => c.to)).toEqual(['open', 'half_open', 'closed']);
  });

  it('in off mode never opens and counts nothing', () => {
    const { cb, changes } = breaker({ mode: 'off' });
    calls(cb, 100, { ok: false, durationMs: 10_000 });
    expect(cb.tryAcquire().allowed).toBe(true);
    expect(cb.snapshot()).toMatchObject({ state: 'closed', mode: 'off', calls: 0, shadowRejections: 0, transitions: 0 });
    expect(changes).toEqual([]);
  });

  it('rejects bad options naming the value', () => {
    const clock = { now: () => 0 };
    expect(() => new CircuitBreaker({ clock, failureRateThreshold: 0 })).toThrow('Expected `failureRateThreshold` to be a number above 0 and at most 1, got `0`');
    expect(() => new CircuitBreaker({ clock, halfOpenProbes: 1.5 })).toThrow('got `1.5`');
    expect(() => new CircuitBreaker({ clock, windowMs: -1 })).toThrow(TypeError);
  });
});
