// @ts-check
// DOM helpers for the dashboard. Every value goes in as text (textContent or an
// attribute), never as HTML: the page shows bodies, headers and errors that
// anyone who can call the relay may have written.

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * An element with attributes and children; strings become text nodes.
 * @param {string} tag
 * @param {Record<string, string | number | boolean | undefined>} [attrs]
 * @param {Array<Node | string | number | null | undefined>} [children]
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, children = []) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/**
 * An SVG element, as `h`.
 * @param {string} tag
 * @param {Record<string, string | number | boolean | undefined>} [attrs]
 * @param {Array<Node | string | number | null | undefined>} [children]
 * @returns {SVGElement}
 */
export function s(tag, attrs = {}, children = []) {
  const el = /** @type {SVGElement} */ (document.createElementNS(SVG_NS, tag));
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/**
 * @param {Element} el
 * @param {Record<string, string | number | boolean | undefined>} attrs
 */
function setAttrs(el, attrs) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    el.setAttribute(name, value === true ? '' : String(value));
  }
}

/**
 * @param {Element} el
 * @param {Array<Node | string | number | null | undefined>} children
 */
function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined) continue;
    el.append(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }
}

/**
 * Replaces an element's children.
 * @param {Element} el
 * @param {Array<Node | string | number | null | undefined>} children
 */
export function replace(el, children) {
  el.replaceChildren();
  append(el, children);
}

/**
 * The element with this id, or an error naming it (the page and the script must agree).
 * @param {string} id
 * @returns {HTMLElement}
 */
export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`dashboard: no element #${id}`);
  return el;
}

/**
 * A number for people: at most `digits` decimals, no trailing zeros; a dash for none.
 * @param {number | null | undefined} value
 * @param {number} [digits]
 */
export function num(value, digits = 1) {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  return String(Math.round(value * 10 ** digits) / 10 ** digits);
}

/**
 * @param {number | null | undefined} ratio 0-1
 */
export function percent(ratio) {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio)) return '–';
  return `${num(ratio * 100, 1)}%`;
}

/**
 * A duration in ms, as ms or s.
 * @param {number | null | undefined} ms
 */
export function duration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  return ms >= 1000 ? `${num(ms / 1000, 2)} s` : `${num(ms, ms < 10 ? 1 : 0)} ms`;
}
