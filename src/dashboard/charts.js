// @ts-check
// Plain SVG charts drawn from the page's history: no library, nothing fetched.
import { replace, s } from './dom.js';

const PAD = { left: 56, right: 8, top: 8, bottom: 20 };
const TICK_STEPS_MS = [10_000, 15_000, 30_000, 60_000];

/**
 * The drawing's width in CSS pixels: the SVG is drawn at its own size, not
 * scaled, so its text stays 10 px on a phone and on a wide screen.
 * @param {SVGSVGElement} svg
 */
function widthOf(svg) {
  const width = Math.round(svg.getBoundingClientRect().width);
  return width >= 200 ? width : 600;
}

/**
 * @typedef {{ key: string, label: string, values: Array<{ t: number, v: number | null }> }} Series
 */

/**
 * A round upper bound for the y axis (1, 2 or 5 times a power of ten).
 * @param {number} max
 */
export function niceCeiling(max) {
  if (!(max > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 5, 10]) if (max <= step * power) return step * power;
  return 10 * power;
}

/**
 * A path through the points, broken where a value is missing.
 * @param {Array<{ t: number, v: number | null }>} values
 * @param {(t: number) => number} x
 * @param {(v: number) => number} y
 */
function pathOf(values, x, y) {
  let d = '';
  let pen = 'M';
  for (const { t, v } of values) {
    if (v === null || !Number.isFinite(v)) {
      pen = 'M';
      continue;
    }
    d += `${pen}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
    pen = 'L';
  }
  return d;
}

/**
 * Draws a line chart of the last `rangeMs` into `svg` (its old content goes).
 * @param {SVGSVGElement} svg
 * @param {{ series: Series[], now: number, rangeMs: number, format: (v: number) => string }} options
 */
export function drawLineChart(svg, { series, now, rangeMs, format }) {
  const WIDTH = widthOf(svg);
  const HEIGHT = svg.classList.contains('small') ? 120 : 160;
  svg.setAttribute('viewBox', `0 0 ${WIDTH} ${HEIGHT}`);
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  let max = 0;
  for (const { values } of series) for (const { v } of values) if (v !== null && v > max) max = v;
  const top = niceCeiling(max);
  const x = (/** @type {number} */ t) => PAD.left + plotW * (1 - (now - t) / rangeMs);
  const y = (/** @type {number} */ v) => PAD.top + plotH * (1 - v / top);
  /** @type {SVGElement[]} */
  const parts = [];
  for (const fraction of [0, 0.5, 1]) {
    const v = top * fraction;
    parts.push(s('line', { class: 'grid', x1: PAD.left, x2: WIDTH - PAD.right, y1: y(v), y2: y(v) }));
    parts.push(s('text', { class: 'axis', x: PAD.left - 4, y: y(v) + 4, 'text-anchor': 'end' }, [format(v)]));
  }
  const stepMs = TICK_STEPS_MS.find((step) => rangeMs / step <= 6) ?? 60_000;
  for (let ago = 0; ago <= rangeMs; ago += stepMs) {
    const anchor = ago === 0 ? 'end' : ago + stepMs > rangeMs ? 'start' : 'middle';
    parts.push(s('text', { class: 'axis', x: x(now - ago), y: HEIGHT - 4, 'text-anchor': anchor }, [ago === 0 ? 'now' : ago % 60_000 === 0 ? `-${ago / 60_000}m` : `-${ago / 1000}s`]));
  }
  series.forEach(({ key, label, values }, i) => {
    const d = pathOf(values, x, y);
    parts.push(s('path', { class: `line line-${i}`, d: d || 'M0,0', 'data-series': key, 'data-points': values.filter(({ v }) => v !== null).length }, [s('title', {}, [label])]));
  });
  replace(svg, parts);
}

const STATE_ROW_H = 14;

/**
 * Breaker states over time, one row per upstream: green closed, amber half-open,
 * red open; a tick where the state changed.
 * @param {SVGSVGElement} svg
 * @param {{ rows: Array<{ label: string, spans: Array<{ state: string, from: number, to: number }>, transitions: number[] }>, now: number, rangeMs: number }} options
 */
export function drawTimeline(svg, { rows, now, rangeMs }) {
  const WIDTH = widthOf(svg);
  const height = Math.max(1, rows.length) * (STATE_ROW_H + 4) + 4;
  svg.setAttribute('viewBox', `0 0 ${WIDTH} ${height}`);
  const left = PAD.left;
  const plotW = WIDTH - left - PAD.right;
  const x = (/** @type {number} */ t) => Math.max(left, left + plotW * (1 - (now - t) / rangeMs));
  /** @type {SVGElement[]} */
  const parts = [];
  rows.forEach(({ label, spans, transitions }, row) => {
    const y = 4 + row * (STATE_ROW_H + 4);
    const short = label.length > 9 ? `${label.slice(0, 8)}…` : label;
    parts.push(s('text', { class: 'axis', x: left - 4, y: y + STATE_ROW_H - 3, 'text-anchor': 'end' }, [short, s('title', {}, [label])]));
    parts.push(s('rect', { class: 'track', x: left, y, width: plotW, height: STATE_ROW_H }));
    for (const span of spans) {
      const x1 = x(span.from);
      // A span seen in one event only still gets a sliver, so a short open shows.
      const w = Math.max(2, x(span.to) - x1);
      parts.push(s('rect', { class: `span state-${span.state}`, x: x1, y, width: w, height: STATE_ROW_H, 'data-state': span.state }, [s('title', {}, [span.state])]));
    }
    for (const t of transitions) parts.push(s('line', { class: 'transition', x1: x(t), x2: x(t), y1: y - 2, y2: y + STATE_ROW_H + 2 }));
  });
  replace(svg, parts);
}
