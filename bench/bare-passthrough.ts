import express, { type Express } from 'express';
import { Pool } from 'undici';

export interface BarePassthrough {
  app: Express;
  /** Closes the downstream pool. */
  close(): Promise<void>;
}

export interface BarePassthroughOptions {
  downstreamUrl: string;
  /** Keep-alive sockets to the downstream; the relay's DOWNSTREAM_CONNECTIONS. */
  connections: number;
  /** @default 1_048_576 (the relay's MAX_BODY_BYTES default) */
  maxBodyBytes?: number;
}

/**
 * The floor for any Express relay: POST /relay reads the body like the relay
 * does (`express.raw`), forwards it once through an undici Pool and sends back
 * status, content-type and body. No validation, retries, queue, store, logs or
 * metrics. The answer is buffered, as the relay buffers it, so that the two
 * differ only in what the relay adds.
 */
export function createBarePassthrough(options: BarePassthroughOptions): BarePassthrough {
  const target = new URL(options.downstreamUrl);
  const path = `${target.pathname}${target.search}`;
  const pool = new Pool(target.origin, { connections: options.connections, keepAliveTimeout: 30_000, pipelining: 1 });
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.post('/relay', express.raw({ type: () => true, limit: options.maxBodyBytes ?? 1_048_576 }), async (req, res) => {
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    try {
      const answer = await pool.request({
        method: 'POST',
        path,
        headers: { 'content-type': req.get('content-type') ?? 'application/json' },
        body,
      });
      const payload = Buffer.from(await answer.body.arrayBuffer());
      const contentType = answer.headers['content-type'];
      res.status(answer.statusCode);
      if (typeof contentType === 'string') res.setHeader('Content-Type', contentType);
      res.end(payload);
    } catch {
      res.status(502).end();
    }
  });
  return { app, close: () => pool.close() };
}
