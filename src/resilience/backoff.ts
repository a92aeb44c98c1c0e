import type { Random } from '../clock.js';

export interface BackoffOptions {
  /** @default 100 */
  baseDelayMs: number;
  /** Cap of one delay. @default 2000 */
  maxDelayMs: number;
}

/**
 * Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"):
 * delay before retry n (n = 0 for the first retry) = random(0, min(max, base * 2^n)).
 * Spreading retries over the whole interval is what keeps many clients that
 * failed together from retrying together.
 */
export function fullJitterDelayMs(retryIndex: number, options: BackoffOptions, random: Random): number {
  const ceiling = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** Math.max(0, retryIndex));
  return Math.floor(random() * ceiling);
}

/**
 * Parses a Retry-After value (RFC 9110 §10.2.3: delta-seconds or an HTTP-date)
 * into milliseconds from `nowMs`. Returns undefined when absent or unparsable.
 */
export function parseRetryAfterMs(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  // All three HTTP-date forms start with a day name; Date.parse alone would take "1.5" as a date.
  if (!/^(mon|tue|wed|thu|fri|sat|sun)/i.test(trimmed)) return undefined;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - nowMs);
}
