import { createHash, createHmac } from 'node:crypto';
import { InvalidIdempotencyKeyError } from '../errors.js';

const PRINTABLE_ASCII = /^[\x20-\x7e]{1,255}$/;

/**
 * Parses an Idempotency-Key header (draft-ietf-httpapi-idempotency-key-header).
 * The draft defines it as a structured-field string (`"abc"`); plain tokens
 * (`abc`, what Stripe clients send) are accepted too. Returns undefined when the
 * header is absent; throws InvalidIdempotencyKeyError when it is malformed.
 */
export function parseIdempotencyKey(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (Array.isArray(header)) throw new InvalidIdempotencyKeyError('Send exactly one Idempotency-Key header.');
  let key = header;
  if (key.length >= 2 && key.startsWith('"') && key.endsWith('"')) {
    const inner = key.slice(1, -1);
    // RFC 8941 §3.3.3: only \" and \\ are escapes; any other backslash or a bare quote is malformed.
    if (/\\[^"\\]|\\$|(?<!\\)"/.test(inner.replace(/\\\\/g, ''))) {
      throw new InvalidIdempotencyKeyError('The quoted Idempotency-Key is not a valid structured-field string.');
    }
    key = inner.replace(/\\(["\\])/g, '$1');
  }
  if (!PRINTABLE_ASCII.test(key) || key.trim() === '') {
    throw new InvalidIdempotencyKeyError('Idempotency-Key must be 1-255 printable ASCII characters.');
  }
  return key;
}

/**
 * A client's key in the relay's key space: the route, an HMAC of the client's
 * credential (so one client can neither claim nor probe another's keys, and a
 * stolen database does not give credentials away) and the key.
 */
export function keyScope(route: string, credentialKey: Buffer, credential: string | undefined, key: string): string {
  const owner = credential === undefined ? '-' : createHmac('sha256', credentialKey).update(credential).digest('base64url').slice(0, 22);
  return `${route} ${owner} ${key}`;
}

/** What makes two requests under one key the same request: method, route, path and query, content type, body. */
export function requestFingerprint(parts: { method: string; route: string; path: string; contentType: string | undefined; body: Buffer | null }): string {
  const hash = createHash('sha256');
  hash.update(`${parts.method}\n${parts.route}\n${parts.path}\n${parts.contentType ?? ''}\n`);
  if (parts.body) hash.update(parts.body);
  return hash.digest('base64url');
}
