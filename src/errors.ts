import type { Delivery } from './domain.js';

/**
 * The closed set of errors the relay itself produces. Each has a stable `code`,
 * the HTTP status it maps to, and a title; the HTTP layer turns them into
 * application/problem+json (RFC 9457) in one handler. Match on `code`, never on
 * a message.
 */
export abstract class RelayError extends Error {
  abstract readonly code: string;
  abstract readonly status: number;
  abstract readonly title: string;
  /** Extra problem members (e.g. `attempts`, `dlqId`). */
  extensions(): Record<string, unknown> {
    return {};
  }
  /** Extra response headers (e.g. `Retry-After`). */
  headers(): Record<string, string> {
    return {};
  }
}

export class BadRequestError extends RelayError {
  readonly code = 'BAD_REQUEST';
  readonly status = 400;
  readonly title = 'Bad request';
}

export class InvalidJsonError extends RelayError {
  readonly code = 'INVALID_JSON';
  readonly status = 400;
  readonly title = 'Request body is not valid JSON';
}

export class InvalidIdempotencyKeyError extends RelayError {
  readonly code = 'INVALID_IDEMPOTENCY_KEY';
  readonly status = 400;
  readonly title = 'Malformed Idempotency-Key';
}

export class UnauthorizedError extends RelayError {
  readonly code = 'UNAUTHORIZED';
  readonly status = 401;
  readonly title = 'Unauthorized';
  override headers(): Record<string, string> {
    return { 'WWW-Authenticate': 'Bearer realm="relay-admin"' };
  }
}

export class ForbiddenError extends RelayError {
  readonly code = 'FORBIDDEN';
  readonly status = 403;
  readonly title = 'Forbidden';
}

export class NotFoundError extends RelayError {
  readonly code = 'NOT_FOUND';
  readonly status = 404;
  readonly title = 'Not found';
}

export class MethodNotAllowedError extends RelayError {
  readonly code = 'METHOD_NOT_ALLOWED';
  readonly status = 405;
  readonly title = 'Method not allowed';
  constructor(private readonly allow: string[]) {
    super(`Allowed: ${allow.join(', ')}`);
  }
  override headers(): Record<string, string> {
    return { Allow: this.allow.join(', ') };
  }
}

export class IdempotencyInFlightError extends RelayError {
  readonly code = 'IDEMPOTENCY_IN_FLIGHT';
  readonly status = 409;
  readonly title = 'A request with this Idempotency-Key is still in flight';
  override headers(): Record<string, string> {
    return { 'Retry-After': '1' };
  }
}

export class PayloadTooLargeError extends RelayError {
  readonly code = 'PAYLOAD_TOO_LARGE';
  readonly status = 413;
  readonly title = 'Request body too large';
}

/** A route path that could leave the target's prefix or confuse the downstream's parser. */
export class BadPathError extends RelayError {
  readonly code = 'BAD_PATH';
  readonly status = 400;
  readonly title = 'Path not allowed';
}

/** A route that carries the relay's own credential answers only its listed clients (X-Relay-Token). */
export class RouteClientUnauthorizedError extends RelayError {
  readonly code = 'ROUTE_CLIENT_UNAUTHORIZED';
  readonly status = 401;
  readonly title = 'This route needs a client token';
  override headers(): Record<string, string> {
    return { 'WWW-Authenticate': 'X-Relay-Token' };
  }
}

/** Secret headers could not be stored or read back: no RELAY_SECRET_KEY, or it changed. */
export class SecretKeyRequiredError extends RelayError {
  readonly code = 'SECRET_KEY_REQUIRED';
  readonly title = 'Secret headers cannot be stored or read without RELAY_SECRET_KEY';
  constructor(
    detail: string,
    readonly status: 400 | 422,
  ) {
    super(detail);
  }
}

/** A replay or redrive of a keyless request that may have been processed already. */
export class DeliveryUnknownError extends RelayError {
  readonly code = 'DELIVERY_UNKNOWN';
  readonly status = 409;
  readonly title = 'The first delivery may have been processed';
}

/** An edited DLQ replay that changes what its key was bound to (body, content type) without a new key. */
export class EditNeedsNewKeyError extends RelayError {
  readonly code = 'EDIT_NEEDS_NEW_KEY';
  readonly status = 422;
  readonly title = 'A changed payload needs a new idempotency key';
}

/** A DLQ entry already holds as many edited replays as its history keeps. */
export class EditHistoryFullError extends RelayError {
  readonly code = 'EDIT_HISTORY_FULL';
  readonly status = 409;
  readonly title = "This entry's edit history is full";
}

