/**
 * Words every layer shares: the queue, the retry policy, the stores and the HTTP
 * layer name priorities, attempts and requests with these. Storage imports them;
 * nothing here imports storage.
 */

export type Priority = 'high' | 'normal' | 'low';

/**
 * Whether an attempt's request reached the downstream: `no` (refused before a
 * byte was written: connection refused, or cut off while waiting for a socket),
 * `yes` (an answer came back), `unknown` (written, then no answer: a timeout or
 * a reset; the downstream may have processed it).
 */
export type SentState = 'no' | 'unknown' | 'yes';

/** What the client can know of a failed request's delivery. */
export type Delivery = 'not_sent' | 'unknown' | 'failed';

/** One attempt at the downstream, as the DLQ and the API show it. */
export interface AttemptRecord {
  /** ISO-8601 time the attempt started. */
  at: string;
  outcome: 'success' | 'http_error' | 'timeout' | 'connection_error' | 'aborted' | 'too_large' | 'interrupted';
  status?: number;
  durationMs: number;
  error?: string;
  /** Which downstream answered (`primary`, `fallback-1`...), when one did. */
  upstream?: string;
  /** Whether the request reached the downstream. Absent on records written before routes existed. */
  sent?: SentState;
}

/**
 * Where and how a request goes, beside its body and headers: kept with every job
 * and DLQ entry so a delivery, replay or redrive sends the same request.
 */
export interface RequestTarget {
  /** The route's name (`default` for POST /relay). */
  route: string;
  /** Upper-case HTTP method. */
  method: string;
  /**
   * The client's path below `/relay/{route}` plus its query, raw and still
   * encoded (`/v1/charges?expand=x`, or `` for the route's target itself).
   */
  path: string;
}

/** A downstream's answer as the relay passes it on, or a stored one it replays. */
export interface RelayAnswer {
  status: number;
  /** End-to-end headers of the downstream's answer (lower-case; arrays for repeated ones). */
  headers: Record<string, string | string[]>;
  body: Buffer;
  /** Downstream attempts made for this answer (0 for a replay). */
  attempts: number;
  replayed: boolean;
  /** Which upstream answered (`primary`, `fallback-1`...); absent for a replay. */
  upstream?: string;
}

/** The request target of records stored before routes existed. */
export const LEGACY_TARGET: RequestTarget = Object.freeze({ route: 'default', method: 'POST', path: '' });
