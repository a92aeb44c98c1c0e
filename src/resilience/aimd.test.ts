import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../test/helpers/breaker-load.js';
import { AimdLimiter, type AimdChange, type AimdOptions, type AimdOutcome } from './aimd.js';
import { idsOn } from '../../test/helpers/canary-ids.js';
import { decideResponse } from '../sim/decide.js';
import { defaultSimProfile } from '../sim/profile.js';

function aimd(extra: Partial<AimdOptions> = {}) {
  let now = 1_000_000;
  const time = { clock: { now: () => now }, advance: (ms: number) => (now += ms) };
  const changes: AimdChange[] = [];
  const limiter = new AimdLimiter({
    clock: time.clock,
    min: 1,
    max: 10,
    latencyTargetMs: 1000,
    decreaseFactor: 0.5,
    cooldownMs: 1000,
    onChange: (c) => changes.push(c),
    ...extra,
  });
  return { limiter, time, changes };
}

const healthy = { overload: false, latencyMs: 50 };
const overloaded = { overload: true, latencyMs: 50, reason: 'HTTP 503' };

/** One call, sent and answered with nothing else in flight. */
function call(limiter: AimdLimiter, outcome: AimdOutcome) {
  limiter.begin()(outcome);
}

function repeat(limiter: AimdLimiter, count: number, outcome: AimdOutcome) {
  for (let i = 0; i < count; i++) call(limiter, outcome);
}

/** The same failures every run. */
const seeded = seededRandom;

const failed = { overload: false, failed: true, latencyMs: 5, reason: 'HTTP 503' };

/**
 * `limit` calls in flight at once (a full round trip), each answered by `fails(inFlight)`;
 * the clock moves `stepMs` per round trip. Returns the limits seen after each round trip.
 */
function roundTrips(limiter: AimdLimiter, time: { advance(ms: number): void }, count: number, failsAt: (limit: number) => boolean, stepMs = 50): number[] {
  const limits: number[] = [];
  for (let r = 0; r < count; r++) {
    const limit = limiter.limit;
    const ends = Array.from({ length: limit }, () => limiter.begin());
    time.advance(stepMs);
    for (const end of ends) end(failsAt(limit) ? failed : healthy);
    limits.push(limiter.limit);
  }
  return limits;
}

/**
 * S4 in miniature on the fake clock, in 1 ms ticks: `warmupPerS` for `warmupMs`, then `burstPerS`
 * for `durationMs` (S4: 100/s for 2 s, then 600/s for 8 s) into a queue of 100, sent while fewer
 * calls than the limiter's limit are out. `answer(inFlight)` is the downstream's verdict for a call
 * arriving with `inFlight` in flight (itself included). A failed request is not retried. Counts
 * (successes, the longest run of failures, the most calls out) are of the burst only.
 */
function capacityRun(
  options: Partial<AimdOptions>,
  answer: (inFlight: number) => { failed: boolean; latencyMs: number },
  { warmupMs = 2_000, warmupPerS = 100, burstPerS = 600, durationMs = 8_000 } = {},
) {
  const calls: Array<{ endAt: number; end: (o: AimdOutcome) => void; outcome: AimdOutcome }> = [];
  // The pool counts a call as busy from before it begins (its worker runs it) until it has ended.
  let busy = 0;
  const { limiter, time } = aimd({ ...options, inUse: () => busy });
  let queued = 0;
  let arrivals = 0;
  let successes = 0;
  let run = 0;
  let longestRun = 0;
  let peak = 0;
  for (let t = 0; t < warmupMs + durationMs; t++) {
    time.advance(1);
    const rate = t < warmupMs ? warmupPerS : burstPerS;
    arrivals += rate / 1000;
    while (arrivals >= 1) {
      arrivals--;
      if (queued < 100) queued++;
    }
    for (let i = calls.length - 1; i >= 0; i--) {
      const call = calls[i]!;
      if (call.endAt > t) continue;
      calls.splice(i, 1);
      call.end(call.outcome);
      busy--;
      if (t < warmupMs) continue;
      if (call.outcome.failed) longestRun = Math.max(longestRun, ++run);
      else {
        run = 0;
        successes++;
      }
    }
    while (queued > 0 && calls.length < limiter.limit) {
      queued--;
      busy++;
      const end = limiter.begin();
      const verdict = answer(calls.length + 1);
      const outcome = verdict.failed ? { ...failed, latencyMs: verdict.latencyMs } : { overload: false, latencyMs: verdict.latencyMs };
      calls.push({ endAt: t + Math.max(1, verdict.latencyMs), end, outcome });
      if (t >= warmupMs) peak = Math.max(peak, calls.length);
    }
  }
  return { goodputPerS: successes / (durationMs / 1000), longestRun, peak };
}

