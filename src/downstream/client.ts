import { Pool, type Dispatcher } from 'undici';
import type { SentState } from '../domain.js';

/** One request to a downstream, exactly as it leaves the relay. */
export interface ForwardRequest {
  /** Upper-case HTTP method. */
  method: string;
  /** Appended to the client's base path: the client's rest and query, raw (`/v1/charges?x=1`, or ``). */
  path: string;
  /** Lower-case names; exactly the headers to send (hop-by-hop ones already removed). */
  headers: Record<string, string>;
  /** null for a request without a body (GET, HEAD...). */
  body: Buffer | null;
}

export interface DownstreamResponse {
  status: number;
  /** Lower-case names; repeated headers (Set-Cookie) as arrays, hop-by-hop ones removed. */
  headers: Record<string, string | string[]>;
  body: Buffer;
}

/** Why an attempt got no HTTP answer. A closed set, matched on `code`; `sent` says whether the request left. */
export class AttemptTimeoutError extends Error {
  readonly code = 'ATTEMPT_TIMEOUT';
  constructor(
    readonly timeoutMs: number,
    readonly sent: SentState,
  ) {
    super(sent === 'no' ? `no connection to the downstream within ${timeoutMs} ms` : `attempt timed out after ${timeoutMs} ms`);
  }
}

export class ConnectionFailedError extends Error {
  readonly code = 'CONNECTION_FAILED';
  constructor(
    readonly causeCode: string,
    message: string,
    readonly sent: SentState,
  ) {
    super(message);
  }
}

/** The caller's signal fired (shutdown, client gone): not the downstream's fault. */
export class AttemptAbortedError extends Error {
  readonly code = 'ATTEMPT_ABORTED';
  constructor(readonly sent: SentState = 'no') {
    super('attempt aborted by the caller');
  }
}

/** The downstream's answer grew past MAX_RESPONSE_BYTES: the transfer was cut off. */
export class ResponseTooLargeError extends Error {
  readonly code = 'RESPONSE_TOO_LARGE';
  readonly sent = 'yes' as const;
  constructor(
    readonly limitBytes: number,
    readonly status: number,
  ) {
    super(`the downstream's answer (HTTP ${status}) exceeded ${limitBytes} bytes`);
  }
}

export type AttemptError = AttemptTimeoutError | ConnectionFailedError | AttemptAbortedError | ResponseTooLargeError;

export interface DownstreamClientOptions {
  /** The base URL: origin, path prefix, and (for DOWNSTREAM_URL only) a query of its own. */
  url: string;
  /** Keep-alive sockets to the downstream. @default 64 */
  connections?: number;
  /** Answers larger than this are cut off (ResponseTooLargeError). @default 10 MiB */
  maxResponseBytes?: number;
  /** Build the dispatcher (tests and benchmarks inject their own). */
  dispatcherFactory?: (origin: string, connections: number) => Dispatcher;
}

/** RFC 9110 §7.6.1: never forwarded in either direction. */
export const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** Errors undici raises before a byte of the request was written. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_CLOSED', 'UND_ERR_DESTROYED']);

const DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024;

/**
 * One request to one downstream per call; no retries of its own (the retry
 * policy owns that). Each call has its own timer: a timeout aborts the real
 * request (the socket is destroyed, the downstream sees the abort) and is
 * cleared in `finally`. It knows whether the request left: undici calls
 * `onRequestStart` just before writing on a connected socket, so a call cut off
 * before then was not sent, and one cut off after it may have been processed.
 */
export class DownstreamClient {
  private readonly dispatcher: Dispatcher;
  private readonly basePath: string;
  private readonly baseQuery: string;
  private readonly maxResponseBytes: number;

  constructor(options: DownstreamClientOptions) {
    const url = new URL(options.url);
    const connections = options.connections ?? 64;
    this.basePath = url.pathname;
    this.baseQuery = url.search.slice(1);
    this.maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    this.dispatcher = options.dispatcherFactory
      ? options.dispatcherFactory(url.origin, connections)
      : new Pool(url.origin, { connections, keepAliveTimeout: 30_000, pipelining: 1 });
  }

  /** The request path sent for `rest` (the client's path and query below the route). */
  pathFor(rest: string): string {
    return joinPath(this.basePath, this.baseQuery, rest);
  }

