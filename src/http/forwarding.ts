import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HOP_BY_HOP } from '../downstream/client.js';
import { BadPathError, RouteClientUnauthorizedError } from '../errors.js';
import type { RoutePipeline } from '../routes/route-pipeline.js';
import { randomHex } from './random-hex.js';

/**
 * The contract's forwarding rules, in one place: which client headers reach the
 * downstream, which paths may, and what makes two requests "the same" under one key.
 */

/** Headers the relay consumes or sets itself; never forwarded as the client sent them. */
const NOT_FORWARDED = new Set(['host', 'content-length', 'expect', 'idempotency-key', 'x-request-id', 'traceparent']);
const TRACEPARENT = /^([\da-f]{2})-([\da-f]{32})-([\da-f]{16})-([\da-f]{2})$/;
/** RFC 7240 preferences the relay acts on itself; others (return=minimal...) go to the downstream. */
const RELAY_PREFERENCES = new Set(['respond-async', 'wait']);

/**
 * The client's end-to-end headers (lower-case names, values as Node joined
 * them), less hop-by-hop ones and those `Connection` names, `Host`,
 * `Content-Length`, the relay's own controls (`X-Relay-*`, the `respond-async`
 * and `wait` preferences), then the key under the route's header, the request id
 * and a traceparent. The route's `headers.remove` and `headers.set` are applied
 * per downstream at send time.
 */
export function forwardHeaders(
  req: IncomingMessage,
  options: { requestId: string; keyHeader: string; sendKey: string | undefined },
): Record<string, string> {
  const headers: Record<string, string> = {};
  const connection = req.headers.connection;
  const named = connection ? connection.split(',').map((name) => name.trim().toLowerCase()) : [];
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || NOT_FORWARDED.has(name) || name.startsWith('x-relay-')) continue;
    if (named.length > 0 && named.includes(name)) continue;
    if (name === 'prefer') {
      const kept = keptPreferences(Array.isArray(value) ? value.join(',') : value);
      if (kept !== '') headers.prefer = kept;
      continue;
    }
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  if (options.sendKey !== undefined) headers[options.keyHeader] = options.sendKey;
  headers['x-request-id'] = options.requestId;
  const traceparent = req.headers.traceparent;
  headers.traceparent = childTraceparent(Array.isArray(traceparent) ? traceparent[0] : traceparent);
  return headers;
}

function keptPreferences(prefer: string): string {
  return prefer
    .split(',')
    .map((preference) => preference.trim())
    .filter((preference) => preference !== '' && !RELAY_PREFERENCES.has(preference.split(/[;=]/)[0]!.trim().toLowerCase()))
    .join(', ');
}

/** W3C trace context: the client's trace id with a span of the relay's, or a new trace. */
export function childTraceparent(incoming: string | undefined): string {
  const match = incoming === undefined ? null : TRACEPARENT.exec(incoming);
  const span = randomHex(8);
  if (match && match[2] !== '0'.repeat(32) && match[1] !== 'ff') return `00-${match[2]}-${span}-${match[4]}`;
  return `00-${randomHex(16)}-${span}-01`;
}

/**
 * The client's rest of the path, still encoded, checked so that string joining
 * keeps it under the target: no `.`/`..` segments (also `%2e`-encoded), no empty
 * segment inside it, no encoded `/` or `\`, no `\`, `#` or control characters.
 * A trailing `/` is the client's to send.
 */
export function assertSafePath(rest: string): void {
  if (rest === '' || rest === '/') return;
  if (/[\\#\x00-\x1f\x7f]|%(?:2f|5c|[01][\da-f]|7f)/i.test(rest)) throw new BadPathError('The path has an encoded slash or backslash, a backslash, a fragment or a control character.');
  const segments = rest.slice(1).split('/');
  for (const [index, segment] of segments.entries()) {
    if (segment === '' && index !== segments.length - 1) throw new BadPathError('The path has an empty segment (`//`).');
    const decoded = segment.replace(/%2e/gi, '.');
    if (decoded === '.' || decoded === '..') throw new BadPathError('The path has a `.` or `..` segment.');
  }
}

/** `X-Relay-Token` against the route's clients, in constant time; a route with credentials and no clients is open (loopback only, checked at start-up). */
export function assertRouteClient(route: RoutePipeline, token: string | undefined): void {
  const { clients } = route.spec;
  if (clients.length === 0) return;
  const given = digest(token ?? '');
  let ok = false;
  for (const client of clients) ok = timingSafeEqual(given, digest(client)) || ok;
  if (!ok || token === undefined) throw new RouteClientUnauthorizedError(`The route ${route.name} answers only its clients: send one of its tokens in X-Relay-Token.`);
}

const digest = (value: string) => createHash('sha256').update(value).digest();

/** The credential a key is scoped to: `Authorization`, else `X-Api-Key`. */
export function clientCredential(req: IncomingMessage): string | undefined {
  const authorization = req.headers.authorization;
  if (authorization) return authorization;
  const apiKey = req.headers['x-api-key'];
  return Array.isArray(apiKey) ? apiKey.join(', ') : apiKey;
}
