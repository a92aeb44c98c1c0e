import { createHash, randomUUID } from 'node:crypto';
import type { RequestTarget } from './domain.js';
import { BadRequestError, EditNeedsNewKeyError } from './errors.js';
import { requestFingerprint } from './idempotency/key.js';
import { REDACTED, isSecretHeader } from './secrets/redact.js';
import type { DlqEdit, DlqEntry } from './storage/types.js';

/**
 * An edited DLQ replay (the DLQ recovery plan's "retry with a modified payload"):
 * what an operator changes, and the request that goes out instead of the stored one.
 * The entry itself is never rewritten: it keeps the original and a {@link DlqEdit}.
 */

/**
 * A new body: bytes (`bodyText`, `bodyBase64`), or a `body` member as its exact
 * JSON text, whose bytes depend on the type it goes out with (see {@link editedBodyBytes}).
 */
export type BodyEdit = Buffer | { jsonText: string; text: string | undefined };

/** What an operator changes before replaying an entry; checked for syntax at the HTTP edge. */
export interface ReplayEdit {
  /** The body to send instead of the stored one. */
  body?: BodyEdit;
  /** Replaces Content-Type. */
  contentType?: string;
  /** Added or replaced headers, lower-case names (hop-by-hop and the relay's own already refused). */
  headers?: Record<string, string>;
  /**
   * A new key: the changed request is a new operation in the relay's key space.
   * null: none (or one the route makes up, as for a request sent without a key).
   * Absent (or the entry's own key): the entry's key, which a changed payload may not use.
   */
  idempotencyKey?: string | null;
}

/** The request an edit produces, as the replay sends it. */
export interface EditedRequest {
  body: Buffer | null;
  headers: Record<string, string>;
  sendKey: string | undefined;
  keyScope: string | undefined;
  fingerprint: string | undefined;
  /** What the history records (null when the edit changes nothing: a plain replay). */
  record: Omit<DlqEdit, 'at' | 'requestId' | 'firstAttempt'> | null;
}

export interface EditContext {
  entry: DlqEntry;
  /** The entry's target with its secret query parameters opened. */
  target: RequestTarget;
  /** The entry's headers with their secrets opened (less any the edit replaces). */
  headers: Record<string, string>;
  route: { name: string; keyHeader: string; secretHeaders: ReadonlySet<string>; generatesKeys: boolean };
  /** A client key in the relay's key space, scoped to the request's credential (idempotency/key.ts keyScope). */
  scopeOf: (credential: string | undefined, key: string) => string;
}

/**
 * The request to send for `edit`. A key is never bound to two payloads downstream:
 * a changed body or content type under the entry's key is refused with 422; an
 * edit of other headers may keep it (the fingerprint does not cover them).
 * @throws {BadRequestError} for a body on a GET or HEAD, or the route's key header among the headers.
 * @throws {EditNeedsNewKeyError} for a changed payload under the entry's key.
 */
export function applyEdit(context: EditContext, edit: ReplayEdit): EditedRequest {
  const { entry, target, route } = context;
  const bodyless = target.method === 'GET' || target.method === 'HEAD';
  if (edit.body !== undefined && bodyless) throw new BadRequestError(`A ${target.method} request has no body to edit.`);
  if (edit.headers?.[route.keyHeader] !== undefined) {
    throw new BadRequestError(`headers.${route.keyHeader} is this route's idempotency key header: set "idempotencyKey" instead.`);
  }
  const originalType = context.headers['content-type'];
  const contentType = edit.contentType ?? originalType;
  const body = edit.body === undefined ? entry.body : editedBodyBytes(edit.body, contentType);
  const changed: DlqEdit['changed'] = [];
  if (!body.equals(entry.body)) changed.push('body');
  if (contentType !== originalType) changed.push('contentType');
  const editedHeaders = Object.entries(edit.headers ?? {}).filter(([name, value]) => context.headers[name] !== value);
  if (editedHeaders.length > 0) changed.push('headers');
  const keyChanged = edit.idempotencyKey !== undefined && edit.idempotencyKey !== entry.idempotencyKey;
  if (keyChanged) changed.push('idempotencyKey');

  const payloadChanged = changed.includes('body') || changed.includes('contentType');
  if (payloadChanged && !keyChanged && entry.idempotencyKey !== null) {
    throw new EditNeedsNewKeyError(
      'This entry went out under an idempotency key, and a key is never sent with two payloads: give the changed body or content type a new "idempotencyKey" (or null for none).',
    );
  }

  const headers: Record<string, string> = { ...context.headers, ...Object.fromEntries(editedHeaders) };
  if (contentType !== undefined) headers['content-type'] = contentType;
  const sendBody = body.length === 0 && bodyless ? null : body;
  let sendKey = entry.idempotencyKey ?? undefined;
  let keyScope = entry.keyScope ?? undefined;
  let fingerprint = entry.fingerprint ?? undefined;
  if (keyChanged) {
    const key = edit.idempotencyKey ?? undefined;
    // null: as a request sent without a key, on which the route may make one up.
    sendKey = key ?? (route.generatesKeys ? `relay-${randomUUID()}` : undefined);
    keyScope = key === undefined ? undefined : context.scopeOf(headers.authorization ?? headers['x-api-key'], key);
    fingerprint =
      key === undefined ? undefined : requestFingerprint({ method: target.method, route: route.name, path: target.path, contentType, body: sendBody });
    if (sendKey === undefined) delete headers[route.keyHeader];
    else headers[route.keyHeader] = sendKey;
  }

  if (changed.length === 0) return { body: sendBody, headers, sendKey, keyScope, fingerprint, record: null };
  const record: NonNullable<EditedRequest['record']> = { changed };
  if (changed.includes('body')) record.body = { bytes: body.length, sha256: createHash('sha256').update(body).digest('hex') };
  if (changed.includes('contentType') && contentType !== undefined) record.contentType = contentType;
  if (editedHeaders.length > 0) {
    // Never a secret's value: its name says enough of what changed.
    record.headers = Object.fromEntries(editedHeaders.map(([name, value]) => [name, isSecretHeader(name, route.secretHeaders) ? REDACTED : value]));
  }
  if (keyChanged) record.idempotencyKey = sendKey ?? null;
  return { body: sendBody, headers, sendKey, keyScope, fingerprint, record };
}

const JSON_TYPE = /^application\/(?:[\w.+-]*\+)?json\b/i;

/**
 * A `body` member is sent as its exact JSON text (as a batch item's is), except a
 * string under a type that is not JSON, which is sent as the text itself: what
 * GET /dlq/:id shows as `body` for such an entry, so a shown body can be edited
 * and sent back as it reads. `null` is an empty body (shown so as well).
 */
export function editedBodyBytes(body: BodyEdit, contentType: string | undefined): Buffer {
  if (Buffer.isBuffer(body)) return body;
  if (body.jsonText === 'null') return Buffer.alloc(0);
  if (body.text !== undefined && (contentType === undefined || !JSON_TYPE.test(contentType))) return Buffer.from(body.text, 'utf8');
  return Buffer.from(body.jsonText, 'utf8');
}
