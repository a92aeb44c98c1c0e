// @ts-check
// One card per route: breaker state and its timeline, in flight against the
// limit, queue depth, rate-limit and retry-budget use, amplification, and the
// operator's controls. Cards are built once and updated in place, so a button or
// selection survives an update.
import { drawLineChart, drawTimeline } from './charts.js';
import { buildControls } from './controls.js';
import { byId, duration, h, num, percent, replace, s } from './dom.js';
import { effectiveState } from './history.js';

/** The worst state among a route's upstreams: what the card's badge shows. */
const SEVERITY = ['closed', 'half_open', 'open'];

/** @param {Record<string, { state: string, forced?: string | null }>} breakers */
export function worstState(breakers) {
  let worst = 'closed';
  for (const breaker of Object.values(breakers)) {
    const state = effectiveState(breaker);
    if (SEVERITY.indexOf(state) > SEVERITY.indexOf(worst)) worst = state;
  }
  return worst;
}

const STATE_WORDS = { closed: 'closed', half_open: 'half-open', open: 'open' };

/** @param {string} state */
function stateWord(state) {
  return /** @type {Record<string, string>} */ (STATE_WORDS)[state] ?? state;
}

/**
 * @param {string} name
 * @returns {{ root: HTMLElement, fields: Record<string, HTMLElement>, bars: Record<string, HTMLElement>, upstreams: HTMLElement, timeline: SVGSVGElement, chart: SVGSVGElement, controls: ReturnType<typeof buildControls> }}
 */
function buildCard(name) {
  /** @type {Record<string, HTMLElement>} */
  const fields = {};
  /** @type {Record<string, HTMLElement>} */
  const bars = {};
  const field = (/** @type {string} */ key, /** @type {string} */ label) => {
    fields[key] = h('dd', { 'data-field': key }, ['–']);
    return h('div', {}, [h('dt', {}, [label]), fields[key]]);
  };
  const meter = (/** @type {string} */ key, /** @type {string} */ label) => {
    fields[key] = h('span', { class: 'meter-text', 'data-field': key }, ['–']);
    bars[key] = h('span', { class: 'meter-fill' });
    return h('div', { class: 'meter' }, [h('span', { class: 'meter-label' }, [label]), h('span', { class: 'meter-track' }, [bars[key]]), fields[key]]);
  };
  const badge = h('span', { class: 'badge', 'data-breaker': 'closed' }, ['closed']);
  fields.badge = badge;
  const pausedBadge = h('span', { class: 'paused-flag', 'data-field': 'paused', hidden: true }, ['paused']);
  fields.paused = pausedBadge;
  const controlSlot = h('div', { class: 'controls', 'data-controls': name });
  const timeline = /** @type {SVGSVGElement} */ (s('svg', { class: 'timeline', role: 'img', 'aria-label': `breaker states of ${name}` }));
  const chart = /** @type {SVGSVGElement} */ (s('svg', { class: 'chart small', role: 'img', 'aria-label': `in flight and limit of ${name}` }));
  const upstreams = h('div', { class: 'upstreams' });
  const root = h('article', { class: 'card route', 'data-route': name }, [
    h('header', { class: 'route-head' }, [h('h3', {}, [name]), pausedBadge, h('span', { class: 'badge-label' }, ['breaker']), badge]),
    h('dl', { class: 'figures' }, [
      field('rps', 'req/s'),
      field('errors', 'errors'),
      field('p99', 'p99'),
      field('amplification', 'amplification'),
    ]),
    meter('inflight', 'in flight'),
    meter('queue', 'queue'),
    meter('budget', 'retry budget'),
    h('div', { class: 'protections' }, [h('p', { 'data-field': 'ratelimit' }, ['–']), h('p', { 'data-field': 'aimd' }, ['–'])]),
    upstreams,
    h('h4', {}, ['Breaker state over time']),
    timeline,
    h('h4', {}, ['In flight and limit']),
    chart,
    h('h4', {}, ['Operator controls']),
    controlSlot,
  ]);
  const controls = buildControls(controlSlot, name);
  for (const p of root.querySelectorAll('.protections [data-field]')) fields[/** @type {string} */ (p.getAttribute('data-field'))] = /** @type {HTMLElement} */ (p);
  return { root, fields, bars, upstreams, timeline, chart, controls };
}

/**
 * @param {HTMLElement} bar
 * @param {number} used
 * @param {number} of
 */
function fill(bar, used, of) {
  const ratio = of > 0 ? Math.min(1, used / of) : 0;
  bar.style.width = `${(ratio * 100).toFixed(1)}%`;
  bar.classList.toggle('high', ratio >= 0.8);
}

export class RouteCards {
  constructor() {
    this.container = byId('routes');
    /** @type {Map<string, ReturnType<typeof buildCard>>} */
    this.cards = new Map();
  }

