import express, { type Express } from 'express';
import { Pool } from 'undici';

export interface NaiveBaseline {
  app: Express;
  /** Aborts what is in flight and closes the downstream pool. */
  close(): Promise<void>;
}

export interface NaiveBaselineOptions {
  downstreamUrl: string;
  /** Attempts in total, the first included. @default 4 (the relay's RETRY_MAX_ATTEMPTS default) */
  maxAttempts?: number;
  /** One attempt is aborted after this long. The relay's DOWNSTREAM_TIMEOUT_MS in the same scenario. */
  attemptTimeoutMs: number;
  /**
   * Sockets to the downstream. Large, so that the pool is no real limit: the
   * point of the baseline is that nothing bounds what it sends. @default 1024
   */
  connections?: number;
}

const RETRIED_STATUSES = new Set([408, 429, 500, 502, 503, 504]);

/**
 * What many services do by hand, kept as the yardstick for the relay's storm
 * scenarios: any POST is forwarded to the downstream and on a 5xx, 408, 429,
 * connection error or timeout it is sent again at once, up to `maxAttempts`
 * in all. No backoff, jitter, retry budget, circuit breaker, concurrency limit
 * or queue bound. The last failure is answered: the downstream's own status,
 * 504 after a timeout, 502 after a connection error.
 */
export function createNaiveBaseline(options: NaiveBaselineOptions): NaiveBaseline {
  const maxAttempts = options.maxAttempts ?? 4;
  const target = new URL(options.downstreamUrl);
  const path = `${target.pathname}${target.search}`;
  const pool = new Pool(target.origin, { connections: options.connections ?? 1024, pipelining: 1, keepAliveTimeout: 30_000 });
  const inFlight = new Set<AbortController>();

  const attempt = async (body: Buffer): Promise<{ status: number; contentType: string | undefined; payload: Buffer }> => {
    const controller = new AbortController();
    inFlight.add(controller);
    const timer = setTimeout(() => controller.abort(), options.attemptTimeoutMs);
    try {
      const answer = await pool.request({ method: 'POST', path, headers: { 'content-type': 'application/json' }, body, signal: controller.signal });
      const payload = Buffer.from(await answer.body.arrayBuffer());
      const contentType = answer.headers['content-type'];
      return { status: answer.statusCode, contentType: typeof contentType === 'string' ? contentType : undefined, payload };
    } catch {
      return { status: controller.signal.aborted ? 504 : 502, contentType: undefined, payload: Buffer.alloc(0) };
    } finally {
      clearTimeout(timer);
      inFlight.delete(controller);
    }
  };

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.post('/{*path}', express.raw({ type: () => true, limit: 1_048_576 }), async (req, res) => {
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    let last = await attempt(body);
    let attempts = 1;
    while (attempts < maxAttempts && RETRIED_STATUSES.has(last.status)) {
      last = await attempt(body);
      attempts++;
    }
    res.status(last.status);
    if (last.contentType !== undefined) res.setHeader('Content-Type', last.contentType);
    res.setHeader('X-Attempts', String(attempts));
    res.end(last.payload);
  });

  return {
    app,
    close: async () => {
      for (const controller of inFlight) controller.abort();
      await pool.destroy();
    },
  };
}
