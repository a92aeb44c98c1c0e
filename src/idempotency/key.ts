import { createHash } from 'node:crypto';
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
 * What makes "the same request" for a key: the exact body bytes and who sent it
 * (a hash of the Authorization header, so one client cannot replay another's
 * answer by guessing its key). The raw credential is never stored.
 */
export function requestFingerprint(body: Buffer, authorization: string | undefined): string {
  const hash = createHash('sha256');
  hash.update(authorization ? createHash('sha256').update(authorization).digest('hex') : '-');
  hash.update('\n');
  hash.update(body);
  return hash.digest('base64url');
}
