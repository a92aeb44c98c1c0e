import type { DlqCause, DlqEdit, DlqEntry, DlqReason, DlqSummary, JobDlqEntry, Job, JobState, NewDlqEntry, Priority, StoredResponse } from '../types.js';
import { decodeRequestTarget, encodeRequestTarget } from '../request-target.js';
import type { ScriptArg } from './scripts.js';

/** A Redis hash as the `…Buffer` commands return it: field name -> raw bytes. */
export type Hash = ReadonlyMap<string, Buffer>;

/**
 * An HGETALL reply as a map; empty when the key is gone. A script returns it flat
 * (field, value, field, value...); ioredis's own `hgetallBuffer` as an object.
 */
export function toHash(reply: unknown): Hash {
  const hash = new Map<string, Buffer>();
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) hash.set(asText(reply[i]), asBuffer(reply[i + 1]));
  } else if (typeof reply === 'object' && reply !== null) {
    for (const [field, value] of Object.entries(reply)) hash.set(field, asBuffer(value));
  } else {
    throw new TypeError(`Expected a Redis hash reply, got ${reply === null ? 'nil' : typeof reply}`);
  }
  return hash;
}

export function asBuffer(value: unknown): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (typeof value === 'string' || typeof value === 'number') return Buffer.from(String(value), 'utf8');
  throw new TypeError(`Expected a Redis string reply, got ${value === null ? 'nil' : typeof value}`);
}

export const asText = (value: unknown): string => asBuffer(value).toString('utf8');

/** Field/value pairs for HSET; null and undefined fields are left out (absent means null). */
export function fieldPairs(fields: Record<string, ScriptArg | null | undefined>): ScriptArg[] {
  const pairs: ScriptArg[] = [];
  for (const [field, value] of Object.entries(fields)) {
    if (value !== null && value !== undefined) pairs.push(field, value);
  }
  return pairs;
}

export const toIso = (ms: number): string => new Date(ms).toISOString();

function required(hash: Hash, field: string): Buffer {
  const value = hash.get(field);
  if (value === undefined) throw new Error(`Redis record is missing field \`${field}\``);
  return value;
}

const text = (hash: Hash, field: string): string => required(hash, field).toString('utf8');
const optionalText = (hash: Hash, field: string): string | null => hash.get(field)?.toString('utf8') ?? null;
const integer = (hash: Hash, field: string, fallback?: number): number => {
  const value = hash.get(field);
  if (value === undefined && fallback !== undefined) return fallback;
  return Number(text(hash, field));
};
// A copy: the reply buffer may be a view into a larger socket chunk we should not keep alive.
const bytes = (hash: Hash, field: string): Buffer => Buffer.from(required(hash, field));
const json = <T>(hash: Hash, field: string): T => JSON.parse(text(hash, field)) as T;

/**
 * The DLQ hash fields of a new entry. `seq` is added by the script; `jobId` and
 * `redrives` only when given; `request` and `scope` unless `fromJob` (job-bury
 * copies those from the job). A null key scope is stored as '' because an absent
 * field means an entry from before scopes.
 */
export function dlqFields(
  id: string,
  entry: JobDlqEntry & Partial<Pick<NewDlqEntry, 'jobId' | 'redrives' | 'request' | 'keyScope'>>,
  { fromJob }: { fromJob: boolean },
): ScriptArg[] {
  const at = toIso(entry.now);
  return fieldPairs({
    id,
    createdAt: at,
    updatedAt: at,
    updatedMs: entry.now,
    request: fromJob ? undefined : encodeRequestTarget(entry.request),
    scope: fromJob ? undefined : (entry.keyScope ?? ''),
    key: entry.idempotencyKey,
    fp: entry.fingerprint,
    body: entry.body,
    headers: JSON.stringify(entry.headers),
    attempts: JSON.stringify(entry.attempts),
    lastError: entry.lastError,
    status: entry.status,
    replays: 0,
    // The same defaults as the SQLite migration: callers written before these fields existed still store an entry.
    reason: entry.reason ?? 'transient',
    cause: entry.cause ?? 'attempts_exhausted',
    jobId: entry.jobId,
    redrives: entry.redrives,
  });
}

export function toDlqEntry(hash: Hash): DlqEntry {
  return { ...withoutBody(hash), body: bytes(hash, 'body') };
}

/** A listing's entry: dlq-list sends the fields but the body, and `bodyBytes` (HSTRLEN). */
export function toDlqSummary(hash: Hash): DlqSummary {
  return { ...withoutBody(hash), bodyBytes: integer(hash, 'bodyBytes') };
}

function withoutBody(hash: Hash): Omit<DlqEntry, 'body'> {
  return {
    id: text(hash, 'id'),
    createdAt: text(hash, 'createdAt'),
    updatedAt: text(hash, 'updatedAt'),
    request: decodeRequestTarget(optionalText(hash, 'request')),
    keyScope: entryScope(hash),
    idempotencyKey: optionalText(hash, 'key'),
    fingerprint: optionalText(hash, 'fp'),
    headers: json(hash, 'headers'),
    attempts: json(hash, 'attempts'),
    lastError: text(hash, 'lastError'),
    status: integer(hash, 'status'),
    replays: integer(hash, 'replays', 0),
    reason: text(hash, 'reason') as DlqReason,
    cause: text(hash, 'cause') as DlqCause,
    jobId: optionalText(hash, 'jobId'),
    redrives: integer(hash, 'redrives', 0),
    // Absent until the first edit (and on entries from before edits existed).
    edits: hash.has('edits') ? json<DlqEdit[]>(hash, 'edits') : [],
  };
}

/** '' is an entry without a key; no field at all, an entry from before scopes, whose key was its scope. */
function entryScope(hash: Hash): string | null {
  const scope = optionalText(hash, 'scope');
  if (scope === null) return optionalText(hash, 'key');
  return scope === '' ? null : scope;
}

export function toJob(hash: Hash): Job {
  const status = hash.get('respStatus');
  const response: StoredResponse | null =
    status === undefined
      ? null
      : { status: Number(status.toString('utf8')), headers: json(hash, 'respHeaders'), body: bytes(hash, 'respBody') };
  return {
    id: text(hash, 'id'),
    state: text(hash, 'state') as JobState,
    priority: text(hash, 'priority') as Priority,
    request: decodeRequestTarget(optionalText(hash, 'request')),
    // A job from before scopes held its idempotency key as its scope.
    keyScope: optionalText(hash, 'scope') ?? text(hash, 'key'),
    idempotencyKey: text(hash, 'key'),
    fingerprint: text(hash, 'fp'),
    body: bytes(hash, 'body'),
    headers: json(hash, 'headers'),
    attempts: json(hash, 'attempts'),
    createdAt: text(hash, 'createdAt'),
    updatedAt: text(hash, 'updatedAt'),
    availableAt: integer(hash, 'availableAt'),
    response,
    lastError: optionalText(hash, 'lastError'),
    dlqId: optionalText(hash, 'dlqId'),
    redrives: integer(hash, 'redrives', 0),
  };
}

/** The lease token a leased job's hash carries (the store hands it out beside the job). */
export const leaseToken = (hash: Hash): string => text(hash, 'token');

/** A stored answer a script returns as `status, headers JSON, body` from `reply[at]` on. */
export function toResponse(reply: readonly unknown[], at: number): StoredResponse {
  return {
    status: Number(asText(reply[at])),
    headers: JSON.parse(asText(reply[at + 1])) as Record<string, string>,
    // A copy: the reply buffer may be a view into a larger socket chunk.
    body: Buffer.from(asBuffer(reply[at + 2])),
  };
}
