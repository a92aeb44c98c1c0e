import type { RequestTarget } from '../domain.js';
import { deliveryOf } from '../resilience/classify.js';
import { redactHeaders, redactQuery } from '../secrets/redact.js';
import type { DlqEdit, DlqEntry, DlqSummary, Job } from '../storage/types.js';

/**
 * The API views of stored requests (GET /dlq, /dlq/:id, /jobs/:id), as JSON
 * text: secrets (sealed or dropped header values, secret query parameters) show
 * as "[redacted]", and a body is shown as the text it was (JSON spliced in as
 * JSON, never parsed and re-serialised, so a deeply nested body cannot overflow
 * the stack) or, for other content types, as base64.
 */

const TEXTUAL = /^(?:text\/|application\/(?:json|xml|x-www-form-urlencoded|javascript|graphql)\b|application\/[\w.+-]*\+(?:json|xml)\b)/i;
const JSON_TYPE = /^application\/(?:[\w.+-]*\+)?json\b/i;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function targetFields(target: RequestTarget): { route: string; method: string; path: string } {
  return { route: target.route, method: target.method, path: redactQuery(target.path) };
}

/** One DLQ entry without its body (GET /dlq). */
export function presentSummary(entry: DlqSummary): string {
  const { id, createdAt, updatedAt, idempotencyKey, status, lastError, reason, cause, jobId, redrives, replays, attempts, bodyBytes } = entry;
  return JSON.stringify({
    id,
    createdAt,
    updatedAt,
    ...targetFields(entry.request),
    idempotencyKey,
    contentType: entry.headers['content-type'] ?? null,
    status,
    lastError,
    delivery: deliveryOf(attempts),
    reason,
    cause,
    jobId,
    redrives,
    replays,
    headers: redactHeaders(entry.headers),
    attempts,
    bodyBytes,
  });
}

/** One DLQ entry with its body, the original request's, and its history of edited replays (GET /dlq/:id). */
export function presentEntry(entry: DlqEntry): string {
  const summary = presentSummary({ ...entry, bodyBytes: entry.body.length });
  const edits = `[${(entry.edits ?? []).map(presentEdit).join(',')}]`;
  return `${summary.slice(0, -1)},"edits":${edits},${bodyMembers(entry.body, entry.headers['content-type'])}}`;
}

/** An edited replay's record; its headers were stored without secret values, and are redacted again in case. */
export function presentEdit(edit: DlqEdit): string {
  return JSON.stringify(edit.headers === undefined ? edit : { ...edit, headers: redactHeaders(edit.headers) });
}

/** The API view of a job; the downstream's answer body is shown like a request body. */
export function presentJob(job: Job): string {
  const meta = JSON.stringify({
    id: job.id,
    state: job.state,
    priority: job.priority,
    ...targetFields(job.request),
    idempotencyKey: job.idempotencyKey,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
    nextAttemptAt: job.state === 'queued' ? new Date(job.availableAt).toISOString() : null,
    attempts: job.attempts,
    lastError: job.lastError,
    dlqId: job.dlqId,
    redrives: job.redrives,
  });
  const response = job.response
    ? `{"status":${job.response.status},"contentType":${JSON.stringify(job.response.headers['content-type'] ?? null)},${bodyMembers(job.response.body, job.response.headers['content-type'])}}`
    : 'null';
  return `${meta.slice(0, -1)},"response":${response}}`;
}

/** `"body": <text or JSON>` for a textual content type that is valid UTF-8, else `"bodyBase64": "..."`. */
export function bodyMembers(body: Buffer, contentType: string | undefined): string {
  if (body.length === 0) return '"body":null';
  if (contentType === undefined || TEXTUAL.test(contentType)) {
    let text: string | undefined;
    try {
      text = strictUtf8.decode(body);
    } catch {
      text = undefined;
    }
    if (text !== undefined) {
      if (contentType === undefined || JSON_TYPE.test(contentType)) {
        try {
          JSON.parse(text);
          return `"body":${text}`;
        } catch {
          // Not JSON after all: shown as a string.
        }
      }
      return `"body":${JSON.stringify(text)}`;
    }
  }
  return `"bodyBase64":${JSON.stringify(body.toString('base64'))}`;
}