describe('AimdLimiter against a downstream of capacity 10 (S4 in miniature, issue 11)', () => {
  // The bench's own downstream model: beyond 10 in flight every call waits 50 ms more per call over and
  // fails with a growing chance; beyond 20, an immediate 503.
  const s4 = (random: () => number) => {
    const profile = { ...defaultSimProfile, failRate: 0, latencyMs: 50, jitterMs: 0, tailRate: 0, hangRate: 0, capacity: 10 };
    return (inFlight: number) => {
      const decision = decideResponse(profile, inFlight, random);
      return decision.kind === 'answer' ? { failed: decision.status === 503, latencyMs: decision.delayMs } : { failed: true, latencyMs: 1000 };
    };
  };
  // S4's relay: WORKERS 40, a 90 ms latency target, no cool-down, a fresh route's slow start from 16.
  const s4Relay = { max: 40, initial: 16, slowStart: true, cooldownMs: 0, decreaseFactor: 0.9, latencyTargetMs: 90 };

  it('a burst after the warm-up meets the limit the warm-up drifted to, not a slow start that doubles it past the capacity', () => {
    // 100/s leaves about 5 in flight, 140/s about 7: the warm-up peaks the bench's S4 sees.
    for (const warmupPerS of [100, 140]) {
      for (const seed of [1, 2, 3]) {
        const run = capacityRun(s4Relay, s4(seeded(seed)), { warmupPerS });
        // Before: slow start, left running after the warm-up's drift to 10, took the limit to 21 within a
        // round trip of the burst; beyond 20 the downstream answers 503 at once and S4's breaker (20 in a row) opened.
        // Then a drift to twice the use met the burst at 14 after a peak of 7: 172-174 req/s.
        expect(run.peak).toBeLessThanOrEqual(11);
        expect(run.longestRun).toBeLessThan(20);
        expect(run.goodputPerS).toBeGreaterThanOrEqual(186);
      }
    }
  });

  it('a drift down toward the use ends a slow start', () => {
    const { limiter } = aimd({ max: 64, initial: 16, slowStart: true, inUse: () => 4 });
    repeat(limiter, 16, healthy);
    expect(limiter.snapshot()).toMatchObject({ limit: 6, slowStart: false });
  });

  it('failures that grow a little per step over the capacity do not become the background (no latency signal)', () => {
    // Every call beyond 10 of a round trip fails: one step over adds 9% failures, under the margin.
    const { limiter, time } = aimd({ max: 40, initial: 10, cooldownMs: 0, decreaseFactor: 0.9 });
    let calls = 0;
    let failures = 0;
    const limits: number[] = [];
    for (let r = 0; r < 400; r++) {
      const ends = Array.from({ length: limiter.limit }, () => limiter.begin());
      time.advance(50);
      ends.forEach((end, k) => end(k >= 10 ? failed : healthy));
      calls += ends.length;
      failures += Math.max(0, ends.length - 10);
      limits.push(limiter.limit);
    }
    // Before: the background followed each step up, to 75% at the limit's max of 40 (4x the capacity).
    expect(Math.max(...limits.slice(100))).toBeLessThanOrEqual(16);
    expect(limiter.snapshot().backgroundFailureRate).toBeLessThan(0.1);
    expect(failures / calls).toBeLessThan(0.2);
  });
});

