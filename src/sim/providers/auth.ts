import { createHash, timingSafeEqual } from 'node:crypto';

/** Whether `authorization` is `Bearer <key>`. */
export function hasBearer(authorization: string | undefined, key: string): boolean {
  const match = /^Bearer +(\S+) *$/i.exec(authorization ?? '');
  return match !== null && sameSecret(match[1]!, key);
}

/** Whether `authorization` is `Basic base64(user:password)` (RFC 7617). */
export function hasBasic(authorization: string | undefined, user: string, password: string): boolean {
  const match = /^Basic +([A-Za-z0-9+/]+=*) *$/i.exec(authorization ?? '');
  return match !== null && sameSecret(Buffer.from(match[1]!, 'base64').toString('utf8'), `${user}:${password}`);
}

// Comparing fixed-length digests keeps timingSafeEqual from leaking the secret's length.
function sameSecret(presented: string, expected: string): boolean {
  return timingSafeEqual(sha256(presented), sha256(expected));
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
