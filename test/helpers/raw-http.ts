import { request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { createServer, type AddressInfo, connect } from 'node:net';

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: unknown;
}

export interface RawRequestOptions {
  method?: string;
  /** Sent verbatim (no URL normalisation), so `/../x` and `%2e%2e` reach the server as written. */
  path: string;
  headers?: OutgoingHttpHeaders;
  /** A single buffer/string, or chunks written one by one (chunked transfer encoding unless Content-Length is set). */
  body?: Buffer | string | Array<Buffer | string>;
  /** Aborts the request (the socket is destroyed). */
  signal?: AbortSignal;
  /** Waits this long between writing the headers and the body (a slow uploader). */
  bodyDelayMs?: number;
}

/**
 * One HTTP/1.1 request on its own socket (no keep-alive pool), with header
 * values passed to node:http as they are: latin1 header values, raw paths and
 * hop-by-hop headers all reach the server, which supertest and fetch would refuse or rewrite.
 */
export function rawRequest(baseUrl: string, options: RawRequestOptions): Promise<RawResponse> {
  const url = new URL(baseUrl);
  return new Promise<RawResponse>((resolve, reject) => {
    const req = httpRequest({
      host: url.hostname,
      port: url.port,
      method: options.method ?? 'GET',
      path: options.path,
      headers: options.headers ?? {},
      agent: false,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        const text = body.toString('utf8');
        let json: unknown;
        try {
          json = text === '' ? undefined : (JSON.parse(text) as unknown);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text, json });
      });
    });
    const writeBody = () => {
      const { body } = options;
      if (body === undefined) return req.end();
      if (Array.isArray(body)) {
        for (const chunk of body) req.write(chunk);
        return req.end();
      }
      req.end(body);
    };
    if (options.bodyDelayMs) {
      req.flushHeaders();
      setTimeout(writeBody, options.bodyDelayMs);
    } else writeBody();
  });
}

/**
 * Writes `payload` on a bare TCP socket and returns whatever comes back until
 * the server closes the connection (or `timeoutMs` passes). For inputs no HTTP
 * client would send.
 */
export function rawSocketExchange(baseUrl: string, payload: string | Buffer, timeoutMs = 2000): Promise<string> {
  const url = new URL(baseUrl);
  return new Promise<string>((resolve) => {
    const socket = connect(Number(url.port), url.hostname);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    socket.write(payload);
  });
}

/** A port nothing listens on: bound, read, then closed again. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
