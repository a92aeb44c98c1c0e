import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/config.js';
import { startTracing, tracesUrlFrom, type Tracing } from '../src/observability/tracing.js';
import { eventually, startTestRelay, uniqueKey, type TestRelay } from './helpers/test-relay.js';

/** One span as OTLP/HTTP JSON carries it, with its attributes flattened. */
interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
  links: Array<{ traceId: string; spanId: string }>;
  status: { code?: number; message?: string };
  serviceName: unknown;
}

/** OTLP's SpanKind numbers (SPAN_KIND_SERVER, SPAN_KIND_CLIENT). */
const SERVER = 2;
const CLIENT = 3;

/** An in-process OTLP/HTTP receiver: accepts POST /v1/traces (JSON) and keeps every span. */
async function startOtlpReceiver(): Promise<{ endpoint: string; spans: ReceivedSpan[]; posts: number; close(): Promise<void> }> {
  const state = { spans: [] as ReceivedSpan[], posts: 0 };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      state.posts++;
      const raw = Buffer.concat(chunks);
      const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
      state.spans.push(...flattenSpans(JSON.parse(body.toString('utf8'))));
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  const { url, close } = await listen(server);
  return {
    endpoint: url,
    spans: state.spans,
    get posts() {
      return state.posts;
    },
    close,
  };
}

interface OtlpValue {
  stringValue?: string;
  intValue?: number | string;
  boolValue?: boolean;
  doubleValue?: number;
  arrayValue?: { values?: OtlpValue[] };
}
interface OtlpKeyValue {
  key: string;
  value: OtlpValue;
}
interface OtlpExport {
  resourceSpans?: Array<{
    resource?: { attributes?: OtlpKeyValue[] };
    scopeSpans?: Array<{
      spans?: Array<{
        traceId: string;
        spanId: string;
        parentSpanId?: string;
        name: string;
        kind: number;
        attributes?: OtlpKeyValue[];
        links?: Array<{ traceId: string; spanId: string }>;
        status?: { code?: number; message?: string };
      }>;
    }>;
  }>;
}

function flattenSpans(body: OtlpExport): ReceivedSpan[] {
  return (body.resourceSpans ?? []).flatMap((resourceSpans) => {
    const resource = attributesOf(resourceSpans.resource?.attributes);
    return (resourceSpans.scopeSpans ?? []).flatMap((scope) =>
      (scope.spans ?? []).map((span) => ({
        traceId: span.traceId,
        spanId: span.spanId,
        parentSpanId: span.parentSpanId ?? '',
        name: span.name,
        kind: span.kind,
        attributes: attributesOf(span.attributes),
        links: (span.links ?? []).map(({ traceId, spanId }) => ({ traceId, spanId })),
        status: span.status ?? {},
        serviceName: resource['service.name'],
      })),
    );
  });
}

function attributesOf(list: OtlpKeyValue[] | undefined): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map(({ key, value }) => [key, valueOf(value)]));
}

function valueOf(value: OtlpValue): unknown {
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.arrayValue !== undefined) return (value.arrayValue.values ?? []).map(valueOf);
  return undefined;
}

/** A downstream that records each request's headers and answers 503 to the first `failFirst`, 200 after. */
async function startFlakyDownstream(failFirst: number): Promise<{ url: string; received: IncomingHttpHeaders[]; close(): Promise<void> }> {
  const received: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received.push(req.headers);
      if (received.length <= failFirst) res.writeHead(503, { 'content-type': 'text/plain' }).end('busy');
      else res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  const { url, close } = await listen(server);
  return { url: `${url}/`, received, close };
}

async function listen(server: Server): Promise<{ url: string; close(): Promise<void> }> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const spanIdOf = (traceparent: unknown) => String(traceparent).split('-')[2];
const traceIdOf = (traceparent: unknown) => String(traceparent).split('-')[1];

const CLIENT_TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN_ID = '00f067aa0ba902b7';
const CLIENT_TRACEPARENT = `00-${CLIENT_TRACE_ID}-${CLIENT_SPAN_ID}-01`;
/** RETRY_BASE_DELAY_MS (10, the test relay's) times the fixed random 0.5: the full-jitter backoff before attempt 2. */
const BACKOFF_BEFORE_SECOND_MS = 5;

