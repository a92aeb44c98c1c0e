import { isDeepStrictEqual } from 'node:util';
import type { RouteSpec } from './route-spec.js';
import type { Downstream } from './downstream-set.js';

/**
 * What a reload keeps of the routes it replaces (POST /admin/reload, SIGHUP).
 * Pure decisions; RouteTable (route-pipeline.ts) acts on them.
 *
 * - A route whose spec, and every downstream it calls, are unchanged keeps its
 *   pipeline object: queue, AIMD limit, breakers, rate limits, retry budget, all of it.
 * - A downstream (a route's target or anonymous fallback) keeps its breaker,
 *   rate limiter and connection pool while what they are built from is
 *   unchanged ({@link downstreamIdentity}); a change of its credentials alone
 *   (`headers.set`, `headers.remove`) keeps them too.
 * - A changed route gets a new pipeline (new queue and worker pool) whose AIMD
 *   limit starts where the old one was, and which keeps the old retry budget
 *   when its knobs did not change.
 */

/** What a downstream's breaker, rate limiter and client are built from: equal strings, the same ones serve. */
export function downstreamIdentity(spec: RouteSpec, url: string, connections: number | undefined): string {
  return JSON.stringify({ url, connections: connections ?? spec.concurrency.max, breaker: spec.breaker, rateLimit: spec.rateLimit });
}

/** `downstream` with the credentials of `spec` (the same object when they did not change). */
export function withCredentials(downstream: Downstream, spec: RouteSpec): Downstream {
  const headers = { set: spec.headers.set, remove: spec.headers.remove };
  return isDeepStrictEqual(downstream.headers, headers) ? downstream : { ...downstream, headers };
}

/** Whether a route's pipeline can serve `spec` with `members` as it is. */
export function canKeepPipeline(
  old: { spec: RouteSpec; downstreams: { entries: ReadonlyArray<{ downstream: Downstream }> } },
  spec: RouteSpec,
  members: readonly Downstream[],
): boolean {
  const entries = old.downstreams.entries;
  return (
    isDeepStrictEqual(old.spec, spec) && entries.length === members.length && entries.every((entry, index) => entry.downstream === members[index])
  );
}

/** Whether a changed route may keep its old retry budget (its window of requests and retries). */
export function sameRetryBudget(a: RouteSpec, b: RouteSpec): boolean {
  return isDeepStrictEqual(a.retryBudget, b.retryBudget);
}

/** Where a changed route's AIMD limit starts: the old one's, within the new bounds. */
export function carriedLimit(oldLimit: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, Math.floor(oldLimit)));
}

/** What a reload did, by route name. */
export interface RoutesChange {
  added: string[];
  changed: string[];
  removed: string[];
  unchanged: string[];
}

export function diffRoutes<P>(before: ReadonlyMap<string, P>, after: ReadonlyMap<string, P>): RoutesChange {
  const change: RoutesChange = { added: [], changed: [], removed: [], unchanged: [] };
  for (const [name, pipeline] of after) {
    const old = before.get(name);
    if (old === undefined) change.added.push(name);
    else if (old === pipeline) change.unchanged.push(name);
    else change.changed.push(name);
  }
  for (const name of before.keys()) if (!after.has(name)) change.removed.push(name);
  return change;
}
