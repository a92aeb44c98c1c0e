import type { Response } from 'express';
import type { RoutePipeline } from '../routes/route-pipeline.js';

/** A full queue is no rate limit: its 429 carries Retry-After alone (contract, "Operator console and control"). */
const QUEUE_FULL_CODES: ReadonlySet<string> = new Set(['QUEUE_FULL', 'JOB_QUEUE_FULL']);
/** Longest window searched for a whole quota when the rate is fractional (0.5/s is `q=1;w=2`). */
const MAX_WINDOW_S = 3600;

/**
 * Sets `RateLimit-Policy` and `RateLimit` (IETF httpapi-ratelimit-headers, draft
 * 08 and later) on an answer of `route`, from its own rate limit; on a 503
 * RATE_LIMITED of a route without one, from the fallback whose limit refused.
 * Sets nothing without an enforced limit, for a full queue, or once headers are sent.
 * `code`: the relay error the answer carries, if it is one.
 */
export function setRateLimitHeaders(res: Response, route: RoutePipeline, code?: string): void {
  if (res.headersSent || (code !== undefined && QUEUE_FULL_CODES.has(code))) return;
  const owner =
    route.downstream.limiter || code !== 'RATE_LIMITED' ? route.downstream : route.downstreams.entries.find(({ downstream }) => downstream.limiter)?.downstream;
  const state = owner?.limiter?.headerState();
  if (!owner || !state) return;
  const { quota, windowS } = quotaPolicy(state.ratePerSecond);
  const name = sfString(owner.route);
  res.setHeader('RateLimit-Policy', `${name};q=${quota};w=${windowS}`);
  res.setHeader('RateLimit', `${name};r=${state.remaining};t=${state.resetS}`);
}

/**
 * The draft's quota and window are integers: a whole rate is `q=<rps>;w=1`; a
 * fractional one gets the shortest window holding a whole number of calls.
 */
export function quotaPolicy(ratePerSecond: number): { quota: number; windowS: number } {
  for (let windowS = 1; windowS <= MAX_WINDOW_S; windowS++) {
    const quota = ratePerSecond * windowS;
    if (Math.abs(quota - Math.round(quota)) < 1e-6 && Math.round(quota) >= 1) return { quota: Math.round(quota), windowS };
  }
  return { quota: Math.max(1, Math.round(ratePerSecond * MAX_WINDOW_S)), windowS: MAX_WINDOW_S };
}

/** An RFC 8941 sf-string: quoted, with `"` and `\` escaped (route names are plain, but the syntax is kept whatever they hold). */
function sfString(text: string): string {
  return `"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}
