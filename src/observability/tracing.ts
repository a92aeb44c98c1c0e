import type { IncomingHttpHeaders } from 'node:http';
import type * as OtelApi from '@opentelemetry/api';
import type { Context, Span, SpanContext, TextMapPropagator, Tracer } from '@opentelemetry/api';
import { ConfigError } from '../config/config-error.js';
import type { RequestOutcome } from '../relay-events.js';
import type { AttemptResult, AttemptWatch, AttemptWatcher, BreakerDecision } from '../resilience/attempt.js';
import { redactUrl } from '../secrets/redact.js';

/**
 * OpenTelemetry traces of relay requests and their attempts, exported over
 * OTLP/HTTP (JSON). Off unless the standard variables name an endpoint: then no
 * OpenTelemetry module is even loaded (the API alone takes ~60 ms to import),
 * and callers hold `undefined`, so the hot path pays a property check. The SDK reads its other OTEL_* variables (headers, timeout,
 * sampler, batch sizes, OTEL_RESOURCE_ATTRIBUTES) from the process environment.
 * No global provider or context manager is registered: spans are parented
 * explicitly, so two relays in one process (tests) never share a tracer.
 */

/** service.name when OTEL_SERVICE_NAME is unset. */
export const DEFAULT_SERVICE_NAME = 'resilient-relay';
const TRACER_NAME = 'resilient-relay';
/** Stable OpenTelemetry semantic-convention names (HTTP, error, resource), spelled out to load nothing when off. */
const ATTR_HTTP_REQUEST_METHOD = 'http.request.method';
const ATTR_HTTP_ROUTE = 'http.route';
const ATTR_HTTP_RESPONSE_STATUS_CODE = 'http.response.status_code';
const ATTR_ERROR_TYPE = 'error.type';
const ATTR_SERVICE_NAME = 'service.name';

/** The relay's tracer: one server span per relay request, one span per attempt of a request or a job. */
export interface Tracing {
  /** Where spans are sent (may hold user-info: redact before logging). */
  readonly url: string;
  /** The server span of one relay request: a child of the client's `traceparent` when it sent a valid one. */
  startRequest(request: RequestSpanStart): RequestTrace;
  /** A root span for one attempt of an async job, linked to the span of the request that accepted it. */
  startJobAttempt(job: JobAttemptStart): AttemptWatcher;
  /** Sends the spans ended so far. */
  forceFlush(): Promise<void>;
  /** Sends what is left and stops; spans ended afterwards are dropped. */
  shutdown(): Promise<void>;
}

export interface RequestSpanStart {
  route: string;
  method: string;
  requestId: string;
  /** Whether the client sent an Idempotency-Key (its value is never recorded). */
  keyed: boolean;
  /** The client's headers: only `traceparent` and `tracestate` are read. */
  headers: IncomingHttpHeaders;
}

export interface JobAttemptStart {
  route: string;
  jobId: string;
  attemptNumber: number;
  /** The traceparent stored with the job (its accepting request's span when tracing was on). */
  traceparent: string | undefined;
}

/** One relay request's span: hands out its attempts' spans and ends with the answer. */
export interface RequestTrace extends AttemptWatch {
  /** W3C traceparent of the request span (what a stored job or DLQ entry keeps). */
  readonly traceparent: string;
  end(answer: { status: number; outcome: RequestOutcome; attempts: number }): void;
}

export type TracingEnv = Readonly<Record<string, string | undefined>>;

/**
 * The OTLP/HTTP traces URL the standard variables name, or undefined (tracing
 * off): OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it is, else
 * OTEL_EXPORTER_OTLP_ENDPOINT plus `/v1/traces`; OTEL_SDK_DISABLED=true turns it off.
 */
export function tracesUrlFrom(env: TracingEnv): string | undefined {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return undefined;
  const specific = nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
  const base = nonEmpty(env.OTEL_EXPORTER_OTLP_ENDPOINT);
  const name = specific !== undefined ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' : 'OTEL_EXPORTER_OTLP_ENDPOINT';
  const url = specific ?? (base === undefined ? undefined : `${base.endsWith('/') ? base : `${base}/`}v1/traces`);
  if (url === undefined) return undefined;
  if (!/^https?:\/\/[^/]/i.test(url) || !URL.canParse(url)) {
    const shown = /@/.test(url) ? `[redacted, ${url.length} chars]` : JSON.stringify(specific ?? base);
    throw new ConfigError(`Invalid ${name}=${shown}: expected an http:// or https:// URL (OTLP/HTTP)`);
  }
  return url;
}

