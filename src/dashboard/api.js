// @ts-check
// The admin routes, called with the operator's token. The token lives in this
// tab's sessionStorage only: it goes when the tab closes and no other site can read it.
import { problemText } from './stream.js';

const TOKEN_KEY = 'resilient-relay.adminToken';

/** Whether the relay wants a token (the page is told in a meta tag, so it need not fail once to find out). */
export function tokenRequired() {
  return document.querySelector('meta[name="relay-admin-auth"]')?.getAttribute('content') === 'token';
}

/** @returns {string | null} */
export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** @param {string | null} token */
export function storeToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** A request the relay refused: its problem's words. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} message
   */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** @type {() => void} */
let onUnauthorized = () => {};

/** @param {() => void} handler called when the relay answers 401 (the token is missing or wrong) */
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

/**
 * Calls an admin route; JSON in and out.
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<any>} the parsed answer, or null for 204
 */
export async function api(method, path, body) {
  const headers = new Headers({ accept: 'application/json' });
  const token = storedToken();
  if (token) headers.set('authorization', `Bearer ${token}`);
  if (body !== undefined) headers.set('content-type', 'application/json');
  const res = await fetch(path, { method, headers, cache: 'no-store', ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  if (res.status === 401) onUnauthorized();
  if (!res.ok) throw new ApiError(res.status, await problemText(res));
  if (res.status === 204) return null;
  return res.json();
}
