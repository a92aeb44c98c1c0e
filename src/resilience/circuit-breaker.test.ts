import { describe, expect, it } from 'vitest';
import { CircuitBreaker, type BreakerPermit, type BreakerStateChange, type CircuitBreakerOptions } from './circuit-breaker.js';
import { simulateLoad, steppedClock, type LoadResult } from '../../test/helpers/breaker-load.js';
import { idsOn } from '../../test/helpers/canary-ids.js';

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
    consecutiveFailures: 20,
    openMs: 5000,
    openMaxMs: 5000,
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
    expect(() => new CircuitBreaker({ clock, consecutiveFailures: -1 })).toThrow('Expected `consecutiveFailures` to be an integer from 0 and up, got `-1`');
    expect(() => new CircuitBreaker({ clock, openMaxMs: 0 })).toThrow('Expected `openMaxMs` to be a number from 1 and up, got `0`');
  });
});

describe('CircuitBreaker: consecutive failures', () => {
  /** Failures `gapMs` apart. */
  function failures(cb: CircuitBreaker, time: ReturnType<typeof fakeClock>, count: number, gapMs: number) {
    for (let i = 0; i < count; i++) {
      if (i > 0) time.advance(gapMs);
      acquire(cb).record({ ok: false, durationMs: 10, reason: 'HTTP 503' });
    }
  }

  it('opens on 20 failures in a row while the window still holds mostly successes, naming the run', () => {
    const { cb, time, changes } = breaker();
    calls(cb, 200, { ok: true });
    failures(cb, time, 19, 5);
    expect(cb.snapshot()).toMatchObject({ state: 'closed', consecutiveFailures: 19 }); // 19 of 219 calls: 9%
    time.advance(5);
    calls(cb, 1, { ok: false, reason: 'HTTP 503' });
    expect(cb.state).toBe('open');
    expect(changes).toEqual([{ from: 'closed', to: 'open', reason: '20 consecutive failures in 95 ms, the last HTTP 503' }]);
  });

  it('a success ends the run', () => {
    const { cb, time } = breaker({ minimumCalls: 1000 });
    failures(cb, time, 19, 5);
    calls(cb, 1, { ok: true });
    failures(cb, time, 19, 5);
    expect(cb.snapshot()).toMatchObject({ state: 'closed', consecutiveFailures: 19 });
  });

  it('a run longer than the window does not open it: the failures must fall within windowMs', () => {
    const { cb, time } = breaker({ minimumCalls: 1000 });
    failures(cb, time, 25, 600); // any 20 in a row span 11.4 s
    expect(cb.snapshot()).toMatchObject({ state: 'closed', consecutiveFailures: 25 });
    calls(cb, 1, { ok: true });
    failures(cb, time, 19, 400);
    expect(cb.state).toBe('closed');
    failures(cb, time, 1, 400); // 20 in 7.6 s
    expect(cb.state).toBe('open');
  });

  it('consecutiveFailures 0 leaves only the rates', () => {
    const { cb } = breaker({ consecutiveFailures: 0, minimumCalls: 1000 });
    calls(cb, 500, { ok: false });
    expect(cb.state).toBe('closed');
  });

  it('a slow success is not a failure of the run', () => {
    const { cb, time } = breaker({ minimumCalls: 1000 });
    failures(cb, time, 19, 5);
    calls(cb, 1, { ok: true, durationMs: 3000 });
    failures(cb, time, 1, 5);
    expect(cb.snapshot()).toMatchObject({ state: 'closed', consecutiveFailures: 1 });
  });
});

describe('CircuitBreaker: outcomes that arrive late', () => {
  it('does not open on the last timeouts of a latency spike that arrive after the first quick successes of its end', () => {
    const { cb, time, changes } = breaker({ windowMs: 2000, slowCallMs: 500 });
    const timeout = { ok: false, durationMs: 1000, reason: 'timeout' };
    // Calls sent during the spike: the first six time out, six more are still out when it ends.
    calls(cb, 6, timeout);
    const stillOut = Array.from({ length: 6 }, () => acquire(cb));
    time.advance(1000);
    // Sent after the spike: quick successes, back before the older calls time out.
    calls(cb, 10, { ok: true, durationMs: 20 });
    for (const permit of stillOut) permit.record(timeout);
    // 12 of 22 calls in the window failed (55%): the rate alone would open it, but the newest call succeeded.
    expect(cb.snapshot()).toMatchObject({ state: 'closed', calls: 22 });
    expect(cb.snapshot().failureRate).toBeCloseTo(12 / 22);
    expect(changes).toEqual([]);
    // A failure of a call sent after those successes is news: the window is judged as it stands.
    calls(cb, 1, { ok: false, durationMs: 10, reason: 'HTTP 503' });
    expect(cb.state).toBe('open');
    expect(changes[0]?.reason).toBe('failure rate 57% >= 50% over 23 calls in 2 s');
  });

  it('a slow success is bad news: the slow-call rate still opens it on one', () => {
    const { cb } = breaker();
    calls(cb, 4, { ok: true, durationMs: 100 });
    calls(cb, 2, { ok: false, durationMs: 3000 });
    calls(cb, 13, { ok: true, durationMs: 3000 });
    expect(cb.state).toBe('closed');
    calls(cb, 1, { ok: true, durationMs: 3000 });
    expect(cb.state).toBe('open'); // 16/20 slow, the last a success
  });
});