/**
 * Starts tracing when the environment names an OTLP endpoint, else returns
 * undefined having loaded nothing. Spans leave in batches (BatchSpanProcessor);
 * `shutdown` sends the last batch.
 */
export async function startTracing(env: TracingEnv, options: { onExportError?: (message: string) => void } = {}): Promise<Tracing | undefined> {
  const url = tracesUrlFrom(env);
  if (url === undefined) return undefined;
  const [api, { BasicTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, resources, { W3CTraceContextPropagator }] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/core'),
  ]);
  // OTEL_SERVICE_NAME wins over OTEL_RESOURCE_ATTRIBUTES (the spec's order), which wins over our default.
  const serviceName = nonEmpty(env.OTEL_SERVICE_NAME);
  const resource = resources
    .defaultResource()
    .merge(resources.resourceFromAttributes({ [ATTR_SERVICE_NAME]: DEFAULT_SERVICE_NAME }))
    .merge(resources.detectResources({ detectors: [resources.envDetector] }))
    .merge(serviceName === undefined ? null : resources.resourceFromAttributes({ [ATTR_SERVICE_NAME]: serviceName }));
  if (options.onExportError) reportOtelErrors(api, options.onExportError);
  const provider = new BasicTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url }))] });
  return new OtelTracing(url, api, provider.getTracer(TRACER_NAME), provider, new W3CTraceContextPropagator());
}

/** At most one line per this many ms: a collector that is down fails every batch. */
const EXPORT_ERROR_EVERY_MS = 30_000;

/**
 * The SDK reports a failed export (collector down, refused, timed out) to its
 * diag logger, which is silent unless one is set: spans would vanish with no
 * word. Errors and warnings go to `report`, URLs in them redacted, one line per
 * EXPORT_ERROR_EVERY_MS with a count of the ones held back.
 */