describe('AimdLimiter and failures that do not grow with concurrency', () => {
  it('30% random 503s never hold the limit down, over many seeds and 2,000 round trips each', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const random = seeded(seed);
      const { limiter, time } = aimd({ max: 64, initial: 8, decreaseFactor: 0.9, cooldownMs: 1000 });
      const limits = roundTrips(limiter, time, 2_000, () => random() < 0.3);
      // It grows to the ceiling as if the failures were not there, and stays.
      expect(limits.at(-1)).toBe(64);
      expect(Math.min(...limits.slice(1000))).toBe(64);
      expect(limiter.snapshot().backgroundFailureRate).toBeGreaterThan(0.2);
      expect(limiter.snapshot().backgroundFailureRate).toBeLessThan(0.4);
    }
  });

  it('a first round of random failures (no background yet) costs one halving, undone by the next round', () => {
    const random = seeded(7);
    const { limiter, time, changes } = aimd({ max: 64, initial: 40, cooldownMs: 0 });
    roundTrips(limiter, time, 3, () => random() < 0.3);
    expect(changes[0]).toMatchObject({ from: 40, to: 20 });
    expect(changes[0]!.reason).toMatch(/^overload: failure rate \d+% over 40 calls, background 0%$/);
    const restored = changes.find((c) => c.reason.includes('did not fall'));
    expect(restored?.reason).toMatch(/^failure rate \d+% did not fall with concurrency: background, not overload$/);
    expect(restored?.to).toBeGreaterThanOrEqual(40);
    expect(changes.filter((c) => c.to < c.from)).toHaveLength(1);
  });

  it('failures that grow with concurrency cut, and the cut stands', () => {
    // A downstream that sheds 60% of calls beyond 10 in flight (a provider's concurrency quota).
    const random = seeded(11);
    const overCapacity = (limit: number) => limit > 10 && random() < 0.6;
    const { limiter, time, changes } = aimd({ max: 40, initial: 16, cooldownMs: 0, decreaseFactor: 0.9 });
    roundTrips(limiter, time, 4, overCapacity);
    expect(changes[0]).toMatchObject({ from: 16, to: 8 });
    roundTrips(limiter, time, 200, overCapacity);
    // It probes above 10 now and then, and each probe is halved back.
    const limits = roundTrips(limiter, time, 600, overCapacity);
    expect(changes.some((c) => c.reason.includes('did not fall'))).toBe(false);
    expect(Math.max(...limits)).toBeLessThanOrEqual(12);
    expect(limits.filter((l) => l <= 10).length).toBeGreaterThan(500);
  });

  it('a 429 is overload at once, whatever the background', () => {
    const { limiter } = aimd({ initial: 10, cooldownMs: 0 });
    call(limiter, { overload: true, latencyMs: 5, reason: 'HTTP 429' });
    expect(limiter.limit).toBe(5);
  });
});