describe('CircuitBreaker: open interval', () => {
  it('starts at openMs, doubles with each failed probe up to openMaxMs, and starts over once closed', () => {
    const { cb, time, changes } = breaker({ openMs: 1000, openMaxMs: 3000 });
    trip(cb);
    const waits: number[] = [];
    for (let round = 0; round < 4; round++) {
      const refusal = cb.tryAcquire();
      if (refusal.allowed) throw new Error('expected a refusal');
      waits.push(refusal.retryAfterMs);
      time.advance(refusal.retryAfterMs - 1);
      expect(cb.tryAcquire().allowed).toBe(false); // not a millisecond early
      time.advance(1);
      acquire(cb).record({ ok: false, durationMs: 5, reason: 'HTTP 503' });
    }
    expect(waits).toEqual([1000, 2000, 3000, 3000]);
    expect(changes.filter((c) => c.to === 'half_open').map((c) => c.reason)).toEqual([
      'open for 1000 ms; probing',
      'open for 2000 ms; probing',
      'open for 3000 ms; probing',
      'open for 3000 ms; probing',
    ]);
    time.advance(3000);
    for (const p of [acquire(cb), acquire(cb), acquire(cb)]) p.record({ ok: true, durationMs: 5 });
    expect(cb.state).toBe('closed');
    trip(cb);
    expect(cb.tryAcquire()).toEqual({ allowed: false, retryAfterMs: 1000 });
  });

  it('a cap below openMs keeps every interval at openMs', () => {
    const { cb, time } = breaker({ openMs: 5000, openMaxMs: 2000 });
    trip(cb);
    time.advance(5000);
    acquire(cb).record({ ok: false, durationMs: 5 });
    expect(cb.tryAcquire()).toEqual({ allowed: false, retryAfterMs: 5000 });
  });
});

/**
 * The defaults under the relay's traffic: 150 requests/s, up to 4 attempts with
 * full-jitter backoff (100 ms base, 2 s cap), a downstream answering in 2.5-7.5 ms.
 * Only the clock is given, so a change of a default shows here.
 */