function reportOtelErrors(api: typeof OtelApi, report: (message: string) => void): void {
  let lastAt = Number.NEGATIVE_INFINITY;
  let heldBack = 0;
  const onError = (...args: unknown[]) => {
    const now = Date.now();
    if (now - lastAt < EXPORT_ERROR_EVERY_MS) {
      heldBack++;
      return;
    }
    lastAt = now;
    const message = args
      .map(diagArgText)
      .join(' ')
      .replace(/https?:\/\/[^\s"']+/gi, (url) => redactUrl(url));
    report(heldBack > 0 ? `${message} (and ${heldBack} more since the last line)` : message);
    heldBack = 0;
  };
  const quiet = () => undefined;
  api.diag.setLogger({ error: onError, warn: onError, info: quiet, debug: quiet, verbose: quiet }, { logLevel: api.DiagLogLevel.WARN, suppressOverrideMessage: true });
}

/** The SDK's error handler passes an exception as JSON (stack and all): its message is enough for a log line. */
function diagArgText(arg: unknown): string {
  if (arg instanceof Error) return arg.message;
  if (typeof arg !== 'string') return JSON.stringify(arg);
  if (!arg.startsWith('{')) return arg;
  try {
    const parsed = JSON.parse(arg) as { message?: unknown };
    return typeof parsed.message === 'string' ? parsed.message : arg;
  } catch {
    return arg;
  }
}

class OtelTracing implements Tracing {
  constructor(
    readonly url: string,
    private readonly api: typeof OtelApi,
    private readonly tracer: Tracer,
    private readonly provider: { forceFlush(): Promise<void>; shutdown(): Promise<void> },
    private readonly propagator: TextMapPropagator,
  ) {}

  startRequest(request: RequestSpanStart): RequestTrace {
    const { api } = this;
    const parent = this.propagator.extract(api.ROOT_CONTEXT, request.headers, api.defaultTextMapGetter);
    const span = this.tracer.startSpan(
      `${request.method} /relay/${request.route}`,
      {
        kind: api.SpanKind.SERVER,
        attributes: {
          [ATTR_HTTP_REQUEST_METHOD]: request.method,
          [ATTR_HTTP_ROUTE]: `/relay/${request.route}`,
          'relay.route': request.route,
          'relay.request_id': request.requestId,
          'relay.idempotency_key.present': request.keyed,
        },
      },
      parent,
    );
    return new OtelRequestTrace(api, span, this.tracer, request.route);
  }

  startJobAttempt(job: JobAttemptStart): AttemptWatcher {
    const { api } = this;
    const accepted =
      job.traceparent === undefined
        ? undefined
        : api.trace.getSpanContext(this.propagator.extract(api.ROOT_CONTEXT, { traceparent: job.traceparent }, api.defaultTextMapGetter));
    const span = this.tracer.startSpan(
      'relay job attempt',
      {
        kind: api.SpanKind.CLIENT,
        root: true,
        links: accepted ? [{ context: accepted }] : [],
        attributes: { 'relay.route': job.route, 'relay.job.id': job.jobId, 'relay.attempt.number': job.attemptNumber },
      },
      api.ROOT_CONTEXT,
    );
    return new OtelAttempt(api, span);
  }

  forceFlush(): Promise<void> {
    return this.provider.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.provider.shutdown();
  }
}

class OtelRequestTrace implements RequestTrace {
  private context: Context | undefined;

  constructor(
    private readonly api: typeof OtelApi,
    private readonly span: Span,
    private readonly tracer: Tracer,
    private readonly route: string,
  ) {}

  get traceparent(): string {
    return traceparentOf(this.span.spanContext());
  }

  attempt(attemptNumber: number, backoffMs: number): AttemptWatcher {
    const { api } = this;
    this.context ??= api.trace.setSpan(api.ROOT_CONTEXT, this.span);
    const span = this.tracer.startSpan(
      'relay attempt',
      { kind: api.SpanKind.CLIENT, attributes: { 'relay.route': this.route, 'relay.attempt.number': attemptNumber, 'relay.backoff_ms': backoffMs } },
      this.context,
    );
    return new OtelAttempt(api, span);
  }

  end(answer: { status: number; outcome: RequestOutcome; attempts: number }): void {
    this.span.setAttributes({ [ATTR_HTTP_RESPONSE_STATUS_CODE]: answer.status, 'relay.outcome': answer.outcome, 'relay.attempts': answer.attempts });
    // A server span is an error only when the relay answered 5xx (OTel HTTP conventions); 499 is the client leaving.
    if (answer.status >= 500) this.span.setStatus({ code: this.api.SpanStatusCode.ERROR });
    this.span.end();
  }
}

class OtelAttempt implements AttemptWatcher {
  private openUpstreams: string[] | undefined;
  private decided = false;

  constructor(
    private readonly api: typeof OtelApi,
    private readonly span: Span,
  ) {}

  get traceparent(): string {
    return traceparentOf(this.span.spanContext());
  }

  breaker(upstream: string, decision: BreakerDecision): void {
    if (decision === 'open') {
      (this.openUpstreams ??= []).push(upstream);
      return;
    }
    this.decided = true;
    this.span.setAttributes({ 'relay.upstream': upstream, 'relay.breaker.decision': decision });
  }

  end(result: AttemptResult): void {
    const { span } = this;
    if (this.openUpstreams) span.setAttribute('relay.breaker.open_upstreams', this.openUpstreams);
    if (!this.decided && this.openUpstreams) span.setAttribute('relay.breaker.decision', 'open');
    if (result.kind === 'refused') {
      span.setAttributes({ 'relay.attempt.outcome': 'refused', 'relay.attempt.sent': 'no', [ATTR_ERROR_TYPE]: result.refusal.code });
      span.end();
      return;
    }
    const { record } = result;
    span.setAttributes({ 'relay.attempt.outcome': record.outcome, 'relay.attempt.sent': record.sent ?? 'unknown' });
    if (record.status !== undefined) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, record.status);
    if (record.outcome !== 'success') {
      span.setAttribute(ATTR_ERROR_TYPE, record.status !== undefined && record.outcome === 'http_error' ? String(record.status) : record.outcome);
      const code = this.api.SpanStatusCode.ERROR;
      span.setStatus(record.error === undefined ? { code } : { code, message: record.error });
    }
    span.end();
  }
}

/** W3C `traceparent` of a span: version 00, its trace and span ids, its flags. */
function traceparentOf(context: SpanContext): string {
  return `00-${context.traceId}-${context.spanId}-${(context.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}
