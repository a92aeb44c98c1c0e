import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export type AccessVerdict = 'allow' | 'unauthorized' | 'forbidden';

/**
 * Who may use the control endpoints: with a token, whoever presents
 * `Authorization: Bearer <token>`; without one, loopback clients only.
 */
export function createAccessCheck(adminToken: string | undefined): (req: IncomingMessage) => AccessVerdict {
  if (adminToken === undefined) {
    return (req) => (isLoopback(req.socket.remoteAddress) ? 'allow' : 'forbidden');
  }
  // Comparing fixed-length digests keeps timingSafeEqual from leaking the token's length.
  const expected = sha256(adminToken);
  return (req) => {
    const presented = bearerToken(req.headers.authorization);
    if (presented === null) return 'unauthorized';
    return timingSafeEqual(sha256(presented), expected) ? 'allow' : 'unauthorized';
  };
}

/** 127.0.0.0/8, ::1 and IPv4-mapped 127.x (a dual-stack listener reports those). */
export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

function bearerToken(header: string | undefined): string | null {
  if (header === undefined) return null;
  const match = /^Bearer +(\S+) *$/i.exec(header);
  return match?.[1] ?? null;
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
