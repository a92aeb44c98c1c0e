import { Pool, type Dispatcher } from 'undici';

/** What the relay forwards: the raw body bytes and the contract's headers only. */
export interface ForwardRequest {
  body: Buffer;
  /** Lower-case names; only content-type, idempotency-key, x-request-id, traceparent. */
  headers: Record<string, string>;
}

export interface DownstreamResponse {
  status: number;
  /** Lower-case names, single values (repeated headers joined with ", "). */
  headers: Record<string, string>;
  body: Buffer;
}

/** Why an attempt got no HTTP answer. A closed set, matched on `code`. */
export class AttemptTimeoutError extends Error {
  readonly code = 'ATTEMPT_TIMEOUT';
  constructor(readonly timeoutMs: number) {
    super(`attempt timed out after ${timeoutMs} ms`);
  }
}

export class ConnectionFailedError extends Error {
  readonly code = 'CONNECTION_FAILED';
  constructor(readonly causeCode: string, message: string) {
    super(message);
  }
}

/** The caller's signal fired (shutdown, client gone): not the downstream's fault. */
export class AttemptAbortedError extends Error {
  readonly code = 'ATTEMPT_ABORTED';
  constructor() {
    super('attempt aborted by the caller');
  }
}

export type AttemptError = AttemptTimeoutError | ConnectionFailedError | AttemptAbortedError;

export interface DownstreamClientOptions {
  url: string;
  /** Keep-alive sockets to the downstream. @default 64 */
  connections?: number;
  /** Build the dispatcher (tests and benchmarks inject their own). */
  dispatcherFactory?: (origin: string, connections: number) => Dispatcher;
}

const FORWARDED_RESPONSE_HEADERS = new Set(['content-type', 'retry-after']);

/**
 * One POST to the downstream per call; no retries of its own (the RetryManager
 * owns that). Each call has its own AbortController: a timeout aborts the real
 * request (the socket is destroyed, the downstream sees the abort) and its timer
 * is cleared in `finally`.
 */
export class DownstreamClient {
  private readonly dispatcher: Dispatcher;
  private readonly path: string;

  constructor(options: DownstreamClientOptions) {
    const url = new URL(options.url);
    const connections = options.connections ?? 64;
    this.path = `${url.pathname}${url.search}`;
    this.dispatcher = options.dispatcherFactory
      ? options.dispatcherFactory(url.origin, connections)
      : new Pool(url.origin, { connections, keepAliveTimeout: 30_000, pipelining: 1 });
  }

  async send(request: ForwardRequest, options: { timeoutMs: number; signal?: AbortSignal }): Promise<DownstreamResponse> {
    const controller = new AbortController();
    const { signal: parent } = options;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, options.timeoutMs);
    const onParentAbort = () => controller.abort();
    if (parent?.aborted) controller.abort();
    else parent?.addEventListener('abort', onParentAbort, { once: true });
    try {
      const res = await this.dispatcher.request({
        method: 'POST',
        path: this.path,
        headers: request.headers,
        body: request.body,
        signal: controller.signal,
      });
      // The body is read under the same timeout: a downstream that sends headers and then stalls is a timeout too.
      const body = Buffer.from(await res.body.arrayBuffer());
      return { status: res.statusCode, headers: pickHeaders(res.headers), body };
    } catch (err) {
      if (timedOut) throw new AttemptTimeoutError(options.timeoutMs);
      if (controller.signal.aborted) throw new AttemptAbortedError();
      const code = (err as { code?: unknown }).code;
      throw new ConnectionFailedError(typeof code === 'string' ? code : 'UNKNOWN', (err as Error).message);
    } finally {
      clearTimeout(timer);
      parent?.removeEventListener('abort', onParentAbort);
    }
  }

  /** Waits for in-flight requests, then closes sockets. */
  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  /** Aborts everything at once. */
  async destroy(): Promise<void> {
    await this.dispatcher.destroy();
  }
}

function pickHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of FORWARDED_RESPONSE_HEADERS) {
    const value = headers[name];
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}
