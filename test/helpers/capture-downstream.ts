import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface CapturedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** Header names exactly as they came over the wire (rawHeaders), lower-cased. */
  headerNames: string[];
  body: Buffer;
}

export interface CaptureDownstream {
  /** Base URL with a trailing slash, ready for DOWNSTREAM_URL. */
  url: string;
  requests: CapturedRequest[];
  close(): Promise<void>;
}

/**
 * A downstream that records every request byte for byte and answers 200
 * `{"ok":true}`. The simulator echoes the parsed JSON; this one keeps the raw
 * bytes, so a test can check the relay forwards the body unchanged.
 */
export async function startCaptureDownstream(): Promise<CaptureDownstream> {
  const requests: CapturedRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        headerNames: req.rawHeaders.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase()),
        body: Buffer.concat(chunks),
      });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
