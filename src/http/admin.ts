import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { RequestHandler } from 'express';
import { ForbiddenError, RelayError, UnauthorizedError } from '../errors.js';

/** A browser request to an admin or state-changing route from another site, or through a rebound DNS name. */
export class CrossSiteError extends RelayError {
  readonly code = 'CROSS_SITE';
  readonly status = 403;
  readonly title = 'Cross-site request refused';
}

const sha256 = (value: string) => createHash('sha256').update(value).digest();

export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

/**
 * Whether the client is on this host. A request that names a client of its
 * own (`Forwarded`, `X-Forwarded-For`, `X-Real-IP`) came through a proxy, and
 * a proxy on this host would otherwise make every client loopback.
 */
export function isLoopbackRequest(req: IncomingMessage): boolean {
  const { headers } = req;
  if (headers.forwarded !== undefined || headers['x-forwarded-for'] !== undefined || headers['x-real-ip'] !== undefined) return false;
  return isLoopbackAddress(req.socket.remoteAddress);
}

export interface CrossSiteOptions {
  /** With a token a rebound DNS name gains nothing (the page has no token), so any `Host` is accepted. */
  adminToken: string | undefined;
  /**
   * The relay's own `host:port` once it listens (`127.0.0.1:3000`); its port
   * is the one `Host` must name. Undefined: any port is accepted, the host
   * name must still be 127.0.0.1, localhost or [::1].
   */
  loopbackHostPort: () => string | undefined;
}

const LOOPBACK_HOST_NAMES = ['127.0.0.1', 'localhost', '[::1]'];
// A bracketed IPv6 literal or a name, then an optional port; nothing else (no user-info, path or spaces).
const HOST_HEADER = /^(\[[0-9a-f:.]+\]|[^\s:/?#@[\]\\]+)(?::(\d{1,5}))?$/i;

function parseHost(value: string | undefined): { name: string; port: string | undefined } | undefined {
  const match = value === undefined ? null : HOST_HEADER.exec(value);
  return match ? { name: match[1]!.toLowerCase(), port: match[2] } : undefined;
}

const DEFAULT_PORTS: Record<string, string> = { 'http:': '80', 'https:': '443' };

/** Whether `origin` is the site the request was sent to (its `Host`). `null` and unparsable origins are foreign. */
function isOwnOrigin(origin: string, hostHeader: string | undefined): boolean {
  const host = parseHost(hostHeader);
  if (host === undefined || !URL.canParse(origin)) return false;
  const url = new URL(origin);
  const defaultPort = DEFAULT_PORTS[url.protocol];
  if (defaultPort === undefined) return false;
  return url.hostname.toLowerCase() === host.name && (url.port || defaultPort) === (host.port ?? defaultPort);
}

/** The port of the relay's `host:port` (a bare port is taken too). */
function portOf(hostPort: string | undefined): string | undefined {
  return hostPort === undefined ? undefined : /^(?:.*:)?(\d{1,5})$/.exec(hostPort)?.[1];
}

/** Whether `Host` names the relay itself on loopback, so a page cannot reach it through a name it rebinds to 127.0.0.1. */
function isOwnLoopbackHost(hostHeader: string | undefined, ownHostPort: string | undefined): boolean {
  const host = parseHost(hostHeader);
  if (host === undefined || !LOOPBACK_HOST_NAMES.includes(host.name)) return false;
  const ownPort = portOf(ownHostPort);
  return ownPort === undefined || (host.port ?? '80') === ownPort;
}

/** Why a request must be refused as cross-site, or undefined when it may go on. */
function crossSiteRefusal(req: IncomingMessage, options: CrossSiteOptions): CrossSiteError | undefined {
  const site = req.headers['sec-fetch-site'];
  if (site === 'cross-site' || site === 'same-site') {
    return new CrossSiteError(`Admin and state-changing routes refuse requests a browser sends from another site (Sec-Fetch-Site: ${site}).`);
  }
  const { origin, host } = req.headers;
  if (origin !== undefined && !isOwnOrigin(origin, host)) {
    return new CrossSiteError('Admin and state-changing routes refuse requests from another origin; no CORS is offered.');
  }
  if (options.adminToken === undefined && !isOwnLoopbackHost(host, options.loopbackHostPort())) {
    return new CrossSiteError(
      'Without ADMIN_TOKEN, admin and state-changing routes answer only requests addressed to the relay on loopback (Host 127.0.0.1, localhost or [::1] and its port).',
    );
  }
  return undefined;
}

/**
 * Refuses what a browser could send behind the operator's back: a foreign
 * `Origin`, `Sec-Fetch-Site: cross-site | same-site`, and, without an admin
 * token, a `Host` other than the relay's loopback address (DNS rebinding).
 * Requests without those headers (curl, other services) are unaffected.
 */
export function refuseCrossSite(options: CrossSiteOptions): RequestHandler {
  return (req, _res, next) => next(crossSiteRefusal(req, options));
}

const anyLoopbackPort = () => undefined;

/**
 * Admin routes: cross-site requests refused first (see `refuseCrossSite`);
 * then, with a token, `Authorization: Bearer <token>` compared in constant
 * time (digests first, so lengths cannot leak); without one, loopback clients
 * only (the relay refuses to bind elsewhere without a token).
 */
export function requireAdmin(
  adminToken: string | undefined,
  options: { loopbackHostPort?: () => string | undefined } = {},
): RequestHandler {
  const expected = adminToken === undefined ? undefined : sha256(adminToken);
  const crossSite = { adminToken, loopbackHostPort: options.loopbackHostPort ?? anyLoopbackPort };
  return (req, _res, next) => {
    const refusal = crossSiteRefusal(req, crossSite);
    if (refusal) return next(refusal);
    if (expected === undefined) {
      if (isLoopbackRequest(req)) return next();
      return next(new ForbiddenError('Admin routes answer only loopback clients, not through a proxy, when ADMIN_TOKEN is unset.'));
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(req.get('authorization') ?? '');
    if (match && timingSafeEqual(sha256(match[1]!), expected)) return next();
    next(new UnauthorizedError('Admin routes need Authorization: Bearer <ADMIN_TOKEN>.'));
  };
}
