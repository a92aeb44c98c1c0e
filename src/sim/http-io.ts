import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';

/** Largest body the simulator keeps; a larger one is drained and answered 413. */
export const MAX_BODY_BYTES = 8 * 1024 * 1024;

/**
 * Reads the whole body. Calls `done(null)` when it is too large. When the client
 * goes away first, `done` is never called; the caller learns of it from 'close'.
 * A callback rather than a promise so that an abandoned read leaves nothing pending.
 */
export function readBody(req: IncomingMessage, done: (body: Buffer | null) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) tooLarge = true;
    // Keep draining so the keep-alive connection stays usable for the next request.
    if (!tooLarge) chunks.push(chunk);
  });
  req.on('end', () => done(tooLarge ? null : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
}

/** Parses JSON, or returns `undefined` when the bytes are not JSON. */
export function parseJson(body: Buffer): unknown {
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: OutgoingHttpHeaders = {},
  contentType = 'application/json',
): void {
  // 204 and 304 must not carry a body (RFC 9110 §15.3.5, §15.4.5).
  if (status === 204 || status === 304) {
    res.writeHead(status, headers);
    res.end();
    return;
  }
  const payload = stringifyOrNull(body);
  res.writeHead(status, {
    ...headers,
    'content-type': contentType,
    'content-length': Buffer.byteLength(payload),
  });
  res.end(payload);
}

/** An RFC 9457 problem body. */
export function sendProblem(
  res: ServerResponse,
  status: number,
  title: string,
  detail: string,
  extra: Record<string, unknown> = {},
  headers: OutgoingHttpHeaders = {},
): void {
  sendJson(res, status, { type: 'about:blank', title, status, detail, ...extra }, headers, 'application/problem+json');
}

/** A body too deeply nested to serialise (RangeError) must not crash the process that embeds the simulator. */
function stringifyOrNull(body: unknown): string {
  try {
    return JSON.stringify(body) ?? 'null';
  } catch {
    return JSON.stringify({ ok: true, echo: null, note: 'body too deeply nested to echo' });
  }
}
