/**
 * The storage interface every backend implements (SQLite now, Redis next).
 * The relay never talks to a datastore directly: a backend that passes
 * `test/contract/store-contract.ts` is done.
 *
 * Every method is async even where SQLite is synchronous, so that a networked
 * backend fits the same shape. Times are epoch milliseconds passed in by the
 * caller (`now`), so that tests can control the clock.
 */

/** A downstream answer worth keeping: what a replay sends back. */
export interface StoredResponse {
  status: number;
  /** Only the headers a replay must repeat (content-type); lower-case names. */
  headers: Record<string, string>;
  body: Buffer;
}

export type ReserveResult =
  /** The key was free (or its holder's lease expired): the caller owns it until `complete` or `release`. */
  | { kind: 'reserved'; token: string }
  /** Another request with the same key and fingerprint holds a live lease. */
  | { kind: 'in_flight' }
  /** The key already has a definitive answer for this fingerprint. */
  | { kind: 'completed'; response: StoredResponse }
  /** The key exists (in flight or completed) with a different fingerprint. */
  | { kind: 'mismatch' };

export interface ReserveOptions {
  now: number;
  /** How long the reservation holds before another request may take the key over. */
  leaseMs: number;
  /** How long the whole record (and later its answer) lives. */
  ttlMs: number;
}

export interface IdempotencyStore {
  /** Atomically: take the key, or report why not. Expired records count as absent. */
  reserve(key: string, fingerprint: string, options: ReserveOptions): Promise<ReserveResult>;
  /**
   * Store the definitive answer under the key (only if `token` still owns it;
   * returns false otherwise, e.g. the lease expired and someone else took over).
   */
  complete(key: string, token: string, response: StoredResponse, options: { now: number; ttlMs: number }): Promise<boolean>;
  /** Give the key back without an answer (the relay's own failure): the same key may be sent again. No-op unless `token` owns it. */
  release(key: string, token: string): Promise<void>;
  /** Remove expired records; returns how many went. Backends with native expiry may return 0. */
  purgeExpired(now: number): Promise<number>;
}

/** One attempt at the downstream, as the DLQ and the API show it. */
export interface AttemptRecord {
  /** ISO-8601 time the attempt started. */
  at: string;
  outcome: 'success' | 'http_error' | 'timeout' | 'connection_error' | 'aborted';
  status?: number;
  durationMs: number;
  error?: string;
}

export interface NewDlqEntry {
  idempotencyKey: string | null;
  /** The request fingerprint under that key (so a replay can take the key as the same request). null without a key. */
  fingerprint: string | null;
  /** The request body exactly as the client sent it. */
  body: Buffer;
  /** The headers that were forwarded to the downstream (lower-case names). */
  headers: Record<string, string>;
  attempts: AttemptRecord[];
  lastError: string;
  /** The status the relay answered with (502 or 504). */
  status: number;
  now: number;
}

export interface DlqEntry {
  id: string;
  /** ISO-8601 */
  createdAt: string;
  /** ISO-8601, changes when attempts are appended */
  updatedAt: string;
  idempotencyKey: string | null;
  fingerprint: string | null;
  body: Buffer;
  headers: Record<string, string>;
  attempts: AttemptRecord[];
  lastError: string;
  status: number;
  /** How many times the entry was replayed without success. */
  replays: number;
}

export interface DlqPage {
  items: DlqEntry[];
  /** Opaque; pass back as `cursor` for the next page. null when this is the last page. */
  nextCursor: string | null;
}

export interface DlqStore {
  add(entry: NewDlqEntry): Promise<DlqEntry>;
  get(id: string): Promise<DlqEntry | null>;
  /** Oldest first. An unknown or malformed cursor throws `InvalidCursorError`. */
  list(options: { limit: number; cursor?: string }): Promise<DlqPage>;
  /** A failed replay: append its attempts, replace lastError/status, bump `replays`. null if absent. */
  recordFailedReplay(id: string, attempts: AttemptRecord[], lastError: string, status: number, now: number): Promise<DlqEntry | null>;
  /** true if it existed. */
  remove(id: string): Promise<boolean>;
  size(): Promise<number>;
}

export interface RelayStore {
  readonly idempotency: IdempotencyStore;
  readonly dlq: DlqStore;
  /** Throws if the store cannot answer (readiness). */
  ping(): Promise<void>;
  /** Idempotent. */
  close(): Promise<void>;
}

export class InvalidCursorError extends Error {
  readonly code = 'INVALID_CURSOR';
  constructor(cursor: string) {
    super(`Invalid cursor: ${JSON.stringify(cursor.slice(0, 64))}`);
  }
}
