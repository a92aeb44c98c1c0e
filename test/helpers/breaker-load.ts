import type { BreakerStateChange, CircuitBreaker } from '../../src/resilience/circuit-breaker.js';

/**
 * Client traffic through one circuit breaker on a fake clock, with the relay's
 * retry loop: requests arrive evenly, each attempt asks the breaker, a refused
 * attempt ends its request (nothing sent), a failed one is retried after a
 * full-jitter backoff up to `maxAttempts`. The downstream decides each call's
 * fate when it receives it, as the simulator does. No retry budget and no
 * concurrency limit: both only ever send fewer calls.
 */
export interface LoadPlan {
  ratePerS: number;
  durationMs: number;
  /** Chance that a call received at `atMs` (from the start) fails. */
  failRateAt(atMs: number): number;
  /** @default 5 (each call takes 0.5x to 1.5x of it) */
  latencyMs?: number;
  /** @default 4 */
  maxAttempts?: number;
  /** @default 100 */
  baseDelayMs?: number;
  /** @default 2000 */
  maxDelayMs?: number;
  seed: number;
}

export interface LoadResult {
  /** Every transition with its time from the start. */
  transitions: Array<BreakerStateChange & { atMs: number }>;
  /** When each call reached the downstream, from the start. */
  callsAtMs: number[];
  /** Per request, by arrival: when it arrived and whether it ended in a success. */
  requests: Array<{ atMs: number; ok: boolean }>;
}

/** A settable clock: the simulation moves it from event to event. */
export function steppedClock(start = 1_000_000): { clock: { now(): number }; set(ms: number): void; start: number } {
  let now = start;
  return { clock: { now: () => now }, set: (ms) => (now = start + ms), start };
}

/** mulberry32: a small seeded generator, so every run of a test sees the same calls. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

interface Event {
  atMs: number;
  seq: number;
  run(): void;
}

/** A binary min-heap on (atMs, seq): events at the same time run in the order they were scheduled. */
class EventQueue {
  private readonly heap: Event[] = [];
  private seq = 0;

  push(atMs: number, run: () => void): void {
    const heap = this.heap;
    heap.push({ atMs, seq: this.seq++, run });
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  pop(): Event | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && before(heap[l]!, heap[m]!)) m = l;
        if (r < heap.length && before(heap[r]!, heap[m]!)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    }
    return top;
  }
}

const before = (a: Event, b: Event) => a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);

/**
 * Runs `plan` through `breaker`, whose clock must be `time.clock`; `changes` is
 * the list its onStateChange pushes to, and each new entry is stamped with the
 * simulated time it happened at.
 */
export function simulateLoad(
  breaker: CircuitBreaker,
  time: ReturnType<typeof steppedClock>,
  plan: LoadPlan,
  changes: BreakerStateChange[],
): LoadResult {
  const random = seededRandom(plan.seed);
  const latencyMs = plan.latencyMs ?? 5;
  const maxAttempts = plan.maxAttempts ?? 4;
  const baseDelayMs = plan.baseDelayMs ?? 100;
  const maxDelayMs = plan.maxDelayMs ?? 2000;
  const queue = new EventQueue();
  const result: LoadResult = { transitions: [], callsAtMs: [], requests: [] };
  let seenChanges = changes.length;
  const noteChanges = (atMs: number) => {
    for (; seenChanges < changes.length; seenChanges++) result.transitions.push({ ...changes[seenChanges]!, atMs });
  };

  const attempt = (request: { atMs: number; ok: boolean }, n: number, atMs: number): void => {
    const permit = breaker.tryAcquire();
    noteChanges(atMs);
    if (!permit.allowed) return;
    result.callsAtMs.push(atMs);
    const failed = random() < plan.failRateAt(atMs);
    const durationMs = latencyMs * (0.5 + random());
    queue.push(atMs + durationMs, () => {
      const doneAt = atMs + durationMs;
      permit.record({ ok: !failed, durationMs, reason: 'HTTP 503' });
      noteChanges(doneAt);
      if (!failed) {
        request.ok = true;
        return;
      }
      if (n + 1 >= maxAttempts) return;
      const backoffMs = random() * Math.min(maxDelayMs, baseDelayMs * 2 ** n);
      queue.push(doneAt + backoffMs, () => attempt(request, n + 1, doneAt + backoffMs));
    });
  };

  const total = Math.round((plan.ratePerS * plan.durationMs) / 1000);
  for (let i = 0; i < total; i++) {
    const atMs = (i * 1000) / plan.ratePerS;
    queue.push(atMs, () => {
      const request = { atMs, ok: false };
      result.requests.push(request);
      attempt(request, 0, atMs);
    });
  }
  for (let event = queue.pop(); event; event = queue.pop()) {
    time.set(event.atMs);
    event.run();
  }
  return result;
}
