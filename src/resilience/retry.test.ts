import { describe, expect, it } from 'vitest';
import { AttemptTimeoutError, ConnectionFailedError, type DownstreamResponse } from '../downstream/client.js';
import { CircuitOpenRefusal } from './refusal.js';
import { RetryManager, type RetryOptions } from './retry.js';

/** A fake clock that only moves when the retry loop sleeps or an attempt "takes" time. */
function fakeTime() {
  let now = 1_000_000;
  const sleeps: number[] = [];
  return {
    clock: { now: () => now },
    advance: (ms: number) => (now += ms),
    sleeps,
    sleep: async (ms: number) => {
      sleeps.push(ms);
      now += ms;
    },
  };
}

const ok: DownstreamResponse = { status: 200, headers: { 'content-type': 'application/json' }, body: Buffer.from('{}') };
const status = (code: number, headers: Record<string, string> = {}): DownstreamResponse => ({ status: code, headers, body: Buffer.alloc(0) });

function manager(time: ReturnType<typeof fakeTime>, extra: Partial<RetryOptions> = {}) {
  return new RetryManager({
    maxAttempts: 4,
    baseDelayMs: 100,
    maxDelayMs: 2000,
    attemptTimeoutMs: 5000,
    clock: time.clock,
    random: () => 0.5,
    sleep: time.sleep,
    ...extra,
  });
}

/** Plays a script of outcomes, one per attempt. */
function scripted(outcomes: Array<DownstreamResponse | Error>, time?: ReturnType<typeof fakeTime>, costMs = 0) {
  const calls: Array<{ timeoutMs: number }> = [];
  const fn = async ({ timeoutMs }: { timeoutMs: number }) => {
    calls.push({ timeoutMs });
    time?.advance(costMs);
    const next = outcomes[Math.min(calls.length - 1, outcomes.length - 1)]!;
    if (next instanceof Error) throw next;
    return next;
  };
  return { fn, calls };
}

const signal = new AbortController().signal;