describe('AimdLimiter restart (slow start after an outage)', () => {
  it('starts from min and doubles per round trip up to the limit held before, then grows by one', () => {
    const { limiter, time, changes } = aimd({ max: 64, initial: 32, cooldownMs: 0 });
    limiter.restart();
    expect(limiter.limit).toBe(1);
    expect(changes.at(-1)).toEqual({ from: 32, to: 1, reason: 'downstream recovered: slow start' });
    const limits = roundTrips(limiter, time, 7, () => false);
    expect(limits).toEqual([2, 4, 8, 16, 32, 33, 34]);
    expect(limiter.snapshot().slowStart).toBe(false);
  });

  it('with slowStart, a fresh limiter doubles from initial per round trip up to max', () => {
    const { limiter, time } = aimd({ max: 100, initial: 16, slowStart: true, cooldownMs: 0 });
    expect(roundTrips(limiter, time, 4, () => false)).toEqual([32, 64, 100, 100]);
    expect(limiter.snapshot().slowStart).toBe(false);
  });

  it('a failure cut that turns out to be background gives the slow start back too', () => {
    const random = seeded(3);
    const { limiter, time } = aimd({ max: 256, initial: 16, slowStart: true, cooldownMs: 0 });
    roundTrips(limiter, time, 12, () => random() < 0.3);
    expect(limiter.snapshot()).toMatchObject({ limit: 256, slowStart: false });
    expect(limiter.snapshot().backgroundFailureRate).toBeGreaterThan(0.15);
  });

  it('a cut ends the slow start', () => {
    const { limiter, time } = aimd({ max: 64, initial: 32, cooldownMs: 0 });
    limiter.restart();
    roundTrips(limiter, time, 3, () => false); // 8
    call(limiter, { overload: true, latencyMs: 5, reason: 'HTTP 429' });
    expect(limiter.limit).toBe(4);
    expect(limiter.snapshot().slowStart).toBe(false);
    expect(roundTrips(limiter, time, 2, () => false)).toEqual([5, 6]);
  });
});

