import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { ForbiddenError, UnauthorizedError } from '../errors.js';

const sha256 = (value: string) => createHash('sha256').update(value).digest();

export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

/**
 * Admin routes: with a token, `Authorization: Bearer <token>` compared in
 * constant time (digests first, so lengths cannot leak); without one, loopback
 * clients only (the relay refuses to bind elsewhere without a token).
 */
export function requireAdmin(adminToken: string | undefined): RequestHandler {
  const expected = adminToken === undefined ? undefined : sha256(adminToken);
  return (req, _res, next) => {
    if (expected === undefined) {
      if (isLoopbackAddress(req.socket.remoteAddress)) return next();
      return next(new ForbiddenError('Admin routes answer only loopback clients when ADMIN_TOKEN is unset.'));
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(req.get('authorization') ?? '');
    if (match && timingSafeEqual(sha256(match[1]!), expected)) return next();
    next(new UnauthorizedError('Admin routes need Authorization: Bearer <ADMIN_TOKEN>.'));
  };
}