describe('tracing (OpenTelemetry over OTLP/HTTP)', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function tracedRelay(env: Record<string, string>, failFirst: number): Promise<{ relay: TestRelay; tracing: Tracing; receiver: Awaited<ReturnType<typeof startOtlpReceiver>>; downstream: Awaited<ReturnType<typeof startFlakyDownstream>> }> {
    const receiver = await startOtlpReceiver();
    cleanups.push(() => receiver.close());
    const downstream = await startFlakyDownstream(failFirst);
    cleanups.push(() => downstream.close());
    const tracing = await startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, ...env });
    expect(tracing).toBeDefined();
    const relay = await startTestRelay({ env: { DOWNSTREAM_URL: downstream.url }, overrides: { tracing: tracing!, random: () => 0.5 } });
    cleanups.push(() => relay.close());
    return { relay, tracing: tracing!, receiver, downstream };
  }

  it('a request retried once exports one server span and two attempt spans, and the downstream gets each attempt span as its parent', async () => {
    const { relay, tracing, receiver, downstream } = await tracedRelay({ OTEL_SERVICE_NAME: 'relay-under-test' }, 1);
    const key = uniqueKey('trace');
    const res = await relay.http
      .post('/relay')
      .set('traceparent', CLIENT_TRACEPARENT)
      .set('idempotency-key', key)
      .set('authorization', 'Bearer very-secret-token')
      .send({ hello: 'world' });
    expect(res.status).toBe(200);
    expect(res.headers['x-relay-attempts']).toBe('2');

    await tracing.forceFlush();
    await eventually(() => receiver.spans.length >= 3);
    expect(receiver.spans).toHaveLength(3);
    const server = receiver.spans.filter((span) => span.kind === SERVER);
    const attempts = receiver.spans.filter((span) => span.kind === CLIENT).sort((a, b) => Number(a.attributes['relay.attempt.number']) - Number(b.attributes['relay.attempt.number']));
    expect(server).toHaveLength(1);
    expect(attempts).toHaveLength(2);
    const request = server[0]!;

    // The client's traceparent is the request span's parent.
    expect(request.traceId).toBe(CLIENT_TRACE_ID);
    expect(request.parentSpanId).toBe(CLIENT_SPAN_ID);
    expect(request.serviceName).toBe('relay-under-test');
    expect(request.name).toBe('POST /relay/default');
    expect(request.attributes).toMatchObject({
      'http.request.method': 'POST',
      'http.route': '/relay/default',
      'http.response.status_code': 200,
      'relay.route': 'default',
      'relay.outcome': 'delivered',
      'relay.attempts': 2,
      'relay.request_id': res.headers['x-request-id'],
      'relay.idempotency_key.present': true,
    });

    for (const attempt of attempts) {
      expect(attempt.traceId).toBe(CLIENT_TRACE_ID);
      expect(attempt.parentSpanId).toBe(request.spanId);
      expect(attempt.attributes).toMatchObject({ 'relay.upstream': 'primary', 'relay.breaker.decision': 'allowed', 'relay.attempt.sent': 'yes', 'relay.route': 'default' });
    }
    expect(attempts[0]!.attributes).toMatchObject({
      'relay.attempt.number': 1,
      'relay.backoff_ms': 0,
      'http.response.status_code': 503,
      'relay.attempt.outcome': 'http_error',
      'error.type': '503',
    });
    expect(attempts[0]!.status.code).toBe(2); // STATUS_CODE_ERROR
    expect(attempts[1]!.attributes).toMatchObject({
      'relay.attempt.number': 2,
      'relay.backoff_ms': BACKOFF_BEFORE_SECOND_MS,
      'http.response.status_code': 200,
      'relay.attempt.outcome': 'success',
    });

    // Each attempt sent its own span's context, in the client's trace.
    expect(downstream.received).toHaveLength(2);
    expect(downstream.received.map((headers) => spanIdOf(headers.traceparent))).toEqual(attempts.map((span) => span.spanId));
    expect(downstream.received.map((headers) => traceIdOf(headers.traceparent))).toEqual([CLIENT_TRACE_ID, CLIENT_TRACE_ID]);

    // Presence of the key only: neither its value nor any header value is in any span.
    const recorded = JSON.stringify(receiver.spans.map((span) => span.attributes));
    expect(recorded).not.toContain(key);
    expect(recorded).not.toContain('very-secret-token');
  });

  it('an async job attempt is a root span linked to the request that accepted it, and sends its own traceparent', async () => {
    const { relay, tracing, receiver, downstream } = await tracedRelay({}, 0);
    const res = await relay.http.post('/relay').set('prefer', 'respond-async').set('traceparent', CLIENT_TRACEPARENT).send({ job: true });
    expect(res.status).toBe(202);
    await eventually(() => downstream.received.length === 1);
    await eventually(async () => (await relay.http.get(res.headers.location as string)).body.state === 'delivered');

    await tracing.forceFlush();
    await eventually(() => receiver.spans.length >= 2);
    const request = receiver.spans.find((span) => span.kind === SERVER)!;
    const job = receiver.spans.find((span) => span.name === 'relay job attempt')!;
    expect(request.attributes).toMatchObject({ 'relay.outcome': 'accepted', 'http.response.status_code': 202, 'relay.idempotency_key.present': false });
    expect(request.serviceName).toBe('resilient-relay');
    expect(job.parentSpanId).toBe('');
    expect(job.links).toEqual([{ traceId: CLIENT_TRACE_ID, spanId: request.spanId }]);
    expect(job.attributes).toMatchObject({ 'relay.job.id': res.body.jobId, 'relay.attempt.number': 1, 'relay.upstream': 'primary', 'relay.attempt.outcome': 'success' });
    expect(spanIdOf(downstream.received[0]!.traceparent)).toBe(job.spanId);
    expect(traceIdOf(downstream.received[0]!.traceparent)).toBe(job.traceId);
  });

  it("an attempt that skips the primary's open breaker names it and goes to the fallback", async () => {
    const receiver = await startOtlpReceiver();
    cleanups.push(() => receiver.close());
    const primary = await startFlakyDownstream(Number.POSITIVE_INFINITY);
    cleanups.push(() => primary.close());
    const fallback = await startFlakyDownstream(0);
    cleanups.push(() => fallback.close());
    const tracing = await startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint });
    const relay = await startTestRelay({
      // Two 503s in a row open the primary's breaker; the third attempt finds it open.
      env: { DOWNSTREAM_URL: primary.url, FALLBACK_URLS: fallback.url, BREAKER_CONSECUTIVE_FAILURES: '2', RETRY_MAX_ATTEMPTS: '3' },
      overrides: { tracing: tracing!, random: () => 0.5 },
    });
    cleanups.push(() => relay.close());
    const res = await relay.http.post('/relay').set('idempotency-key', uniqueKey('fallback')).send({});
    expect(res.status).toBe(200);
    expect(res.headers['x-relay-upstream']).toBe('fallback-1');

    await tracing!.forceFlush();
    await eventually(() => receiver.spans.length >= 4);
    const attempts = receiver.spans.filter((span) => span.kind === CLIENT).sort((a, b) => Number(a.attributes['relay.attempt.number']) - Number(b.attributes['relay.attempt.number']));
    expect(attempts.map((span) => [span.attributes['relay.upstream'], span.attributes['relay.breaker.decision'], span.attributes['http.response.status_code']])).toEqual([
      ['primary', 'allowed', 503],
      ['primary', 'allowed', 503],
      ['fallback-1', 'allowed', 200],
    ]);
    expect(attempts[2]!.attributes['relay.breaker.open_upstreams']).toEqual(['primary']);
    expect(attempts[0]!.attributes['relay.breaker.open_upstreams']).toBeUndefined();
    expect(spanIdOf(fallback.received[0]!.traceparent)).toBe(attempts[2]!.spanId);
  });

  it('with no endpoint set, no SDK is created and nothing is exported; the downstream still gets a relay span in the client trace', async () => {
    expect(await startTracing({})).toBeUndefined();
    expect(await startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: '  ', OTEL_SERVICE_NAME: 'x' })).toBeUndefined();
    expect(await startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1', OTEL_SDK_DISABLED: 'true' })).toBeUndefined();

    const receiver = await startOtlpReceiver();
    cleanups.push(() => receiver.close());
    const downstream = await startFlakyDownstream(1);
    cleanups.push(() => downstream.close());
    const relay = await startTestRelay({ env: { DOWNSTREAM_URL: downstream.url } });
    cleanups.push(() => relay.close());
    expect(relay.relay.service.tracing).toBeUndefined();

    const res = await relay.http.post('/relay').set('traceparent', CLIENT_TRACEPARENT).send({});
    expect(res.status).toBe(200);
    // Today's behaviour: one relay span per request, the same on every attempt, in the client's trace.
    expect(downstream.received).toHaveLength(2);
    const [first, second] = downstream.received.map((headers) => String(headers.traceparent));
    expect(first).toBe(second);
    expect(traceIdOf(first)).toBe(CLIENT_TRACE_ID);
    expect(spanIdOf(first)).not.toBe(CLIENT_SPAN_ID);
    await relay.close();
    expect(receiver.posts).toBe(0);
  });

  it('names the traces URL from the standard variables and refuses one that is not http(s)', () => {
    expect(tracesUrlFrom({})).toBeUndefined();
    expect(tracesUrlFrom({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe('http://collector:4318/v1/traces');
    expect(tracesUrlFrom({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' })).toBe('http://collector:4318/v1/traces');
    expect(tracesUrlFrom({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://b/custom/path' })).toBe('https://b/custom/path');
    expect(() => tracesUrlFrom({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toThrow(ConfigError);
    expect(() => tracesUrlFrom({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'grpc://user:pw@collector' })).toThrow(/OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=\[redacted, \d+ chars\]/);
  });
});
