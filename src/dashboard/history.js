// @ts-check
// What the page remembers of the stream: /stats is a snapshot (rates over a
// sliding window, lifetime totals), so the charts' per-second series are built
// here from the difference between consecutive snapshots.

/** How much the charts show: five minutes at one event a second. */
export const HISTORY_MS = 5 * 60 * 1000;
const MIN_RANGE_MS = 60 * 1000;

/**
 * @typedef {{ t: number, rps: number | null, errorsPerS: number | null, p50Ms: number, p99Ms: number }} RedPoint
 * @typedef {{ t: number, rps: number | null, busy: number, limit: number, depth: number, capacity: number }} RoutePoint
 * @typedef {{ state: string, from: number, to: number }} StateSpan
 * @typedef {{ spans: StateSpan[], transitions: number[], lastCount: number | null }} BreakerHistory
 */

/**
 * Requests per second between two snapshots, from their lifetime totals.
 * @param {{ t: number, totals: { requests: number, failed: number } } | undefined} before
 * @param {{ t: number, totals: { requests: number, failed: number } }} after
 * @returns {{ rps: number | null, errorsPerS: number | null }}
 */
export function ratesBetween(before, after) {
  if (!before) return { rps: null, errorsPerS: null };
  const seconds = (after.t - before.t) / 1000;
  if (seconds <= 0) return { rps: null, errorsPerS: null };
  // A restarted relay starts its totals again: show nothing rather than a negative rate.
  const requests = after.totals.requests - before.totals.requests;
  const failed = after.totals.failed - before.totals.failed;
  if (requests < 0 || failed < 0) return { rps: null, errorsPerS: null };
  return { rps: requests / seconds, errorsPerS: failed / seconds };
}

/**
 * What a breaker does now: an operator's forced state (`forced`, from the admin
 * breaker route) wins over the state machine's.
 * @param {{ state: string, forced?: string | null }} breaker
 */
export function effectiveState(breaker) {
  return breaker.forced === 'open' || breaker.forced === 'closed' ? breaker.forced : breaker.state;
}

export class History {
  constructor(now = () => Date.now()) {
    this.now = now;
    /** @type {RedPoint[]} */
    this.red = [];
    /** @type {Map<string, RoutePoint[]>} */
    this.routes = new Map();
    /** @type {Map<string, BreakerHistory>} by `route/upstream` */
    this.breakers = new Map();
    /** @type {{ t: number, totals: any } | undefined} */
    this.lastTotals = undefined;
    /** @type {Map<string, { t: number, totals: any }>} */
    this.lastRouteTotals = new Map();
    /** @type {any} */
    this.latest = undefined;
  }

  /** @param {any} stats a /stats document */
  add(stats) {
    const t = this.now();
    this.latest = stats;
    const current = { t, totals: stats.totals };
    this.red.push({ t, ...ratesBetween(this.lastTotals, current), p50Ms: stats.duration.p50Ms, p99Ms: stats.duration.p99Ms });
    this.lastTotals = current;
    for (const [name, route] of Object.entries(stats.routes ?? {})) {
      const points = this.routes.get(name) ?? [];
      const routeNow = { t, totals: route.totals };
      const { rps } = ratesBetween(this.lastRouteTotals.get(name), routeNow);
      this.lastRouteTotals.set(name, routeNow);
      points.push({ t, rps, busy: route.queue.busy, limit: route.queue.concurrencyLimit, depth: route.queue.depth, capacity: route.queue.capacity });
      this.routes.set(name, points);
      for (const [upstream, breaker] of Object.entries(route.breakers ?? {})) this.breaker(`${name}/${upstream}`, breaker, t);
    }
    this.trim(t - HISTORY_MS);
  }

  /**
   * Extends the state's span, or starts a new one. A breaker that opened and
   * closed between two events shows as a transition mark (its counter moved)
   * though no span of the state was seen.
   * @param {string} key
   * @param {{ state: string, forced?: string | null, transitions: number }} breaker
   * @param {number} t
   */
  breaker(key, breaker, t) {
    const history = this.breakers.get(key) ?? { spans: [], transitions: [], lastCount: null };
    const last = history.spans.at(-1);
    const state = effectiveState(breaker);
    if (last && last.state === state) last.to = t;
    else {
      if (last) last.to = t;
      history.spans.push({ state, from: last ? last.to : t, to: t });
    }
    if (history.lastCount !== null && breaker.transitions !== history.lastCount) history.transitions.push(t);
    history.lastCount = breaker.transitions;
    this.breakers.set(key, history);
  }

  /**
   * How far back the charts reach: what has been seen, from one minute up to
   * five, so the first minutes after opening the page are not a sliver at the edge.
   * @param {number} now
   */
  rangeMs(now) {
    const first = this.red[0]?.t ?? now;
    return Math.min(HISTORY_MS, Math.max(MIN_RANGE_MS, now - first));
  }

  /** @param {number} since */
  trim(since) {
    const keep = (/** @type {{ t: number }} */ point) => point.t >= since;
    this.red = this.red.filter(keep);
    for (const [name, points] of this.routes) this.routes.set(name, points.filter(keep));
    for (const history of this.breakers.values()) {
      history.spans = history.spans.filter((span) => span.to >= since);
      history.transitions = history.transitions.filter((t) => t >= since);
    }
  }
}