describe('AimdLimiter', () => {
  it('grows by one per `limit` healthy outcomes, up to max', () => {
    const { limiter, changes } = aimd({ initial: 3 });
    repeat(limiter, 2, healthy);
    expect(limiter.limit).toBe(3);
    repeat(limiter, 1, healthy);
    expect(limiter.limit).toBe(4);
    repeat(limiter, 3, healthy);
    expect(limiter.limit).toBe(4);
    repeat(limiter, 1, healthy);
    expect(limiter.limit).toBe(5);
    repeat(limiter, 5 + 6 + 7 + 8 + 9, healthy);
    expect(limiter.limit).toBe(10);
    repeat(limiter, 100, healthy);
    expect(limiter.snapshot()).toMatchObject({ limit: 10, computedLimit: 10, increases: 7 });
    expect(changes[0]).toEqual({ from: 3, to: 4, reason: '3 healthy calls at limit 3' });
  });

  it('halves on a timeout or 503 and never goes below min', () => {
    const { limiter, time, changes } = aimd({ min: 2 });
    call(limiter, { overload: true, latencyMs: 5000, reason: 'attempt timed out after 5000 ms' });
    expect(limiter.limit).toBe(5);
    time.advance(1000);
    call(limiter, overloaded);
    expect(limiter.limit).toBe(2); // floor(2.5)
    time.advance(1000);
    call(limiter, overloaded);
    expect(limiter.limit).toBe(2);
    expect(changes).toEqual([
      { from: 10, to: 5, reason: 'overload: attempt timed out after 5000 ms' },
      { from: 5, to: 2, reason: 'overload: HTTP 503' },
    ]);
    expect(limiter.snapshot().decreases).toBe(2);
  });

  it('cuts once for a burst of overload outcomes within cooldownMs', () => {
    const { limiter, time } = aimd();
    repeat(limiter, 8, overloaded);
    time.advance(999);
    repeat(limiter, 8, overloaded);
    expect(limiter.limit).toBe(5);
    time.advance(1);
    call(limiter, overloaded);
    expect(limiter.limit).toBe(2);
  });

  it('does not cut again for overloads of calls sent before the last cut, even with no cooldown', () => {
    const { limiter } = aimd({ cooldownMs: 0 });
    const sentBefore = [limiter.begin(), limiter.begin(), limiter.begin()];
    call(limiter, overloaded);
    expect(limiter.limit).toBe(5);
    for (const end of sentBefore) end(overloaded);
    expect(limiter.limit).toBe(5);
    call(limiter, overloaded);
    expect(limiter.limit).toBe(2);
  });

  it('after a cut, waits for every call then in flight before cutting again (NewReno recovery)', () => {
    const { limiter } = aimd({ cooldownMs: 0 });
    const outAtCut = [limiter.begin(), limiter.begin()];
    call(limiter, overloaded); // 10 -> 5 with two calls still out
    // A call sent after the cut, into a downstream still crowded by those two: no news yet.
    call(limiter, overloaded);
    expect(limiter.limit).toBe(5);
    // Nor does it grow while they are out.
    repeat(limiter, 20, healthy);
    expect(limiter.limit).toBe(5);
    outAtCut[0]!(null); // ended with no verdict (our own abort): still counts as back
    outAtCut[1]!(healthy);
    call(limiter, overloaded);
    expect(limiter.limit).toBe(2);
  });

  it('an overload from a call sent before an increase still cuts', () => {
    const { limiter } = aimd({ initial: 4, cooldownMs: 0 });
    const sentAt4 = limiter.begin();
    repeat(limiter, 4, healthy);
    expect(limiter.limit).toBe(5);
    sentAt4(overloaded);
    expect(limiter.limit).toBe(2);
  });

  it('grows 4x slower around a ceiling met once, plateauRoundTrips x around one met twice', () => {
    const { limiter } = aimd({ initial: 8, decreaseFactor: 0.5, cooldownMs: 0, plateauRoundTrips: 10 });
    call(limiter, overloaded); // overload at 8: cut to 4; 8 is a ceiling, not confirmed yet
    repeat(limiter, 4 + 5 + 6, healthy); // one round trip per step below it
    expect(limiter.limit).toBe(7);
    repeat(limiter, 7 * 4 - 1, healthy); // at 7, just below a ceiling met once: four round trips per step
    expect(limiter.limit).toBe(7);
    call(limiter, healthy);
    expect(limiter.limit).toBe(8);
    call(limiter, overloaded); // at 8 again: the ceiling holds
    expect(limiter.snapshot().decreases).toBe(2);
    repeat(limiter, 7 * 10 - 1, healthy); // now ten round trips per step just below it
    expect(limiter.limit).toBe(7);
    call(limiter, healthy);
    expect(limiter.limit).toBe(8);
    repeat(limiter, 8 * 10, healthy); // at the ceiling itself: slow too
    expect(limiter.limit).toBe(9);
    repeat(limiter, 9, healthy); // one above it, unharmed: quick, and the ceiling is forgotten past it
    expect(limiter.limit).toBe(10);
  });

  it('a failed probe at a confirmed ceiling goes back just below it, not a multiplicative cut', () => {
    const { limiter, changes } = aimd({ initial: 8, decreaseFactor: 0.5, cooldownMs: 0, plateauRoundTrips: 10 });
    call(limiter, overloaded); // 8 -> 4, ceiling 8 met once
    expect(limiter.limit).toBe(4);
    repeat(limiter, 4 + 5 + 6 + 7 * 4, healthy);
    expect(limiter.limit).toBe(8);
    call(limiter, overloaded); // met again at 8: 7 held four round trips, only 8 is too many
    expect(limiter.limit).toBe(7);
    repeat(limiter, 7 * 10, healthy);
    expect(limiter.limit).toBe(8);
    call(limiter, overloaded); // and again, after the plateau
    expect(limiter.limit).toBe(7);
    expect(changes.slice(-1)).toEqual([{ from: 8, to: 7, reason: 'overload: HTTP 503' }]);
  });

  it('an overload met below the ceiling replaces it, unconfirmed, and cuts multiplicatively', () => {
    const { limiter } = aimd({ initial: 8, decreaseFactor: 0.5, cooldownMs: 0, plateauRoundTrips: 10 });
    call(limiter, overloaded);
    repeat(limiter, 4 + 5 + 6 + 7 * 4, healthy);
    call(limiter, overloaded); // ceiling 8, confirmed: back to 7
    expect(limiter.limit).toBe(7);
    call(limiter, overloaded); // at 7, below 8: the downstream's capacity is not (only) about 8
    expect(limiter.limit).toBe(3);
    repeat(limiter, 3 + 4 + 5, healthy); // one round trip per step below the new ceiling, 7
    expect(limiter.limit).toBe(6);
    repeat(limiter, 6 * 4, healthy); // four, not ten, just below it: it was met once
    expect(limiter.limit).toBe(7);
  });

  it('cuts from the limit the overloaded call was sent under, not the one it grew to since', () => {
    const { limiter } = aimd({ initial: 4, decreaseFactor: 0.5, cooldownMs: 0 });
    const sentAt4 = limiter.begin();
    repeat(limiter, 4 + 5 + 6 + 7, healthy); // 4 -> 8 meanwhile
    expect(limiter.limit).toBe(8);
    sentAt4(overloaded); // the downstream said no at 4
    expect(limiter.limit).toBe(2);
  });

  it('grows only on calls sent under the current limit', () => {
    const { limiter } = aimd({ initial: 4 });
    const sentAt4 = [limiter.begin(), limiter.begin(), limiter.begin()];
    repeat(limiter, 4, healthy);
    expect(limiter.limit).toBe(5);
    for (const end of sentAt4) end(healthy); // stale good news about 4, nothing about 5
    repeat(limiter, 4, healthy);
    expect(limiter.limit).toBe(5);
    call(limiter, healthy);
    expect(limiter.limit).toBe(6);
  });

  it('forgets the ceiling after an outage: growth is no longer slowed near it', () => {
    const { limiter } = aimd({ initial: 4, decreaseFactor: 0.5, cooldownMs: 0, plateauRoundTrips: 10 });
    call(limiter, overloaded); // a failed probe at 4: cut to 2, ceiling 4
    repeat(limiter, 2, healthy);
    expect(limiter.limit).toBe(3);
    limiter.forgetCeiling(); // the breaker closed again
    repeat(limiter, 3, healthy); // one round trip at 3, not four
    expect(limiter.limit).toBe(4);
  });

  it('grows only while the limit binds, and drifts down to 1.5x the use when half of it goes unused', () => {
    // null: every slot the limit allows is taken
    let inUse: number | null = 3;
    const { limiter, changes } = aimd({ initial: 4, inUse: () => inUse ?? limiter.limit });
    repeat(limiter, 40, healthy); // 3 of 4 in use: nothing learnt about a 5th, no growth
    expect(limiter.limit).toBe(4);
    inUse = null;
    repeat(limiter, 4 + 5 + 6 + 7 + 8 + 9, healthy);
    expect(limiter.limit).toBe(10);
    inUse = 4;
    repeat(limiter, 9, healthy);
    expect(limiter.limit).toBe(10);
    call(limiter, healthy); // a round trip with at most 4 of 10 in use
    expect(limiter.limit).toBe(6);
    expect(changes.at(-1)).toEqual({ from: 10, to: 6, reason: 'at most 4 of 10 in use over 10 calls' });
    expect(limiter.snapshot().drifts).toBe(1);
  });

  it('does not grow on calls sent while the limit had room, even if it binds when they come back', () => {
    let inUse = 2;
    const { limiter } = aimd({ initial: 4, inUse: () => inUse });
    const sentInQuiet = [limiter.begin(), limiter.begin(), limiter.begin(), limiter.begin()];
    inUse = 4; // a burst fills the limit while they are out
    for (const end of sentInQuiet) end(healthy);
    expect(limiter.limit).toBe(4);
    repeat(limiter, 4, healthy); // calls sent with the limit reached
    expect(limiter.limit).toBe(5);
  });

  it('cuts when the median latency of a round trip of calls is above the target', () => {
    const { limiter, changes } = aimd();
    repeat(limiter, 9, { overload: false, latencyMs: 1500 });
    expect(limiter.limit).toBe(10);
    call(limiter, { overload: false, latencyMs: 1500 });
    expect(limiter.limit).toBe(5);
    expect(changes[0]?.reason).toBe('median latency 1500 ms > target 1000 ms over 10 calls');
  });

  it('one slow call among fast ones (a GC pause) does not cut; its round trip grows nothing, the next one does', () => {
    const { limiter } = aimd({ initial: 4 });
    call(limiter, { overload: false, latencyMs: 5000 });
    repeat(limiter, 3, healthy);
    expect(limiter.limit).toBe(4);
    repeat(limiter, 4, healthy);
    expect(limiter.limit).toBe(5);
  });

  it('judges a round trip on the calls sent with the limit reached, not those sent while it filled', () => {
    // A burst fills a limit of 12 on a downstream that is fast up to 10 in flight: the first ten calls
    // come back in 50 ms, the calls sent once all 12 were out take 150 ms.
    let busy = 0;
    const { limiter, changes } = aimd({ initial: 12, max: 40, latencyTargetMs: 90, cooldownMs: 0, decreaseFactor: 0.9, inUse: () => busy });
    const send = () => {
      busy++;
      const end = limiter.begin();
      return (latencyMs: number) => {
        end({ overload: false, latencyMs });
        busy--;
      };
    };
    const filling = Array.from({ length: 12 }, send);
    // Each freed slot is taken at once: these are sent with the limit reached.
    const full = filling.slice(0, 10).map((end) => {
      end(50);
      return send();
    });
    // The burst goes on: each slow call's slot is taken again as it ends.
    for (let i = 0; i < 14; i++) {
      const end = full.shift()!;
      end(150);
      full.push(send());
    }
    // The ten fast calls of the fill neither passed a round trip at 12 nor, with the slow ones, grew it to 13.
    expect(changes[0]).toEqual({ from: 12, to: 10, reason: 'median latency 150 ms > target 90 ms over 12 calls' });
    expect(limiter.snapshot().increases).toBe(0);
  });

  it('a failed step up goes back to the limit whose last round trip met the target, not a multiplicative cut', () => {
    const { limiter, time, changes } = aimd({ initial: 10, max: 40, latencyTargetMs: 90, cooldownMs: 0, decreaseFactor: 0.9 });
    // Ten calls out at once, each its own round trip's worth: 10 held and grew to 11.
    roundTrips(limiter, time, 1, () => false);
    expect(limiter.limit).toBe(11);
    // At 11 the downstream is over its capacity: a round trip of 100 ms calls.
    const ends = Array.from({ length: 11 }, () => limiter.begin());
    for (const end of ends) end({ overload: false, latencyMs: 100 });
    expect(changes.at(-1)).toEqual({ from: 11, to: 10, reason: 'median latency 100 ms > target 90 ms over 11 calls' });
    // 10 overloaded too now (the downstream got slower): no held limit left, the cut is multiplicative.
    const again = Array.from({ length: 10 }, () => limiter.begin());
    for (const end of again) end({ overload: false, latencyMs: 100 });
    expect(changes.at(-1)).toEqual({ from: 10, to: 9, reason: 'median latency 100 ms > target 90 ms over 10 calls' });
  });

  it('climbs back after a cut as healthy outcomes return', () => {
    const { limiter } = aimd();
    call(limiter, overloaded);
    repeat(limiter, 5 + 6, healthy);
    expect(limiter.limit).toBe(7);
  });

  it('in shadow mode computes the limit but tells the pool to use max', () => {
    const { limiter, changes } = aimd({ mode: 'shadow' });
    call(limiter, overloaded);
    expect(limiter.computedLimit).toBe(5);
    expect(limiter.limit).toBe(10);
    expect(limiter.snapshot()).toMatchObject({ mode: 'shadow', limit: 10, computedLimit: 5, decreases: 1 });
    expect(changes).toHaveLength(1);
  });

  it('in off mode moves nothing', () => {
    const { limiter, time, changes } = aimd({ mode: 'off', initial: 4 });
    repeat(limiter, 50, healthy);
    time.advance(5000);
    call(limiter, overloaded);
    expect(limiter.snapshot()).toMatchObject({ limit: 10, computedLimit: 4, increases: 0, decreases: 0 });
    expect(changes).toEqual([]);
  });

  it('rejects bad options naming the value', () => {
    const clock = { now: () => 0 };
    expect(() => new AimdLimiter({ clock, max: 0 })).toThrow('Expected `max` to be an integer from 1 and up, got `0`');
    expect(() => new AimdLimiter({ clock, max: 5, min: 6 })).toThrow('got `6`');
    expect(() => new AimdLimiter({ clock, max: 5, decreaseFactor: 1 })).toThrow('got `1`');
  });
});

