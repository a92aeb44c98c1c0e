import { Router, raw, type Request, type Response } from 'express';
import type { Clock } from '../clock.js';
import {
  BadRequestError,
  ClientClosedError,
  DeadlineExceededError,
  InvalidJsonError,
  UnsupportedMediaTypeError,
  UpstreamFailedError,
  UpstreamTimeoutError,
} from '../errors.js';
import { parseIdempotencyKey, requestFingerprint } from '../idempotency/key.js';
import type { WaitSignal } from '../queue/worker-pool.js';
import type { RelayEvents, RequestOutcome } from '../relay-events.js';
import type { JobService } from '../jobs/job-service.js';
import type { RelayAnswer, RelayService } from '../relay-service.js';
import type { Priority } from '../storage/types.js';
import { methodNotAllowed } from './routing.js';

const JSON_TYPES = ['application/json', 'application/*+json'];
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

interface RelayLocals {
  outcome: RequestOutcome;
  attempts: number;
  admitted: boolean;
}

/** POST /relay: validate at the edge, then hand the raw bytes to the pipeline. */
export function relayRouter(deps: { service: RelayService; jobs: JobService; events: RelayEvents; clock: Clock; maxBodyBytes: number }): Router {
  const router = Router();
  const readBody = raw({ type: () => true, limit: deps.maxBodyBytes });

  router
    .route('/relay')
    .post(
      (req, res, next) => {
        observe(res, deps);
        if (!isJsonRequest(req)) return next(new UnsupportedMediaTypeError('POST /relay takes Content-Type: application/json.'));
        // Before reading the body, so a malformed key or priority costs nothing.
        parseIdempotencyKey(req.headers['idempotency-key']);
        parsePriority(req.headers['x-relay-priority']);
        next();
      },
      readBody,
      async (req: Request, res: Response) => {
        const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
        assertJson(body);
        const idempotencyKey = parseIdempotencyKey(req.headers['idempotency-key']);
        const locals = res.locals as Partial<RelayLocals>;
        const fingerprint = idempotencyKey === undefined ? undefined : requestFingerprint(body, req.get('authorization'));
        const priority = parsePriority(req.headers['x-relay-priority']);
        if (prefersAsync(req.headers.prefer)) {
          const { job, created } = await deps.jobs.accept({ body, forwardHeaders: forwardHeaders(req, res), idempotencyKey, fingerprint, priority });
          // Accepted work counts as admitted: its deliveries are attempts made for it (amplification).
          Object.assign(locals, { outcome: created ? 'accepted' : 'replayed', admitted: created });
          res
            .status(202)
            .location(`/jobs/${job.id}`)
            .set('Preference-Applied', 'respond-async')
            .json({ jobId: job.id, state: job.state, location: `/jobs/${job.id}` });
          return;
        }
        let answer: RelayAnswer;
        try {
          answer = await deps.service.handle({
            body,
            forwardHeaders: forwardHeaders(req, res),
            idempotencyKey,
            fingerprint,
            signal: new ClientDisconnect(res),
            receivedAt: res.locals.receivedAt as number,
            priority,
            onAdmitted: () => {
              locals.admitted = true;
            },
          });
        } catch (error) {
          if (error instanceof UpstreamFailedError || error instanceof UpstreamTimeoutError) {
            Object.assign(locals, { outcome: 'failed', attempts: error.details.attempts, admitted: true });
            res.setHeader('X-Relay-Attempts', String(error.details.attempts));
          } else if (error instanceof DeadlineExceededError) {
            Object.assign(locals, { outcome: 'failed', attempts: 0, admitted: true });
          } else if (error instanceof ClientClosedError) {
            // It waited in the queue (admitted) and left before a worker took it.
            locals.admitted = true;
          }
          throw error;
        }
        locals.outcome = answer.replayed ? 'replayed' : 'delivered';
        locals.attempts = answer.attempts;
        sendAnswer(res, answer);
      },
    )
    .all(methodNotAllowed(['POST']));
  return router;
}

/**
 * `req.is(JSON_TYPES)`, remembered per Content-Type string: type-is parses and
 * matches the media type on every call, and clients send a handful of distinct
 * values. Bounded so that a client cycling through odd values cannot grow it.
 */
const jsonVerdicts = new Map<string, boolean>();
const MAX_JSON_VERDICTS = 64;

export function isJsonRequest(req: Request): boolean {
  const contentType = req.headers['content-type'];
  // type-is's hasBody(): without a body req.is() answers null whatever the type, so only cache with one.
  const hasBody = req.headers['transfer-encoding'] !== undefined || !Number.isNaN(Number(req.headers['content-length']));
  if (contentType === undefined || !hasBody) return Boolean(req.is(JSON_TYPES));
  let verdict = jsonVerdicts.get(contentType);
  if (verdict === undefined) {
    verdict = Boolean(req.is(JSON_TYPES));
    if (jsonVerdicts.size >= MAX_JSON_VERDICTS) jsonVerdicts.clear();
    jsonVerdicts.set(contentType, verdict);
  }
  return verdict;
}

