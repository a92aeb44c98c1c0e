import { findNodeAtLocation, parseTree } from 'jsonc-parser';
import { z } from 'zod';
import type { ReplayEdit } from '../dlq-edit.js';
import { HOP_BY_HOP } from '../downstream/client.js';
import { BadRequestError, PayloadTooLargeError } from '../errors.js';
import { parseIdempotencyKey } from '../idempotency/key.js';

/**
 * The body of POST /dlq/:id/replay: `{ force? }`, and for an edited replay
 * `{ body | bodyText | bodyBase64, contentType?, headers?, idempotencyKey? }`,
 * the body members named and read as a batch item's are (jobs-router.ts).
 */

const headerName = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Printable ASCII and tab: no CR, LF or NUL to split a header, nothing undici would refuse at send time.
const headerValue = /^[\t\x20-\x7e]*$/;
const mediaType = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+\/[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:\s*;[\t\x20-\x7e]*)?$/;
/** Most headers one edit may add or replace. */
const MAX_EDITED_HEADERS = 64;

/** Headers the relay sets or consumes itself (forwarding.ts), each with what to use instead. */
const RELAY_OWN: Record<string, string> = {
  host: 'it is the downstream’s',
  'content-length': 'the relay frames the body',
  expect: 'the relay frames the body',
  'content-type': 'set "contentType" instead',
  'idempotency-key': 'set "idempotencyKey" instead',
  'x-request-id': 'the relay sets it',
  traceparent: 'the relay sets it',
};

const replaySchema = z
  .object({
    force: z.boolean().optional(),
    body: z.unknown().optional(),
    bodyText: z.string().optional(),
    bodyBase64: z.base64().optional(),
    contentType: z.string().max(256).regex(mediaType, 'a media type such as "application/json"').optional(),
    headers: z
      .record(z.string().max(256).regex(headerName, 'a header name'), z.string().max(8192).regex(headerValue, 'printable ASCII'))
      .refine((headers) => Object.keys(headers).length <= MAX_EDITED_HEADERS, `at most ${MAX_EDITED_HEADERS} headers`)
      .optional(),
    idempotencyKey: z.string().nullable().optional(),
  })
  .strict()
  .refine((value) => [value.body, value.bodyText, value.bodyBase64].filter((b) => b !== undefined).length <= 1, {
    message: 'at most one of body, bodyText and bodyBase64',
  });

const EXPECTED =
  'Expected {"force"?: boolean, "body"? (JSON) | "bodyText"? (string) | "bodyBase64"?, "contentType"?, "headers"?: {name: value}, "idempotencyKey"?: string | null}';

/** The most JSON text a replay body may take: a body of `maxBodyBytes` as base64 or escaped text, and the rest. */
export const replayBodyLimit = (maxBodyBytes: number): number => 2 * maxBodyBytes + 64 * 1024;

/**
 * Reads the replay options from the request's JSON text (empty: none).
 * `edit` is undefined when the body asks for no change at all (a plain replay).
 * @throws {BadRequestError} naming the member at fault; {@link PayloadTooLargeError} past `maxBodyBytes`.
 */
export function parseReplayBody(text: string, maxBodyBytes: number): { force: boolean; edit: ReplayEdit | undefined } {
  if (text.trim() === '') return { force: false, edit: undefined };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new BadRequestError(`The replay body is not valid JSON (or is nested too deeply). ${EXPECTED}.`);
  }
  const parsed = replaySchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new BadRequestError(`Invalid replay body: ${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}. ${EXPECTED}.`);
  }
  const { force, body, bodyText, bodyBase64, contentType, headers, idempotencyKey } = parsed.data;
  const edit: ReplayEdit = {};
  if (bodyBase64 !== undefined) edit.body = Buffer.from(bodyBase64, 'base64');
  else if (bodyText !== undefined) edit.body = Buffer.from(bodyText, 'utf8');
  else if (body !== undefined) {
    // The member's exact text, never re-serialised (as a batch item's body): 1e400 and big integers arrive as written.
    const node = bodyNode(text);
    edit.body = { jsonText: text.slice(node.offset, node.offset + node.length), text: typeof body === 'string' ? body : undefined };
  }
  const bytes = edit.body === undefined ? 0 : Buffer.isBuffer(edit.body) ? edit.body.length : Buffer.byteLength(edit.body.jsonText);
  if (bytes > maxBodyBytes) throw new PayloadTooLargeError(`The edited body exceeds MAX_BODY_BYTES (${maxBodyBytes} bytes).`);
  if (contentType !== undefined) edit.contentType = contentType;
  if (headers !== undefined) edit.headers = editedHeaders(headers);
  if (idempotencyKey !== undefined) edit.idempotencyKey = idempotencyKey === null ? null : parseIdempotencyKey(idempotencyKey);
  return { force: force ?? false, edit: Object.keys(edit).length === 0 ? undefined : edit };
}

/** Lower-case names; the forwarding rules refuse what they would strip (hop-by-hop, framing, the relay's own). */
function editedHeaders(headers: Record<string, string>): Record<string, string> {
  const out: Array<[string, string]> = [];
  const seen = new Set<string>();
  for (const [rawName, value] of Object.entries(headers)) {
    const name = rawName.toLowerCase();
    if (HOP_BY_HOP.has(name)) throw new BadRequestError(`headers.${name} is a hop-by-hop header; the relay never forwards one.`);
    const own = RELAY_OWN[name];
    if (own !== undefined) throw new BadRequestError(`headers.${name} cannot be edited: ${own}.`);
    if (name.startsWith('x-relay-')) throw new BadRequestError(`headers.${name} is a relay control, never forwarded.`);
    if (seen.has(name)) throw new BadRequestError(`headers.${name} is given twice (names are case-insensitive).`);
    seen.add(name);
    out.push([name, value]);
  }
  // fromEntries, not assignment: a header named `__proto__` must stay a plain own property.
  return Object.fromEntries(out);
}

function bodyNode(text: string): { offset: number; length: number } {
  try {
    const node = findNodeAtLocation(parseTree(text)!, ['body']);
    if (node) return node;
  } catch {
    // Nested deeper than the stack allows.
  }
  throw new BadRequestError('The replay body could not be read (nested too deeply?).');
}
