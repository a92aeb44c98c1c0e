import { randomUUID } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import getRawBody from 'raw-body';
import type { Clock } from '../clock.js';
import type { Priority } from '../domain.js';
import {
  BadRequestError,
  ClientClosedError,
  DeadlineExceededError,
  MethodNotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
  ResponseTooLargeError,
  UpstreamFailedError,
  UpstreamTimeoutError,
} from '../errors.js';
import { keyScope, parseIdempotencyKey, requestFingerprint } from '../idempotency/key.js';
import type { JobService } from '../jobs/job-service.js';
import type { RequestTrace } from '../observability/tracing.js';
import type { WaitSignal } from '../queue/worker-pool.js';
import type { RelayEvents, RequestOutcome } from '../relay-events.js';
import type { RelayAnswer } from '../domain.js';
import type { RelayService } from '../relay-service.js';
import type { RoutePipeline, RouteTable } from '../routes/route-pipeline.js';
import type { Job } from '../storage/types.js';
import { respondWithin } from '../sync-then-async.js';
import { assertRouteClient, assertSafePath, clientCredential, forwardHeaders } from './forwarding.js';
import { setRateLimitHeaders } from './rate-limit-headers.js';
import { refuseCrossSite } from './admin.js';

interface RelayLocals {
  outcome: RequestOutcome;
  attempts: number;
  admitted: boolean;
  route: string;
}

export interface RelayRouterDeps {
  service: RelayService;
  jobs: JobService;
  routes: RouteTable;
  events: RelayEvents;
  clock: Clock;
  maxBodyBytes: number;
  /** The relay's key for scoping idempotency keys to a client's credential. */
  credentialKey: Buffer;
  /** Without it, a relayed call that is not safe must name the relay on loopback in `Host` (see refuseCrossSite). */
  adminToken: string | undefined;
}

/** Methods a cross-site page may send without causing anything at the downstream (HTTP's safe methods). */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

const NO_BODY_METHODS = new Set(['GET', 'HEAD']);

/**
 * `{METHOD} /relay/{name}/{rest}?{query}` (and `/relay` for the `default`
 * route): validate at the edge, read the raw bytes, hand them to the pipeline
 * (or store them as a job) and pass the downstream's answer back as it came.
 */
export function relayRouter(deps: RelayRouterDeps): RequestHandler {
  // A page in the operator's browser must not make the relay call a provider with a route's credentials (CSRF).
  const crossSite = refuseCrossSite({ adminToken: deps.adminToken, loopbackHostPort: () => undefined });
  return (req, res, next) => {
    const resolved = resolveRoute(req.originalUrl, deps.routes);
    if (resolved === null) return next();
    const relay = () =>
      void handleRelay(req, res, deps, resolved).catch((error: unknown) => {
        const code = (error as { code?: unknown } | null)?.code;
        setRateLimitHeaders(res, resolved.route, typeof code === 'string' ? code : undefined);
        next(error);
      });
    if (SAFE_METHODS.has(req.method)) return relay();
    crossSite(req, res, (refusal?: unknown) => (refusal ? next(refusal) : relay()));
  };
}

const BATCH_NAME = 'batch';

/** A `/relay...` URL's route name and raw rest (path and query); null when it is not a relay path or is the batch endpoint. */
export function splitRelayPath(originalUrl: string): { name: string; rest: string } | null {
  const q = originalUrl.indexOf('?');
  const path = q === -1 ? originalUrl : originalUrl.slice(0, q);
  const query = q === -1 ? '' : originalUrl.slice(q);
  if (path !== '/relay' && !path.startsWith('/relay/')) return null;
  const tail = path.slice('/relay'.length);
  let name = 'default';
  let rest = '';
  if (tail !== '' && tail !== '/') {
    const slash = tail.indexOf('/', 1);
    name = slash === -1 ? tail.slice(1) : tail.slice(1, slash);
    rest = slash === -1 ? '' : tail.slice(slash);
  }
  // The batch endpoint (jobsRouter); `batch` is never a route's name.
  if (name === BATCH_NAME && (rest === '' || rest === '/')) return null;
  return { name, rest: rest + query };
}

/** The route and the raw rest of a `/relay...` URL; null when the URL is not a relay path (or is the batch endpoint). */
export function resolveRoute(originalUrl: string, routes: RouteTable): { route: RoutePipeline; name: string; rest: string } | null {
  const split = splitRelayPath(originalUrl);
  if (split === null) return null;
  const { name, rest } = split;
  const route = routes.get(name);
  if (!route) throw new NotFoundError(`No route named ${JSON.stringify(decodeSafely(name).slice(0, 64))}.`);
  return { route, name, rest };
}