/** The job queue holds as many jobs (or bytes) as JOB_QUEUE_MAX(_BYTES) allow: nothing was stored. */
export class JobQueueFullError extends RelayError {
  readonly code = 'JOB_QUEUE_FULL';
  readonly status = 429;
  readonly title = 'The job queue is full';
  constructor(readonly reason: 'count' | 'bytes') {
    super(
      reason === 'count'
        ? 'The relay holds JOB_QUEUE_MAX jobs waiting for delivery; retry when some have been delivered.'
        : 'The jobs waiting for delivery take JOB_QUEUE_MAX_BYTES; retry when some have been delivered.',
    );
  }
  override headers(): Record<string, string> {
    return { 'Retry-After': '5' };
  }
}

/** The DLQ is at DLQ_MAX(_BYTES): new async work would have nowhere to go if it failed, so it is refused. */
export class DlqFullError extends RelayError {
  readonly code = 'DLQ_FULL';
  readonly status = 507;
  readonly title = 'The dead-letter queue is full';
  constructor() {
    super('The dead-letter queue is at its cap (DLQ_MAX / DLQ_MAX_BYTES); replay, redrive or delete entries before sending async work.');
  }
  override headers(): Record<string, string> {
    return { 'Retry-After': '60' };
  }
}

/** The route a job or DLQ entry was made for is no longer in the routes file. */
export class RouteGoneError extends RelayError {
  readonly code = 'ROUTE_GONE';
  readonly status = 409;
  readonly title = 'The route no longer exists';
}

/** An operator paused the route (POST /admin/routes/{name}/pause) and it was not resumed before the request's deadline. */
export class RoutePausedError extends RelayError {
  readonly code = 'ROUTE_PAUSED';
  readonly status = 503;
  readonly title = 'The route is paused';
  constructor(
    route: string,
    readonly retryAfterS = 5,
  ) {
    super(`An operator paused the route ${JSON.stringify(route)} and it was not resumed before this request's deadline; the downstream was not called.`);
  }
  override headers(): Record<string, string> {
    return { 'Retry-After': String(this.retryAfterS) };
  }
}

/** A reload found a routes file (or ENV_FILE) that does not validate: the routes loaded before stay. */
export class RoutesInvalidError extends RelayError {
  readonly code = 'ROUTES_INVALID';
  readonly status = 422;
  readonly title = 'The routes file was refused; the routes loaded before stay';
  constructor(readonly lines: readonly string[]) {
    super(lines.join('\n'));
  }
  override extensions(): Record<string, unknown> {
    return { errors: [...this.lines] };
  }
}

/** Another replay of the same DLQ entry is running. */
export class ReplayInProgressError extends RelayError {
  readonly code = 'REPLAY_IN_PROGRESS';
  readonly status = 409;
  readonly title = 'This entry is being replayed';
  override headers(): Record<string, string> {
    return { 'Retry-After': '1' };
  }
}

/** A key held by an async job that has not finished: its answer will be the job's. */
export class IdempotencyHeldByJobError extends RelayError {
  readonly code = 'IDEMPOTENCY_KEY_HELD_BY_JOB';
  readonly status = 409;
  readonly title = 'This Idempotency-Key belongs to an unfinished job';
  constructor(readonly jobId: string) {
    super(`A job accepted with this Idempotency-Key has not finished; see /jobs/${jobId}.`);
  }
  override headers(): Record<string, string> {
    return { Location: `/jobs/${this.jobId}`, 'Retry-After': '1' };
  }
  override extensions(): Record<string, unknown> {
    return { jobId: this.jobId };
  }
}

/** The key's first request ended without a recorded outcome (the relay died, or lost its store, in between). */
export class IdempotencyOutcomeUnknownError extends RelayError {
  readonly code = 'IDEMPOTENCY_OUTCOME_UNKNOWN';
  readonly status = 409;
  readonly title = 'The outcome of this Idempotency-Key is unknown';
  constructor() {
    super(
      "This Idempotency-Key's first request reached the relay, but the relay stopped (or lost its store) before recording the downstream's answer; it will not be sent again under this key. Check with the provider (it received the key), then use a new key.",
    );
  }
}

/** The downstream's answer was larger than MAX_RESPONSE_BYTES: cut off, not passed on. */
export class ResponseTooLargeError extends RelayError {
  readonly code = 'RESPONSE_TOO_LARGE';
  readonly status = 502;
  readonly title = "The downstream's answer is too large";
  constructor(
    detail: string,
    readonly details: { attempts: number; dlqId: string | null },
  ) {
    super(detail);
  }
  override extensions(): Record<string, unknown> {
    return { ...this.details };
  }
}

export class UnsupportedMediaTypeError extends RelayError {
  readonly code = 'UNSUPPORTED_MEDIA_TYPE';
  readonly status = 415;
  readonly title = 'Content-Type must be application/json';
}