  send(request: ForwardRequest, options: { timeoutMs: number; signal?: AbortSignal }): Promise<DownstreamResponse> {
    return new Promise<DownstreamResponse>((resolve, reject) => {
      const { signal: parent } = options;
      let controller: Dispatcher.DispatchController | undefined;
      let sent: SentState = 'no';
      let settled = false;
      let status = 0;
      let headers: Record<string, string | string[]> = {};
      const chunks: Buffer[] = [];
      let received = 0;
      const finish = (error: Error | null, response?: DownstreamResponse) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        parent?.removeEventListener('abort', onParentAbort);
        if (error) reject(error);
        else resolve(response!);
      };
      // An abort before the request reached a socket is remembered; onRequestStart then stops it unwritten.
      let pending: Error | undefined;
      const abort = (error: Error) => {
        finish(error);
        if (controller) controller.abort(error);
        else pending = error;
      };
      const timer = setTimeout(() => abort(new AttemptTimeoutError(options.timeoutMs, sent)), options.timeoutMs);
      const onParentAbort = () => abort(new AttemptAbortedError(sent));
      if (parent?.aborted) {
        onParentAbort();
        return;
      }
      parent?.addEventListener('abort', onParentAbort, { once: true });

      const handler: Dispatcher.DispatchHandler = {
        onRequestStart: (ctl) => {
          controller = ctl;
          if (pending) return ctl.abort(pending);
          sent = 'unknown';
        },
        onResponseStart: (ctl, statusCode, responseHeaders) => {
          // 1xx interim answers are not the answer.
          if (statusCode < 200) return;
          sent = 'yes';
          status = statusCode;
          headers = endToEnd(responseHeaders);
          const length = Number(responseHeaders['content-length']);
          if (request.method !== 'HEAD' && length > this.maxResponseBytes) abort(new ResponseTooLargeError(this.maxResponseBytes, status));
          void ctl;
        },
        onResponseData: (_ctl, chunk) => {
          received += chunk.length;
          if (received > this.maxResponseBytes) return abort(new ResponseTooLargeError(this.maxResponseBytes, status));
          chunks.push(chunk);
        },
        onResponseEnd: () => finish(null, { status, headers, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received) }),
        onResponseError: (_ctl, error) => {
          const code = (error as { code?: unknown }).code;
          const causeCode = typeof code === 'string' ? code : 'UNKNOWN';
          const wasSent: SentState = NOT_SENT_CODES.has(causeCode) ? 'no' : sent === 'yes' ? 'unknown' : sent;
          finish(new ConnectionFailedError(causeCode, error.message, wasSent));
        },
      };
      try {
        this.dispatcher.dispatch(
          {
            method: request.method,
            path: this.pathFor(request.path),
            headers: request.headers,
            body: request.body,
          },
          handler,
        );
      } catch (error) {
        finish(new ConnectionFailedError('DISPATCH_FAILED', (error as Error).message, 'no'));
      }
    });
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

/**
 * The downstream path from strings, never URL resolution: the target's path
 * prefix always stays in front (`/v1` + `/charges` = `/v1/charges`, one `/`
 * between them), `` keeps the target exactly, and the target's own query (only
 * DOWNSTREAM_URL may have one) comes first with the client's after `&`.
 */
export function joinPath(basePath: string, baseQuery: string, rest: string): string {
  const q = rest.indexOf('?');
  const restPath = q === -1 ? rest : rest.slice(0, q);
  const restQuery = q === -1 ? '' : rest.slice(q + 1);
  let path = basePath;
  if (restPath !== '' && restPath !== '/') path = `${basePath.endsWith('/') ? basePath.slice(0, -1) : basePath}/${restPath.replace(/^\//, '')}`;
  const query = [baseQuery, restQuery].filter((part) => part !== '').join('&');
  return query === '' ? path : `${path}?${query}`;
}

/** The answer's headers less hop-by-hop ones (and those `Connection` names). */
function endToEnd(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const connection = headers.connection;
  const named = connection === undefined ? [] : (Array.isArray(connection) ? connection.join(',') : connection).split(',').map((n) => n.trim().toLowerCase());
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.includes(name)) continue;
    out[name] = value;
  }
  return out;
}
