import { quantile } from '../load.js';
import type { Outcome } from './open-loop.js';

/** The client's view of one run. Latencies in ms, over every request (answers, timeouts and errors alike). */
export interface ClientSummary {
  sent: number;
  /** 2xx answers. */
  ok: number;
  /** ok / sent */
  successRate: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Count per status (`0` = no answer). */
  statuses: Record<string, number>;
  /** Count per problem code or error code. */
  codes: Record<string, number>;
  /** The load generator's lag behind the schedule (see `Outcome.lateMs`). */
  lateP99Ms: number;
  lateMaxMs: number;
}

/** A cumulative counter read at a moment of the run (ms from its start). */
export interface CounterSample {
  tMs: number;
  value: number;
}

export interface Bucket {
  startMs: number;
  sent: number;
  ok: number;
}

const isOk = (o: Outcome) => o.status >= 200 && o.status < 300;
const answeredAtMs = (o: Outcome) => o.sentMs + o.latencyMs;

export function summarize(outcomes: readonly Outcome[]): ClientSummary {
  const latencies = Float64Array.from(outcomes, (o) => o.latencyMs).sort();
  const late = Float64Array.from(outcomes, (o) => o.lateMs).sort();
  const statuses: Record<string, number> = {};
  const codes: Record<string, number> = {};
  let ok = 0;
  for (const o of outcomes) {
    if (isOk(o)) ok++;
    statuses[o.status] = (statuses[o.status] ?? 0) + 1;
    if (o.code !== null) codes[o.code] = (codes[o.code] ?? 0) + 1;
  }
  return {
    sent: outcomes.length,
    ok,
    successRate: outcomes.length === 0 ? 0 : ok / outcomes.length,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    maxMs: latencies.length === 0 ? 0 : latencies[latencies.length - 1]!,
    statuses,
    codes,
    lateP99Ms: quantile(late, 0.99),
    lateMaxMs: late.length === 0 ? 0 : late[late.length - 1]!,
  };
}

/** Requests grouped by send time into buckets of `widthMs` starting at `fromMs`, up to `toMs`. */
export function bucketize(outcomes: readonly Outcome[], fromMs: number, toMs: number, widthMs: number): Bucket[] {
  const count = Math.max(0, Math.ceil((toMs - fromMs) / widthMs));
  const buckets: Bucket[] = Array.from({ length: count }, (_, i) => ({ startMs: fromMs + i * widthMs, sent: 0, ok: 0 }));
  for (const o of outcomes) {
    if (o.sentMs < fromMs || o.sentMs >= toMs) continue;
    const bucket = buckets[Math.floor((o.sentMs - fromMs) / widthMs)];
    if (bucket === undefined) continue;
    bucket.sent++;
    if (isOk(o)) bucket.ok++;
  }
  return buckets;
}

export interface RecoveryOptions {
  /** @default 250 */
  bucketMs?: number;
  /** @default 0.95 */
  threshold?: number;
  /**
   * Consecutive buckets that must all meet the threshold, so that one lucky
   * bucket in a flapping recovery does not count. Fewer are enough when the run
   * ends first. @default 4 (one second)
   */
  holdBuckets?: number;
}

/**
 * Time from `recoveryAtMs` (the downstream is healthy again) until client
 * requests succeed again: the start of the first bucket of requests (by send
 * time, buckets aligned to the recovery) from which `holdBuckets` buckets in a
 * row reach `threshold` success. 0 means the first bucket after the recovery
 * already did. null: never before `endMs`.
 */
export function recoveryTimeMs(outcomes: readonly Outcome[], recoveryAtMs: number, endMs: number, options: RecoveryOptions = {}): number | null {
  const bucketMs = options.bucketMs ?? 250;
  const threshold = options.threshold ?? 0.95;
  const hold = options.holdBuckets ?? 4;
  const buckets = bucketize(outcomes, recoveryAtMs, endMs, bucketMs).filter((b) => b.sent > 0);
  const meets = (b: Bucket) => b.ok / b.sent >= threshold;
  for (let i = 0; i < buckets.length; i++) {
    const run = buckets.slice(i, i + hold);
    if (run.every(meets)) return buckets[i]!.startMs - recoveryAtMs;
  }
  return null;
}

/** A cumulative counter's value at `tMs`, interpolated linearly between the samples around it. */
export function counterAt(samples: readonly CounterSample[], tMs: number): number {
  if (samples.length === 0) return 0;
  const first = samples[0]!;
  if (tMs <= first.tMs) return first.value;
  for (let i = 1; i < samples.length; i++) {
    const after = samples[i]!;
    if (tMs > after.tMs) continue;
    const before = samples[i - 1]!;
    const span = after.tMs - before.tMs;
    return span <= 0 ? after.value : before.value + ((after.value - before.value) * (tMs - before.tMs)) / span;
  }
  return samples[samples.length - 1]!.value;
}

/** When the first answer carrying `code` arrived (ms from the run's start), at or after `afterMs`; null if none. */
export function firstAnswerWithCode(outcomes: readonly Outcome[], code: string, afterMs = 0): number | null {
  let first: number | null = null;
  for (const o of outcomes) {
    if (o.code !== code) continue;
    const at = answeredAtMs(o);
    if (at >= afterMs && (first === null || at < first)) first = at;
  }
  return first;
}

export interface WindowLoad {
  fromMs: number;
  toMs: number;
  /** Client requests sent in the window. */
  clientSent: number;
  /** Requests the downstream received in the window. */
  downstreamReceived: number;
  /** downstreamReceived / clientSent */
  downstreamShare: number;
  /** Answers to requests sent in the window that were not 2xx. */
  failed: number;
  /** p99 latency of those failures: how fast a client learns that it failed. */
  failedP99Ms: number;
  /** Failures carrying `failFastCode` (the relay's fail-fast answers). */
  failFast: number;
  failFastP50Ms: number;
  failFastP99Ms: number;
}

/** How much of the client load reached the downstream in [fromMs, toMs), and how fast the failures came back. */
export function windowLoad(outcomes: readonly Outcome[], received: readonly CounterSample[], fromMs: number, toMs: number, failFastCode: string): WindowLoad {
  const inWindow = outcomes.filter((o) => o.sentMs >= fromMs && o.sentMs < toMs);
  const failed = inWindow.filter((o) => !isOk(o));
  const failFast = failed.filter((o) => o.code === failFastCode);
  const at = (list: Outcome[], q: number) => quantile(Float64Array.from(list, (o) => o.latencyMs).sort(), q);
  const p99 = (list: Outcome[]) => at(list, 0.99);
  const downstreamReceived = Math.max(0, counterAt(received, toMs) - counterAt(received, fromMs));
  return {
    fromMs,
    toMs,
    clientSent: inWindow.length,
    downstreamReceived,
    downstreamShare: inWindow.length === 0 ? 0 : downstreamReceived / inWindow.length,
    failed: failed.length,
    failedP99Ms: p99(failed),
    failFast: failFast.length,
    failFastP50Ms: at(failFast, 0.5),
    failFastP99Ms: p99(failFast),
  };
}

/** 2xx answers per second that arrived within [fromMs, toMs). */
export function goodputPerS(outcomes: readonly Outcome[], fromMs: number, toMs: number): number {
  if (toMs <= fromMs) return 0;
  let ok = 0;
  for (const o of outcomes) {
    const at = answeredAtMs(o);
    if (isOk(o) && at >= fromMs && at < toMs) ok++;
  }
  return (ok * 1000) / (toMs - fromMs);
}