/** RFC 7240: `Prefer: respond-async` among comma-separated preferences, each possibly with parameters. */
export function prefersAsync(header: string | string[] | undefined): boolean {
  if (header === undefined) return false;
  const text = Array.isArray(header) ? header.join(',') : header;
  return text.split(',').some((preference) => preference.split(';')[0]!.trim().toLowerCase() === 'respond-async');
}

const PRIORITIES: ReadonlySet<string> = new Set<Priority>(['high', 'normal', 'low']);

/** `X-Relay-Priority: high | normal | low` (case-insensitive); absent means normal. */
export function parsePriority(header: string | string[] | undefined): Priority {
  if (header === undefined) return 'normal';
  const value = (Array.isArray(header) ? header.join(',') : header).trim().toLowerCase();
  if (PRIORITIES.has(value)) return value as Priority;
  throw new BadRequestError(`X-Relay-Priority must be high, normal or low, got ${JSON.stringify(value.slice(0, 40))}.`);
}

function assertJson(body: Buffer): void {
  try {
    JSON.parse(strictUtf8.decode(body));
  } catch {
    throw new InvalidJsonError(body.length === 0 ? 'The request body is empty; send a JSON document.' : 'The request body is not valid UTF-8 JSON.');
  }
}

/** Only the headers the contract names; hop-by-hop headers are never forwarded. */
export function forwardHeaders(req: Request, res: Response): Record<string, string> {
  // req.headers rather than req.get(): the names are already lower case, and this runs on every request.
  const headers: Record<string, string> = { 'content-type': req.headers['content-type'] ?? 'application/json' };
  const key = req.headers['idempotency-key'];
  if (typeof key === 'string') headers['idempotency-key'] = key;
  const requestId = res.getHeader('x-request-id');
  if (typeof requestId === 'string') headers['x-request-id'] = requestId;
  const traceparent = req.headers.traceparent;
  if (typeof traceparent === 'string' && /^[\da-f]{2}-[\da-f]{32}-[\da-f]{16}-[\da-f]{2}$/.test(traceparent)) headers.traceparent = traceparent;
  return headers;
}

function sendAnswer(res: Response, answer: RelayAnswer): void {
  res.status(answer.status);
  if (answer.headers['content-type']) res.setHeader('Content-Type', answer.headers['content-type']);
  if (answer.replayed) res.setHeader('Idempotent-Replayed', 'true');
  else res.setHeader('X-Relay-Attempts', String(answer.attempts));
  if (answer.upstream !== undefined) res.setHeader('X-Relay-Upstream', answer.upstream);
  res.end(answer.body);
}

/**
 * Aborts when the client goes away before its answer is written. Most requests
 * get a worker at once and nothing ever listens, so the AbortController and its
 * 'close' listener (which showed in profiles when made for every request) are
 * only made for a request that waits in the queue.
 */
class ClientDisconnect implements WaitSignal {
  private controller: AbortController | undefined;

  constructor(private readonly res: Response) {}

  get aborted(): boolean {
    // `closed` is set as 'close' is emitted; an answer written in full before that is no disconnect.
    return this.res.closed && !this.res.writableFinished;
  }

  addEventListener(type: 'abort', listener: () => void, options: { once: true }): void {
    this.signal().addEventListener(type, listener, options);
  }

  removeEventListener(type: 'abort', listener: () => void): void {
    this.controller?.signal.removeEventListener(type, listener);
  }

  private signal(): AbortSignal {
    if (!this.controller) {
      const controller = new AbortController();
      this.controller = controller;
      if (this.aborted) controller.abort();
      else {
        this.res.on('close', () => {
          if (!this.res.writableFinished) controller.abort();
        });
      }
    }
    return this.controller.signal;
  }
}

/** Emits one `request` event when the answer is written or the client goes away. */
function observe(res: Response, deps: { events: RelayEvents; clock: Clock }): void {
  const startedAt = deps.clock.now();
  res.locals.receivedAt = startedAt;
  let done = false;
  const emit = () => {
    if (done) return;
    done = true;
    const locals = res.locals as Partial<RelayLocals>;
    // A client that left before its answer was written counts as nginx's 499.
    const status = res.writableFinished ? res.statusCode : 499;
    deps.events.emit('request', {
      outcome: locals.outcome ?? 'rejected',
      status,
      durationMs: deps.clock.now() - startedAt,
      attempts: locals.attempts ?? 0,
      admitted: locals.admitted ?? false,
    });
  };
  res.on('finish', emit);
  res.on('close', emit);
}