export class IdempotencyMismatchError extends RelayError {
  readonly code = 'IDEMPOTENCY_KEY_REUSED';
  readonly status = 422;
  readonly title = 'Idempotency-Key reused with a different request';
}

export class QueueFullError extends RelayError {
  readonly code = 'QUEUE_FULL';
  readonly status = 429;
  readonly title = 'Relay queue is full';
  constructor(readonly retryAfterS: number) {
    super(`The queue is at capacity; retry after ${retryAfterS} s.`);
  }
  override headers(): Record<string, string> {
    return { 'Retry-After': String(this.retryAfterS) };
  }
}

/**
 * A protection refused the request before anything was sent: 503 with
 * Retry-After in whole seconds (>= 1) and `retryAfterMs` in the problem.
 */
abstract class DownstreamProtectedError extends RelayError {
  readonly status = 503;
  readonly retryAfterS: number;
  constructor(
    readonly retryAfterMs: number,
    detail: string,
  ) {
    super(detail);
    this.retryAfterS = Math.max(1, Math.ceil(retryAfterMs / 1000));
  }
  override headers(): Record<string, string> {
    return { 'Retry-After': String(this.retryAfterS) };
  }
  override extensions(): Record<string, unknown> {
    return { retryAfterMs: this.retryAfterMs };
  }
}

/**
 * Every downstream's circuit breaker is open: the request fails fast and the
 * downstream receives nothing. Retry-After is the time until the next probe.
 */
export class CircuitOpenError extends DownstreamProtectedError {
  readonly code = 'CIRCUIT_OPEN';
  readonly title = 'Downstream circuit open';
  constructor(retryAfterMs: number) {
    super(retryAfterMs, `The downstream is failing and its circuit breaker is open; the next probe is in ${retryAfterMs} ms.`);
  }
}

/** The relay's own rate limit on calls to the downstream leaves no room before the request's deadline. */
export class RateLimitedError extends DownstreamProtectedError {
  readonly code = 'RATE_LIMITED';
  readonly title = 'Downstream rate limit reached';
  constructor(retryAfterMs: number) {
    super(retryAfterMs, `Calls to the downstream are rate limited and none is free before this request's deadline; retry in ${retryAfterMs} ms.`);
  }
}

/** The relay is shutting down or not ready to take work. */
export class ServiceUnavailableError extends RelayError {
  readonly code = 'SERVICE_UNAVAILABLE';
  readonly status = 503;
  readonly title = 'Relay unavailable';
  constructor(detail: string, readonly retryAfterS = 1) {
    super(detail);
  }
  override headers(): Record<string, string> {
    return { 'Retry-After': String(this.retryAfterS) };
  }
}

/** The request's deadline passed before a worker could take it: the downstream was not called. */
export class DeadlineExceededError extends RelayError {
  readonly code = 'DEADLINE_EXCEEDED';
  readonly status = 504;
  readonly title = 'Request deadline exceeded before it reached the downstream';
}

/** The client went away while its request waited; nobody will read this answer. */
export class ClientClosedError extends RelayError {
  readonly code = 'CLIENT_CLOSED';
  // 499 is nginx's "client closed request"; only logs and metrics ever see it.
  readonly status = 499;
  readonly title = 'Client closed the request';
}

interface ExhaustedDetails {
  attempts: number;
  lastError: string;
  dlqId: string | null;
  /** `unknown` when an attempt may have been processed, `not_sent` when none left the relay, else `failed`. */
  delivery: Delivery;
}

/** Every attempt failed and the last one timed out. */
export class UpstreamTimeoutError extends RelayError {
  readonly code = 'UPSTREAM_TIMEOUT';
  readonly status = 504;
  readonly title = 'Downstream timed out';
  constructor(readonly details: ExhaustedDetails) {
    super(`All ${details.attempts} attempt(s) failed; the last one timed out.`);
  }
  override extensions(): Record<string, unknown> {
    return { ...this.details };
  }
}

/** Every attempt failed (5xx, 429, connection error). */
export class UpstreamFailedError extends RelayError {
  readonly code = 'UPSTREAM_FAILED';
  readonly status = 502;
  readonly title = 'Downstream failed';
  constructor(readonly details: ExhaustedDetails) {
    super(`All ${details.attempts} attempt(s) failed; last error: ${details.lastError}.`);
  }
  override extensions(): Record<string, unknown> {
    return { ...this.details };
  }
}

/** The store did not answer (e.g. Redis is down). */
export class StoreUnavailableError extends RelayError {
  readonly code = 'STORE_UNAVAILABLE';
  readonly status = 503;
  readonly title = 'Relay store unavailable';
  override headers(): Record<string, string> {
    return { 'Retry-After': '1' };
  }
}