describe('RetryManager', () => {
  it('returns the first definitive answer without retrying', async () => {
    const time = fakeTime();
    const { fn, calls } = scripted([ok]);
    const result = await manager(time).execute(fn, { deadlineAt: time.clock.now() + 15_000, signal });
    expect(result.kind).toBe('answered');
    expect(calls).toHaveLength(1);
  });

  it('retries 503, timeouts and connection errors, then succeeds', async () => {
    const time = fakeTime();
    const { fn, calls } = scripted([status(503), new AttemptTimeoutError(5000, 'unknown'), new ConnectionFailedError('ECONNRESET', 'reset', 'unknown'), ok]);
    const result = await manager(time).execute(fn, { deadlineAt: time.clock.now() + 15_000, signal });
    expect(result.kind).toBe('answered');
    expect(calls).toHaveLength(4);
    expect(result.attempts.map((a) => a.outcome)).toEqual(['http_error', 'timeout', 'connection_error', 'success']);
  });

  it('sleeps full-jitter delays: random(0, base * 2^n)', async () => {
    const time = fakeTime();
    const { fn } = scripted([status(503), status(503), status(503), ok]);
    await manager(time, { random: () => 0.5 }).execute(fn, { deadlineAt: time.clock.now() + 15_000, signal });
    expect(time.sleeps).toEqual([50, 100, 200]);
  });

  it('does not retry a non-retryable 4xx', async () => {
    const time = fakeTime();
    const { fn, calls } = scripted([status(404), ok]);
    const result = await manager(time).execute(fn, { deadlineAt: time.clock.now() + 15_000, signal });
    expect(result).toMatchObject({ kind: 'answered', response: { status: 404 } });
    expect(calls).toHaveLength(1);
  });

  it('gives up after maxAttempts and reports the last error', async () => {
    const time = fakeTime();
    const { fn, calls } = scripted([status(503), status(503), status(502)]);
    const result = await manager(time, { maxAttempts: 3 }).execute(fn, { deadlineAt: time.clock.now() + 15_000, signal });
    expect(result).toMatchObject({ kind: 'exhausted', lastError: 'HTTP 502', lastTimedOut: false });
    expect(calls).toHaveLength(3);
  });

  it('marks the result as timed out when the last attempt timed out', async () => {
    const time = fakeTime();
    const { fn } = scripted([new AttemptTimeoutError(5000, 'unknown')]);
    const result = await manager(time, { maxAttempts: 2 }).execute(fn, { deadlineAt: time.clock.now() + 15_000, signal });
    expect(result).toMatchObject({ kind: 'exhausted', lastTimedOut: true });
  });

  it('gives up at once on a permanent failure such as 501', async () => {
    const time = fakeTime();
    const { fn, calls } = scripted([status(501), ok]);
    const result = await manager(time).execute(fn, { deadlineAt: time.clock.now() + 15_000, signal });
    expect(result).toMatchObject({ kind: 'exhausted', permanent: true });
    expect(calls).toHaveLength(1);
  });

  it('waits at least the downstream Retry-After', async () => {
    const time = fakeTime();
    const { fn } = scripted([status(503, { 'retry-after': '3' }), ok]);
    await manager(time).execute(fn, { deadlineAt: time.clock.now() + 15_000, signal });
    expect(time.sleeps).toEqual([3000]);
  });

  it('never sleeps past the deadline: a Retry-After beyond it makes the failure final', async () => {
    const time = fakeTime();
    const { fn, calls } = scripted([status(503, { 'retry-after': '30' }), ok]);
    const result = await manager(time).execute(fn, { deadlineAt: time.clock.now() + 15_000, signal });
    expect(result.kind).toBe('exhausted');
    expect(calls).toHaveLength(1);
    expect(time.sleeps).toEqual([]);
  });

  it('shrinks the last attempt timeout to the time left before the deadline', async () => {
    const time = fakeTime();
    const { fn, calls } = scripted([status(503), ok], time, 4_000);
    await manager(time, { random: () => 0 }).execute(fn, { deadlineAt: time.clock.now() + 6_000, signal });
    expect(calls.map((c) => c.timeoutMs)).toEqual([5000, 2000]);
  });

  it('does not start an attempt with less time left than the recent successes took (their median)', async () => {
    const time = fakeTime();
    const retry = manager(time);
    const fast = scripted([ok], time, 40);
    for (let i = 0; i < 3; i++) await retry.execute(fast.fn, { deadlineAt: time.clock.now() + 15_000, signal });
    const slow = scripted([ok], time, 100);
    await retry.execute(slow.fn, { deadlineAt: time.clock.now() + 15_000, signal });
    expect(retry.minUsefulAttemptMs()).toBe(40); // median of 40, 40, 40, 100

    const late = scripted([ok], time, 40);
    const cutShort = await retry.execute(late.fn, { deadlineAt: time.clock.now() + 39, signal });
    expect(cutShort).toMatchObject({ kind: 'exhausted', cause: 'deadline', attempts: [] });
    expect(late.calls).toHaveLength(0);
    expect(await retry.execute(late.fn, { deadlineAt: time.clock.now() + 40, signal })).toMatchObject({ kind: 'answered' });
  });

  it('makes a failure final when the backoff would leave less time than the recent successes took', async () => {
    const run = async (deadlineInMs: number) => {
      const time = fakeTime();
      const retry = manager(time, { random: () => 0.5 }); // first backoff: 50 ms
      await retry.execute(scripted([ok], time, 200).fn, { deadlineAt: time.clock.now() + 15_000, signal });
      const { fn, calls } = scripted([status(503), ok], time, 10);
      const result = await retry.execute(fn, { deadlineAt: time.clock.now() + deadlineInMs, signal });
      return { result, calls: calls.length };
    };
    // 10 ms for the 503 and 50 ms of backoff leave 240 ms, more than the 200 ms a success takes.
    expect(await run(300)).toMatchObject({ result: { kind: 'answered' }, calls: 2 });
    // They leave 190 ms: the retry would more likely than not be cut off.
    expect(await run(250)).toMatchObject({ result: { kind: 'exhausted', cause: 'deadline' }, calls: 1 });
  });

  it('never asks more than half the request deadline (or attempt timeout): a fresh request always gets its attempt', async () => {
    const time = fakeTime();
    const retry = manager(time, { requestDeadlineMs: 500 });
    // A slow spell: every success took nearly the whole deadline.
    const slow = scripted([ok], time, 497);
    for (let i = 0; i < 32; i++) await retry.execute(slow.fn, { deadlineAt: time.clock.now() + 500, signal });
    expect(retry.minUsefulAttemptMs()).toBe(250);
    // A fresh request (5 ms spent before it reached a worker) is still sent, and so keeps the median current.
    const fresh = scripted([ok], time, 10);
    expect(await retry.execute(fresh.fn, { deadlineAt: time.clock.now() + 495, signal })).toMatchObject({ kind: 'answered' });
    expect(fresh.calls).toHaveLength(1);
    // One that waited in the queue until 200 ms were left is not.
    const late = scripted([ok], time, 10);
    expect(await retry.execute(late.fn, { deadlineAt: time.clock.now() + 200, signal })).toMatchObject({ kind: 'exhausted', cause: 'deadline' });
    expect(late.calls).toHaveLength(0);
    expect(manager(time, { attemptTimeoutMs: 100 }).minUsefulAttemptMs()).toBe(1); // nothing learnt yet
  });

  it('learns from the call alone when the attempt says how long it took (no rate-limit wait)', async () => {
    const time = fakeTime();
    const retry = manager(time);
    const waitedForToken = async () => {
      time.advance(300); // a rate-limit wait, then a 20 ms call
      return { ...ok, callMs: 20 };
    };
    for (let i = 0; i < 3; i++) await retry.execute(waitedForToken, { deadlineAt: time.clock.now() + 15_000, signal });
    expect(retry.minUsefulAttemptMs()).toBe(20);
  });

  it('asks the retry budget before each retry and makes the failure final when it is spent', async () => {
    const time = fakeTime();
    const { fn, calls } = scripted([status(503), status(503), ok]);
    let allowed = 1;
    let requests = 0;
    const budget = { recordRequest: () => void requests++, tryRetry: () => allowed-- > 0 };
    const result = await manager(time, { budget }).execute(fn, { deadlineAt: time.clock.now() + 15_000, signal });
    expect(result).toMatchObject({ kind: 'exhausted', cause: 'retry_budget' });
    expect(calls).toHaveLength(2);
    expect(requests).toBe(1);
  });

  it('reports a breaker refusal before any attempt as refused, with nothing sent', async () => {
    const time = fakeTime();
    const result = await manager(time).execute(() => Promise.reject(new CircuitOpenRefusal(1200)), { deadlineAt: time.clock.now() + 15_000, signal });
    expect(result).toMatchObject({ kind: 'refused', attempts: [], refusal: { code: 'CIRCUIT_OPEN', retryAfterMs: 1200 } });
  });

  it('ends a request whose breaker opens between retries as exhausted with cause breaker_open', async () => {
    const time = fakeTime();
    let call = 0;
    const fn = () => (call++ === 0 ? Promise.resolve({ status: 503, headers: {}, body: Buffer.alloc(0) }) : Promise.reject(new CircuitOpenRefusal(900)));
    const result = await manager(time).execute(fn, { deadlineAt: time.clock.now() + 15_000, signal });
    expect(result).toMatchObject({ kind: 'exhausted', cause: 'breaker_open', lastError: 'HTTP 503' });
    expect(result.attempts).toHaveLength(1);
  });

  it('lends the worker back for each backoff and takes it again before the next attempt', async () => {
    const time = fakeTime();
    const { fn } = scripted([status(503), status(503), ok]);
    const log: string[] = [];
    const suspend = () => {
      log.push(`suspend after ${time.sleeps.length} sleeps`);
      return async () => {
        log.push(`resume after ${time.sleeps.length} sleeps`);
      };
    };
    const result = await manager(time).execute(fn, { deadlineAt: time.clock.now() + 15_000, signal, suspend });
    expect(result.kind).toBe('answered');
    expect(log).toEqual(['suspend after 0 sleeps', 'resume after 1 sleeps', 'suspend after 1 sleeps', 'resume after 2 sleeps']);
  });

  it('ends as past its deadline when taking a worker back took until the deadline', async () => {
    const time = fakeTime();
    const { fn, calls } = scripted([status(503), ok]);
    const deadlineAt = time.clock.now() + 1_000;
    // Every worker is busy until after the deadline.
    const suspend = () => async () => void time.advance(2_000);
    const result = await manager(time).execute(fn, { deadlineAt, signal, suspend });
    expect(calls).toHaveLength(1);
    expect(result).toMatchObject({ kind: 'exhausted', cause: 'deadline', lastError: 'HTTP 503' });
  });

  it('emits one onAttempt per attempt and one onRetry per retry', async () => {
    const time = fakeTime();
    const { fn } = scripted([status(503), status(429), ok]);
    const attempts: string[] = [];
    const retries: number[] = [];
    await manager(time, { onAttempt: (a) => attempts.push(a.outcome), onRetry: (r) => retries.push(r.retryNumber) }).execute(fn, {
      deadlineAt: time.clock.now() + 15_000,
      signal,
    });
    expect(attempts).toEqual(['http_error', 'http_error', 'success']);
    expect(retries).toEqual([1, 2]);
  });

  it('stops without another attempt when the caller aborts during the backoff', async () => {
    const controller = new AbortController();
    const time = fakeTime();
    const { fn, calls } = scripted([status(503), ok]);
    const retry = manager(time, {
      sleep: async () => {
        controller.abort();
        throw new Error('aborted');
      },
    });
    const result = await retry.execute(fn, { deadlineAt: time.clock.now() + 15_000, signal: controller.signal });
    expect(result.kind).toBe('aborted');
    expect(calls).toHaveLength(1);
  });

  it('sends a POST without a key once when its attempt times out after it was written, and says delivery is unknown', async () => {
    const time = fakeTime();
    const { fn, calls } = scripted([new AttemptTimeoutError(5000, 'unknown'), ok]);
    const result = await manager(time).execute(fn, { deadlineAt: time.clock.now() + 15_000, signal, safety: { method: 'POST', keyed: false } });
    expect(result).toMatchObject({ kind: 'exhausted', cause: 'non_retryable', lastTimedOut: true });
    expect(calls).toHaveLength(1);
    expect(result.attempts[0]).toMatchObject({ outcome: 'timeout', sent: 'unknown' });
  });

  it('retries a keyed POST after the same timeout, and a keyless one after a failure before anything was written', async () => {
    const time = fakeTime();
    const keyed = scripted([new AttemptTimeoutError(5000, 'unknown'), ok]);
    expect((await manager(time).execute(keyed.fn, { deadlineAt: time.clock.now() + 15_000, signal, safety: { method: 'POST', keyed: true } })).kind).toBe('answered');
    expect(keyed.calls).toHaveLength(2);
    const unsent = scripted([new ConnectionFailedError('ECONNREFUSED', 'refused', 'no'), ok]);
    expect((await manager(time).execute(unsent.fn, { deadlineAt: time.clock.now() + 15_000, signal, safety: { method: 'POST', keyed: false } })).kind).toBe('answered');
    expect(unsent.calls).toHaveLength(2);
  });
});
