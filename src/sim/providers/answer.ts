import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { z } from 'zod';
import { parseOrThrow } from '../validation.js';

/** An answer a test asks for: with `answerNext`, or as the echo provider's fixed answer. */
export interface CannedAnswer {
  /** @default 200 */
  status?: number;
  /** Sent as given; an array repeats the header (`set-cookie`). */
  headers?: OutgoingHttpHeaders;
  /** Raw body; a string goes as UTF-8. At most one of `body`, `json` and `bodyBytes`. */
  body?: string | Uint8Array;
  /** Sent as JSON, with `content-type: application/json` unless `headers` names one. */
  json?: unknown;
  /** A body of this many bytes (`x`), streamed, for response-size limits. */
  bodyBytes?: number;
  /**
   * Leaves out `content-length`, so the body goes chunked and its size is only learnt by reading it.
   * @default false
   */
  chunked?: boolean;
}

/** What a provider answers, ready to write. */
export interface ProviderAnswer {
  status: number;
  headers: OutgoingHttpHeaders;
  body: Buffer;
  /** When set, the body is this many filler bytes instead of `body`. */
  fillerBytes?: number;
  chunked?: boolean;
}

/** A whole number from `min` to `max`, every failure worded as `expected`. */
export function intFrom(min: number, max: number, expected: string) {
  return z.int({ error: expected }).min(min, { error: expected }).max(max, { error: expected });
}

const statusSchema = intFrom(200, 599, 'expected an HTTP status from 200 to 599');

const cannedAnswerSchema = z
  .strictObject({
    status: statusSchema.optional(),
    headers: z.record(z.string(), z.union([z.string(), z.number(), z.array(z.string())])).optional(),
    body: z.union([z.string(), z.instanceof(Uint8Array)], { error: 'expected a string or bytes' }).optional(),
    json: z.unknown().optional(),
    bodyBytes: intFrom(0, Number.MAX_SAFE_INTEGER, 'expected a whole number of bytes from 0 up').optional(),
    chunked: z.boolean({ error: 'expected true or false' }).optional(),
  })
  .refine((a) => [a.body, a.json, a.bodyBytes].filter((part) => part !== undefined).length <= 1, {
    error: 'expected at most one of body, json and bodyBytes',
  });

/**
 * Validates a canned answer and makes it writable.
 * @throws {SimValidationError} naming the bad field.
 */
export function fromCanned(input: CannedAnswer): ProviderAnswer {
  const canned = parseOrThrow(cannedAnswerSchema, input);
  const headers: OutgoingHttpHeaders = { ...canned.headers };
  let body = Buffer.alloc(0);
  if (canned.json !== undefined) {
    body = Buffer.from(JSON.stringify(canned.json));
    if (!hasHeader(headers, 'content-type')) headers['content-type'] = 'application/json';
  } else if (canned.body !== undefined) {
    body = typeof canned.body === 'string' ? Buffer.from(canned.body) : Buffer.from(canned.body);
  }
  return {
    status: canned.status ?? 200,
    headers,
    body,
    ...(canned.bodyBytes === undefined ? {} : { fillerBytes: canned.bodyBytes }),
    ...(canned.chunked === undefined ? {} : { chunked: canned.chunked }),
  };
}

export function jsonAnswer(status: number, value: unknown, headers: OutgoingHttpHeaders = {}): ProviderAnswer {
  const body = Buffer.from(JSON.stringify(value));
  return { status, headers: { 'content-type': 'application/json', ...headers }, body };
}

const FILLER_CHUNK = Buffer.alloc(64 * 1024, 'x');

export function writeAnswer(res: ServerResponse, answer: ProviderAnswer): void {
  // 204 and 304 must not carry a body (RFC 9110 §15.3.5, §15.4.5).
  const bodyless = answer.status === 204 || answer.status === 304;
  const size = answer.fillerBytes ?? answer.body.length;
  const headers = { ...answer.headers };
  // A test that sets content-length itself (a lying length) gets it as given.
  if (!bodyless && !answer.chunked && !hasHeader(headers, 'content-length')) headers['content-length'] = size;
  res.writeHead(answer.status, headers);
  if (bodyless) return void res.end();
  if (answer.fillerBytes === undefined) return void res.end(answer.body);
  streamFiller(res, answer.fillerBytes);
}

/** Writes with backpressure, so a client that stops reading at its size limit does not make us buffer the rest. */
function streamFiller(res: ServerResponse, totalBytes: number): void {
  let left = totalBytes;
  const pump = (): void => {
    while (left > 0) {
      if (res.destroyed) return;
      const size = Math.min(left, FILLER_CHUNK.length);
      left -= size;
      if (!res.write(size === FILLER_CHUNK.length ? FILLER_CHUNK : FILLER_CHUNK.subarray(0, size))) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  pump();
}

function hasHeader(headers: OutgoingHttpHeaders, name: string): boolean {
  return Object.keys(headers).some((key) => key.toLowerCase() === name);
}