async function handleRelay(req: Request, res: Response, deps: RelayRouterDeps, resolved: { route: RoutePipeline; rest: string }): Promise<void> {
  const { route, rest } = resolved;
  const trace = deps.service.tracing?.startRequest({
    route: route.name,
    method: req.method.toUpperCase(),
    requestId: res.locals.requestId as string,
    keyed: req.headers['idempotency-key'] !== undefined,
    headers: req.headers,
  });
  observe(res, deps, route.name, trace);
  const method = req.method.toUpperCase();
  if (!route.spec.methods.includes(method)) throw new MethodNotAllowedError([...route.spec.methods]);
  assertSafePath(rest.split('?')[0]!);
  assertRouteClient(route, singleHeader(req, 'x-relay-token'));
  // Before reading the body, so a malformed key or priority costs nothing.
  const clientKey = idempotencyKeyOf(req);
  const priority = parsePriority(req.headers['x-relay-priority']);
  const body = NO_BODY_METHODS.has(method) ? null : await readBody(req, deps.maxBodyBytes);
  const locals = res.locals as Partial<RelayLocals>;
  const target = { route: route.name, method, path: rest };
  const sendKey = clientKey ?? (route.spec.idempotency.generate ? `relay-${randomUUID()}` : undefined);
  const headers = forwardHeaders(req, { requestId: res.locals.requestId as string, keyHeader: route.keyHeader, sendKey });
  // Traced, the request span is the relay's span: a stored job or DLQ entry keeps it, and each attempt sends its own.
  if (trace) headers.traceparent = trace.traceparent;
  const scope = clientKey === undefined ? undefined : keyScope(route.name, deps.credentialKey, clientCredential(req), clientKey);
  const fingerprint =
    clientKey === undefined ? undefined : requestFingerprint({ method, route: route.name, path: rest, contentType: req.headers['content-type'], body });

  const waitMs = prefersAsync(req.headers.prefer) ? preferredWaitMs(req.headers.prefer) : undefined;
  if (waitMs === 0) {
    const accepted = await deps.jobs.accept({ route, target, body, headers, sendKey, keyScope: scope, fingerprint, priority });
    if (accepted.kind === 'answered') {
      locals.outcome = 'replayed';
      sendAnswer(req, res, route, { ...accepted.response, attempts: 0, replayed: true });
      return;
    }
    sendAccepted(res, route, accepted.job, accepted.created);
    return;
  }
  const request = {
    route,
    target,
    body,
    headers,
    sendKey,
    keyScope: scope,
    fingerprint,
    signal: new ClientDisconnect(res),
    receivedAt: res.locals.receivedAt as number,
    priority,
    onAdmitted: () => {
      locals.admitted = true;
    },
    trace,
    canaryId: res.locals.relayRequestId as string,
  };
  let answer: RelayAnswer;
  try {
    if (waitMs === undefined) {
      answer = await deps.service.handle(request);
    } else {
      // Prefer: respond-async, wait=N: synchronous up to N seconds, then a job.
      const outcome = await respondWithin({ service: deps.service, jobs: deps.jobs, clock: deps.clock }, request, waitMs);
      if (outcome.kind === 'job') {
        sendAccepted(res, route, outcome.job, outcome.created);
        return;
      }
      answer = outcome.answer;
    }
  } catch (error) {
    if (error instanceof UpstreamFailedError || error instanceof UpstreamTimeoutError || error instanceof ResponseTooLargeError) {
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
  sendAnswer(req, res, route, answer);
}

/** 202 for a stored job; accepted work counts as admitted: its deliveries are attempts made for it (amplification). */
function sendAccepted(res: Response, route: RoutePipeline, job: Job, created: boolean): void {
  Object.assign(res.locals as Partial<RelayLocals>, { outcome: created ? 'accepted' : 'replayed', admitted: created });
  setRateLimitHeaders(res, route);
  res
    .status(202)
    .location(`/jobs/${job.id}`)
    .set('Preference-Applied', 'respond-async')
    .json({ jobId: job.id, state: job.state, location: `/jobs/${job.id}` });
}

/** The body's raw bytes, at most `limit`; 413 past it (without reading the rest when Content-Length says so). */
export async function readBody(req: Request, limit: number): Promise<Buffer> {
  const length = req.headers['content-length'];
  try {
    return await getRawBody(req, { limit, ...(length !== undefined ? { length } : {}) });
  } catch (error) {
    if ((error as { type?: unknown }).type === 'entity.too.large') throw new PayloadTooLargeError(`The request body exceeds MAX_BODY_BYTES (${limit} bytes).`);
    throw new BadRequestError('The request body could not be read.');
  }
}

/** One Idempotency-Key header, unquoted; a second header is an error, not a key `a, b`. */
function idempotencyKeyOf(req: Request): string | undefined {
  // headersDistinct builds arrays for every header on first use (~4 µs a request in a profile): only when a key came.
  if (req.headers['idempotency-key'] === undefined) return undefined;
  const all = req.headersDistinct['idempotency-key'];
  if (all !== undefined && all.length > 1) parseIdempotencyKey(all);
  return parseIdempotencyKey(req.headers['idempotency-key']);
}

function singleHeader(req: Request, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function decodeSafely(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** RFC 7240: `Prefer: respond-async` among comma-separated preferences, each possibly with parameters. */
export function prefersAsync(header: string | string[] | undefined): boolean {
  if (header === undefined) return false;
  const text = Array.isArray(header) ? header.join(',') : header;
  return text.split(',').some((preference) => preference.split(';')[0]!.trim().toLowerCase() === 'respond-async');
}

/** Digits enough for any wait: more would be past every request deadline anyway. */
const MAX_WAIT_DIGITS = 9;

/**
 * How long a `respond-async` request may be tried synchronously: `wait=N` of the
 * same Prefer header, in ms (RFC 7240 section 4.3: delta-seconds, quoted or not).
 * 0 when it is absent, 0 or invalid (an invalid preference is ignored: plain
 * respond-async). The first `wait` counts (section 2: a repeated preference's later
 * instances are ignored). The caller caps it at the request deadline.
 */
export function preferredWaitMs(header: string | string[] | undefined): number {
  if (header === undefined) return 0;
  const text = Array.isArray(header) ? header.join(',') : header;
  for (const preference of text.split(',')) {
    const [name, ...value] = preference.split(';')[0]!.split('=');
    if (name!.trim().toLowerCase() !== 'wait') continue;
    const raw = value.join('=').trim().replace(/^"(.*)"$/, '$1');
    if (!/^\d+$/.test(raw)) return 0;
    const digits = raw.replace(/^0+(?=\d)/, '');
    return digits.length > MAX_WAIT_DIGITS ? Number.MAX_SAFE_INTEGER : Number(digits) * 1000;
  }
  return 0;
}

const PRIORITIES: ReadonlySet<string> = new Set<Priority>(['high', 'normal', 'low']);

/** `X-Relay-Priority: high | normal | low` (case-insensitive); absent means normal. */
export function parsePriority(header: string | string[] | undefined): Priority {
  if (header === undefined) return 'normal';
  const value = (Array.isArray(header) ? header.join(',') : header).trim().toLowerCase();
  if (PRIORITIES.has(value)) return value as Priority;
  throw new BadRequestError(`X-Relay-Priority must be high, normal or low, got ${JSON.stringify(value.slice(0, 40))}.`);
}

/** The downstream's status, end-to-end headers and body as they came, then the relay's own headers. */
function sendAnswer(req: Request, res: Response, route: RoutePipeline, answer: RelayAnswer): void {
  res.status(answer.status);
  for (const [name, value] of Object.entries(answer.headers)) {
    if (name !== 'content-length') res.setHeader(name, value);
  }
  if (answer.replayed) res.setHeader('Idempotent-Replayed', 'true');
  else res.setHeader('X-Relay-Attempts', String(answer.attempts));
  if (answer.upstream !== undefined) res.setHeader('X-Relay-Upstream', answer.upstream);
  res.setHeader('X-Request-Id', res.locals.requestId as string);
  setRateLimitHeaders(res, route);
  if (req.method === 'HEAD') {
    const length = answer.headers['content-length'];
    if (typeof length === 'string') res.setHeader('Content-Length', length);
    res.end();
    return;
  }
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

/** Emits one `request` event (and ends the request's span) when the answer is written or the client goes away. */
function observe(res: Response, deps: { events: RelayEvents; clock: Clock }, route: string, trace: RequestTrace | undefined): void {
  const startedAt = deps.clock.now();
  res.locals.receivedAt = startedAt;
  let done = false;
  const emit = () => {
    if (done) return;
    done = true;
    const locals = res.locals as Partial<RelayLocals>;
    // A client that left before its answer was written counts as nginx's 499.
    const status = res.writableFinished ? res.statusCode : 499;
    const outcome = locals.outcome ?? 'rejected';
    const attempts = locals.attempts ?? 0;
    deps.events.emit('request', {
      route,
      outcome,
      status,
      durationMs: deps.clock.now() - startedAt,
      attempts,
      admitted: locals.admitted ?? false,
    });
    trace?.end({ status, outcome, attempts });
  };
  res.on('finish', emit);
  res.on('close', emit);
}