describe('CircuitBreaker at its defaults under load', () => {
  function atDefaults() {
    const time = steppedClock();
    const changes: BreakerStateChange[] = [];
    const cb = new CircuitBreaker({ clock: time.clock, onStateChange: (c) => changes.push(c) });
    return { cb, time, changes };
  }

  const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8];

  it('never opens on 30% random failures: 60 s at 150 requests/s from an empty window, 8 seeds', () => {
    for (const seed of SEEDS) {
      const { cb, time, changes } = atDefaults();
      const run = simulateLoad(cb, time, { ratePerS: 150, durationMs: 60_000, failRateAt: () => 0.3, seed }, changes);
      expect(run.callsAtMs.length).toBeGreaterThan(12_000); // ~1.42 attempts per request
      expect(run.transitions).toEqual([]);
    }
  });

  it('with the old minimumCalls of 20, 30% random failures alone trip a fresh breaker in some runs', () => {
    let tripped = 0;
    for (let seed = 1; seed <= 60; seed++) {
      const time = steppedClock();
      const changes: BreakerStateChange[] = [];
      const cb = new CircuitBreaker({ clock: time.clock, minimumCalls: 20, onStateChange: (c) => changes.push(c) });
      if (simulateLoad(cb, time, { ratePerS: 150, durationMs: 2_000, failRateAt: () => 0.3, seed }, changes).transitions.length > 0) tripped++;
    }
    expect(tripped).toBeGreaterThan(0);
  });

  /** 8 s at 30% failures, an outage (every call fails) until `toMs`, 6 s healthy. */
  const OUTAGE_FROM_MS = 8_000;
  const OUTAGE_TO_MS = 14_000;
  const noisyOutageRecovery = (seed: number, toMs = OUTAGE_TO_MS) => ({
    ratePerS: 150,
    durationMs: toMs + 6_000,
    failRateAt: (atMs: number) => (atMs < OUTAGE_FROM_MS ? 0.3 : atMs < toMs ? 1 : 0),
    seed,
  });
  const inRange = (times: number[], fromMs: number, toMs: number) => times.filter((t) => t >= fromMs && t < toMs).length;

  it('opens within 200 ms of an outage that follows 8 s of 30% failures', () => {
    for (const seed of SEEDS) {
      const { cb, time, changes } = atDefaults();
      const run = simulateLoad(cb, time, noisyOutageRecovery(seed), changes);
      const first = run.transitions[0]!;
      expect(first).toMatchObject({ from: 'closed', to: 'open' });
      expect(first.reason).toMatch(/^20 consecutive failures/);
      expect(first.atMs).toBeGreaterThanOrEqual(OUTAGE_FROM_MS);
      expect(first.atMs - OUTAGE_FROM_MS).toBeLessThan(200);
    }
  });

  it('from 1 s into the outage the downstream gets under 10% of the client load: a few probes per open interval', () => {
    for (const seed of SEEDS) {
      const { cb, time, changes } = atDefaults();
      const run = simulateLoad(cb, time, noisyOutageRecovery(seed), changes);
      const calls = inRange(run.callsAtMs, OUTAGE_FROM_MS + 1000, OUTAGE_TO_MS);
      const requests = inRange(run.requests.map((r) => r.atMs), OUTAGE_FROM_MS + 1000, OUTAGE_TO_MS);
      expect(calls / requests).toBeLessThan(0.1);
      // Open 1 s, then 2 s per failed probe: half-open at ~1.1, ~3.1 and ~5.1 s into the outage, 3 probes each at most.
      const probing = run.transitions.filter((t) => t.to === 'half_open' && t.atMs < OUTAGE_TO_MS);
      expect(probing.length).toBeLessThanOrEqual(3);
      expect(calls).toBeLessThanOrEqual(3 * probing.length);
    }
  });

  it('closes within 2.1 s of the downstream’s return wherever it falls in the probe cycle, and the first 1-s window of 95% success starts within 3 s', () => {
    // Outages of 5 to 7.4 s: the return lands anywhere in a 2-s open interval, just after a failed probe included.
    for (let toMs = 13_000; toMs <= 15_400; toMs += 200) {
      for (const seed of SEEDS.slice(0, 3)) {
        const { cb, time, changes } = atDefaults();
        const run = simulateLoad(cb, time, noisyOutageRecovery(seed, toMs), changes);
        const closed = run.transitions.find((t) => t.to === 'closed' && t.atMs >= toMs);
        expect(closed).toBeDefined();
        expect(closed!.atMs - toMs).toBeLessThan(2_100);
        expect(run.transitions.filter((t) => t.atMs >= closed!.atMs && t.to === 'open')).toEqual([]);
        expect(firstGoodSecondMs(run, toMs, toMs + 6_000)).toBeLessThanOrEqual(3_000);
      }
    }
  });
});

/** Start of the first 1-s span (in 250-ms steps from `fromMs`) of arriving requests of which >= 95% succeeded, from `fromMs`; null if none. */
function firstGoodSecondMs(run: LoadResult, fromMs: number, toMs: number): number | null {
  for (let start = fromMs; start + 1000 <= toMs; start += 250) {
    const span = run.requests.filter((r) => r.atMs >= start && r.atMs < start + 1000);
    if (span.length > 0 && span.filter((r) => r.ok).length / span.length >= 0.95) return start - fromMs;
  }
  return null;
}

describe('CircuitBreaker in canary mode', () => {
  const [enforcedId] = idsOn('enforced', 50, 'breaker');
  const [shadowId] = idsOn('shadow', 50, 'breaker');

  it('refuses the enforced side while open, lets the shadow side through, and counts both', () => {
    const { cb } = breaker({ mode: 'canary', canaryPercent: 50 });
    for (let i = 0; i < 20; i++) {
      const permit = cb.tryAcquire(i % 2 === 0 ? enforcedId : shadowId);
      if (!permit.allowed) throw new Error('closed: every call goes');
      permit.record({ ok: false, durationMs: 10 });
    }
    expect(cb.state).toBe('open');
    expect(cb.tryAcquire(enforcedId).allowed).toBe(false);
    const through = cb.tryAcquire(shadowId);
    expect(through).toMatchObject({ allowed: true, probe: false });
    if (through.allowed) through.record({ ok: false, durationMs: 10 });
    expect(cb.openForMs(enforcedId)).toBeGreaterThan(0);
    expect(cb.openForMs(shadowId)).toBeNull();
    // No id: the shadow side (the queue is never refused wholesale for a canary).
    expect(cb.openForMs()).toBeNull();
    const snap = cb.snapshot();
    expect(snap.canary).toEqual({
      percent: 50,
      enforced: { requests: 11, failures: 10, rejected: 1, delayed: 0 },
      shadow: { requests: 11, failures: 11, rejected: 1, delayed: 0 },
    });
    expect(snap.shadowRejections).toBe(1);
  });

  it('at 0% acts as shadow and at 100% as enforce', () => {
    for (const [percent, allowed] of [
      [0, true],
      [100, false],
    ] as const) {
      const { cb } = breaker({ mode: 'canary', canaryPercent: percent });
      calls(cb, 20, { ok: false });
      expect(cb.tryAcquire(enforcedId).allowed).toBe(allowed);
    }
  });
});
