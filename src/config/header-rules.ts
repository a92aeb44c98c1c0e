/** Headers that describe one connection, never forwarded (RFC 9110 section 7.6.1). */
export const HOP_BY_HOP_HEADERS: readonly string[] = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'];

/** Why a route may not set this (lower-case) header, or undefined when it may. */
export function forbiddenToSet(name: string): string | undefined {
  if (HOP_BY_HOP_HEADERS.includes(name)) return 'a hop-by-hop header';
  if (name === 'host' || name === 'content-length') return 'a header the relay computes';
  if (name === 'x-request-id' || name === 'traceparent') return 'a header the relay always sends itself';
  if (name.startsWith('x-relay-')) return "one of the relay's own X-Relay-* headers";
  return undefined;
}

/** At most this many bytes in one header value the relay sets. */
export const MAX_SET_VALUE_BYTES = 8192;

/**
 * Why a value cannot go out as a header, or undefined when it can. CR, LF and NUL
 * would split or cut the request; Node refuses other control characters and
 * anything beyond Latin-1 at send time, so they are refused here, at start.
 */
export function badHeaderValue(value: string): string | undefined {
  if (/[\r\n\0]/.test(value)) return 'no CR, LF or NUL';
  // eslint-disable-next-line no-control-regex
  if (/[^\t\x20-\x7e\x80-\xff]/.test(value)) return 'no control characters other than tab, and only Latin-1 characters';
  if (value.length > MAX_SET_VALUE_BYTES) return `at most ${MAX_SET_VALUE_BYTES} bytes (8 KiB)`;
  return undefined;
}