describe('AimdLimiter in canary mode', () => {
  const enforced = idsOn('enforced', 50, 'aimd', 3);
  const [shadowId] = idsOn('shadow', 50, 'aimd');
  const wait = () => ({
    signal: new AbortController().signal,
    deadlineAt: Number.POSITIVE_INFINITY,
    timeout: () => new Error('deadline'),
    aborted: () => new Error('aborted'),
  });

  it('holds the enforced side to its share of the computed limit, never the shadow side, and leaves the pool at max', async () => {
    const { limiter } = aimd({ mode: 'canary', canaryPercent: 50, initial: 4 });
    expect(limiter.limit).toBe(10);
    expect(limiter.acquireSlot(shadowId, wait())).toBeNull();
    // Half of 4: two enforced calls at once.
    const first = limiter.acquireSlot(enforced[0], wait());
    const second = limiter.acquireSlot(enforced[1], wait());
    expect(typeof first).toBe('function');
    expect(typeof second).toBe('function');
    const third = limiter.acquireSlot(enforced[2], wait());
    expect(third).toBeInstanceOf(Promise);
    let granted = false;
    void (third as Promise<() => void>).then(() => (granted = true));
    await Promise.resolve();
    expect(granted).toBe(false);
    (first as () => void)();
    await new Promise((resolve) => setImmediate(resolve));
    expect(granted).toBe(true);
    expect(limiter.snapshot().canary?.enforced.delayed).toBe(1);
  });

  it('without a deadline waits for a slot however long it takes', async () => {
    const { limiter } = aimd({ mode: 'canary', canaryPercent: 50, initial: 2 });
    const first = limiter.acquireSlot(enforced[0], wait()) as () => void;
    const held = limiter.acquireSlot(enforced[1], wait()) as Promise<() => void>;
    let outcome = 'waiting';
    void held.then(
      () => (outcome = 'granted'),
      () => (outcome = 'refused'),
    );
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(outcome).toBe('waiting');
    first();
    await new Promise((resolve) => setImmediate(resolve));
    expect(outcome).toBe('granted');
  });

  it('gives up the wait at the deadline with the error it was told', async () => {
    const { limiter, time } = aimd({ mode: 'canary', canaryPercent: 50, initial: 2 });
    limiter.acquireSlot(enforced[0], wait());
    const held = limiter.acquireSlot(enforced[1], { ...wait(), deadlineAt: time.clock.now() + 30 });
    let settled = false;
    void Promise.resolve(held).then(
      () => (settled = true),
      () => (settled = true),
    );
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(settled).toBe(false);
    await expect(held).rejects.toThrow('deadline');
  });

  it('counts calls and failures per side from every call it hears of', () => {
    const { limiter } = aimd({ mode: 'canary', canaryPercent: 50 });
    limiter.begin(enforced[0])({ overload: false, failed: true, latencyMs: 10 });
    limiter.begin(shadowId)({ overload: false, latencyMs: 10 });
    expect(limiter.snapshot().canary).toMatchObject({ enforced: { requests: 1, failures: 1 }, shadow: { requests: 1, failures: 0 } });
  });
});
