import type { IncomingMessage } from 'node:http';

/** One request as it arrived, byte for byte. */
export interface RecordedRequest {
  method: string;
  /** The request target as sent: path and query, not decoded or normalised. */
  path: string;
  /**
   * Lower-case names, values as sent. A repeated header's values are joined
   * with `, ` (RFC 9110 §5.3), where Node's `req.headers` would drop all but
   * the first `Authorization` or `Content-Type`.
   */
  headers: Readonly<Record<string, string>>;
  /** Names in their original case and values, in arrival order (Node's `rawHeaders`). */
  rawHeaders: readonly string[];
  body: Buffer;
  /** When the request's head arrived, in epoch milliseconds of the injected clock. */
  at: number;
}

export function recordRequest(req: IncomingMessage, body: Buffer, at: number): RecordedRequest {
  // No prototype: a header named `constructor` or `__proto__` is just a header.
  const headers: Record<string, string> = Object.create(null) as Record<string, string>;
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    const value = req.rawHeaders[i + 1]!;
    headers[name] = headers[name] !== undefined ? `${headers[name]}, ${value}` : value;
  }
  return { method: req.method ?? '', path: req.url ?? '', headers, rawHeaders: [...req.rawHeaders], body, at };
}

/** The path without its query. */
export function pathOnly(target: string): string {
  const query = target.indexOf('?');
  return query === -1 ? target : target.slice(0, query);
}

/** The media type of `content-type`, lower-case and without parameters (`charset=...`). */
export function mediaType(request: RecordedRequest): string {
  return (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

/** Form fields of an `application/x-www-form-urlencoded` body, or `null` when it is another type. */
export function formFields(request: RecordedRequest): URLSearchParams | null {
  if (mediaType(request) !== 'application/x-www-form-urlencoded') return null;
  return new URLSearchParams(request.body.toString('utf8'));
}