  /**
   * @param {any} stats
   * @param {import('./history.js').History} history
   * @param {number} now
   */
  render(stats, history, now) {
    const names = Object.keys(stats.routes ?? {});
    for (const [name, card] of this.cards) {
      if (!names.includes(name)) {
        card.root.remove();
        this.cards.delete(name);
      }
    }
    for (const name of names) {
      let card = this.cards.get(name);
      if (!card) {
        card = buildCard(name);
        this.cards.set(name, card);
        this.container.append(card.root);
      }
      this.update(card, name, stats.routes[name], history, now);
    }
  }

  /**
   * @param {ReturnType<typeof buildCard>} card
   * @param {string} name
   * @param {any} route
   * @param {import('./history.js').History} history
   * @param {number} now
   */
  update(card, name, route, history, now) {
    const { fields, bars } = card;
    const state = worstState(route.breakers ?? {});
    const forced = Object.values(route.breakers ?? {}).some((/** @type {any} */ breaker) => breaker.forced === 'open' || breaker.forced === 'closed');
    fields.badge.textContent = forced ? `${stateWord(state)} (forced)` : stateWord(state);
    fields.badge.setAttribute('data-breaker', state);
    card.root.setAttribute('data-breaker', state);
    const paused = route.control?.paused === true;
    fields.paused.hidden = !paused;
    card.root.toggleAttribute('data-paused', paused);
    card.controls.update(route.control);
    const points = history.routes.get(name) ?? [];
    fields.rps.textContent = num(points.at(-1)?.rps ?? route.rate.rps, 1);
    fields.errors.textContent = `${percent(route.errors.rate)} (${route.errors.count})`;
    fields.p99.textContent = duration(route.duration.p99Ms);
    fields.amplification.textContent = `${num(route.downstream.amplification, 2)}×`;
    const { queue } = route;
    fields.inflight.textContent = `${queue.busy} / ${queue.concurrencyLimit} (ceiling ${queue.workers})`;
    fill(bars.inflight, queue.busy, queue.concurrencyLimit);
    fields.queue.textContent = `${queue.depth} / ${queue.capacity}`;
    fill(bars.queue, queue.depth, queue.capacity);
    const budget = route.retryBudget;
    // Retries the budget would still allow now, against what it holds at rest.
    const budgetUsed = budget.retries;
    fields.budget.textContent = `${budget.retries} retries, ${budget.available} left, ${budget.denied} denied (${budget.mode})`;
    fill(bars.budget, budgetUsed, budgetUsed + Math.max(0, budget.available));
    const limits = Object.entries(route.rateLimit ?? {});
    fields.ratelimit.textContent =
      limits.length === 0
        ? 'Rate limit: none'
        : `Rate limit: ${limits
            .map(([upstream, limit]) => `${upstream} ${num(limit.currentRatePerSecond, 1)}/s, ${num(limit.tokens, 0)}/${limit.burst} tokens, ${limit.delayed} delayed, ${limit.rejected} refused (${limit.mode})`)
            .join('; ')}`;
    const aimd = route.aimd;
    fields.aimd.textContent = `AIMD limit ${aimd.limit} (${aimd.min}-${aimd.max}, ${aimd.mode}${aimd.slowStart ? ', slow start' : ''}): ${aimd.increases} up, ${aimd.decreases} down`;
    replace(
      card.upstreams,
      Object.entries(route.breakers ?? {}).map(([upstream, breaker]) =>
        h('p', { class: 'upstream', 'data-upstream': upstream }, [
          h('span', { class: 'badge small', 'data-breaker': effectiveState(breaker) }, [stateWord(effectiveState(breaker))]),
          ` ${upstream}${breaker.forced ? ` (forced ${breaker.forced} by an operator)` : ''}: ${breaker.calls} calls, ${percent(breaker.failureRate)} failed, ${breaker.consecutiveFailures} in a row, ${breaker.transitions} transitions (${breaker.mode})`,
        ]),
      ),
    );
    const rows = Object.keys(route.breakers ?? {}).map((upstream) => {
      const { spans, transitions } = history.breakers.get(`${name}/${upstream}`) ?? { spans: [], transitions: [] };
      return { label: upstream, spans, transitions };
    });
    const rangeMs = history.rangeMs(now);
    drawTimeline(card.timeline, { rows, now, rangeMs });
    drawLineChart(card.chart, {
      now,
      rangeMs,
      format: (v) => num(v, 0),
      series: [
        { key: 'busy', label: 'in flight', values: points.map(({ t, busy }) => ({ t, v: busy })) },
        { key: 'limit', label: 'concurrency limit', values: points.map(({ t, limit }) => ({ t, v: limit })) },
        { key: 'depth', label: 'queue depth', values: points.map(({ t, depth }) => ({ t, v: depth })) },
      ],
    });
  }
}
