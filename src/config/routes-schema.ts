import { z } from 'zod';
import { PROTECTION_MODES, fileKnob } from './knobs.js';

/** A route's name: the path segment after /relay/. */
export const ROUTE_NAME = /^[a-z0-9-]{1,32}$/;
/** An RFC 9110 token: a valid header name or method. */
export const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** http(s), no whitespace, no query, no fragment (a target is a base the client's path and query are appended to). */
export const TARGET_URL = /^https?:\/\/[^\s?#]+$/;

const headerName = z.string().regex(HTTP_TOKEN, { error: 'expected a header name (letters, digits and !#$%&\'*+-.^_`|~)' });
const mode = z.enum(PROTECTION_MODES).optional().describe('enforce, shadow (report only), canary (enforce for canaryPercent of requests) or off. Default: the *_MODE variable.');
const group = <T extends z.core.$ZodLooseShape>(shape: T, description: string) => z.strictObject(shape).optional().describe(description);

/** One route as written in a routes file; every knob left out takes its variable's value. */
export const routeSchema = z
  .strictObject({
    name: z
      .string()
      .regex(ROUTE_NAME, { error: 'expected 1-32 characters, each a-z, 0-9 or -' })
      .describe('Clients call /relay/{name}/...; "batch" is reserved, "default" also answers POST /relay.'),
    target: z
      .string()
      .regex(TARGET_URL, { error: 'expected an http(s) URL with no query (?) or fragment (#)' })
      .describe("Base URL: the client's path and query are appended to it."),
    methods: z
      .array(z.string().regex(HTTP_TOKEN, { error: 'expected an HTTP method name' }))
      .min(1)
      .optional()
      .describe('Methods the route accepts (others get 405). Default: every method but TRACE and CONNECT.'),
    timeoutMs: fileKnob('DOWNSTREAM_TIMEOUT_MS'),
    retry: group(
      { maxAttempts: fileKnob('RETRY_MAX_ATTEMPTS'), baseDelayMs: fileKnob('RETRY_BASE_DELAY_MS'), maxDelayMs: fileKnob('RETRY_MAX_DELAY_MS') },
      'Attempts and full-jitter backoff.',
    ),
    idempotency: group(
      {
        header: headerName.optional().describe('The header the key goes out under. Default: Idempotency-Key.'),
        generate: z.boolean().optional().describe('Make up a key (relay-<uuid>) for a request without one, so POST and PATCH may be retried. Default: false.'),
      },
      'How the idempotency key is sent.',
    ),
    headers: group(
      {
        set: z
          .record(headerName, z.string())
          .optional()
          .describe('Headers the relay sets, replacing the client\'s (secrets). Values may use ${VAR} from the environment; $${ is a literal ${.'),
        remove: z.array(headerName).optional().describe("Headers removed from the client's request."),
        secret: z.array(headerName).optional().describe('Headers treated like Authorization: redacted, stored only encrypted.'),
      },
      'Header rewriting.',
    ),
    rateLimit: group(
      {
        mode,
        canaryPercent: fileKnob('RATE_LIMIT_CANARY_PERCENT'),
        rps: fileKnob('RATE_LIMIT_RPS'),
        burst: fileKnob('RATE_LIMIT_BURST'),
        warmupMs: fileKnob('RATE_LIMIT_WARMUP_MS'),
        warmupStartRps: fileKnob('RATE_LIMIT_WARMUP_START_RPS'),
      },
      'Token bucket on calls to this route. Absent: no rate limit.',
    ),
    concurrency: group({ max: fileKnob('WORKERS') }, 'Requests in flight to this route at once (AIMD may hold fewer).'),
    breaker: group(
      {
        mode,
        canaryPercent: fileKnob('BREAKER_CANARY_PERCENT'),
        windowMs: fileKnob('BREAKER_WINDOW_MS'),
        minCalls: fileKnob('BREAKER_MIN_CALLS'),
        failureRate: fileKnob('BREAKER_FAILURE_RATE'),
        slowCallMs: fileKnob('BREAKER_SLOW_CALL_MS'),
        slowCallRate: fileKnob('BREAKER_SLOW_CALL_RATE'),
        consecutiveFailures: fileKnob('BREAKER_CONSECUTIVE_FAILURES'),
        openMs: fileKnob('BREAKER_OPEN_MS'),
        openMaxMs: fileKnob('BREAKER_OPEN_MAX_MS'),
        halfOpenProbes: fileKnob('BREAKER_HALF_OPEN_PROBES'),
      },
      'Circuit breaker.',
    ),
    retryBudget: group(
      {
        mode,
        canaryPercent: fileKnob('RETRY_BUDGET_CANARY_PERCENT'),
        ratio: fileKnob('RETRY_BUDGET_RATIO'),
        minPerS: fileKnob('RETRY_BUDGET_MIN_PER_S'),
        windowMs: fileKnob('RETRY_BUDGET_WINDOW_MS'),
      },
      'Retry budget.',
    ),
    aimd: group(
      {
        mode,
        canaryPercent: fileKnob('AIMD_CANARY_PERCENT'),
        minConcurrency: fileKnob('AIMD_MIN_CONCURRENCY'),
        latencyTargetMs: fileKnob('AIMD_LATENCY_TARGET_MS'),
        decreaseFactor: fileKnob('AIMD_DECREASE_FACTOR'),
      },
      'Adaptive concurrency.',
    ),
    queue: group(
      { capacity: fileKnob('QUEUE_CAPACITY'), lowPriorityMaxFill: fileKnob('QUEUE_LOW_PRIORITY_MAX_FILL') },
      "This route's own queue.",
    ),
    clients: z
      .array(z.string())
      .optional()
      .describe('Tokens callers present in X-Relay-Token (secrets; ${VAR} allowed). Required with headers.set unless HOST is loopback.'),
    fallbacks: z.array(z.string()).optional().describe("Other routes, by name, tried in order while this route's breaker is open."),
  })
  .describe('One downstream.');

export type RouteInput = z.output<typeof routeSchema>;

/** A routes file (JSON, or YAML for .yaml/.yml). */
export const routesFileSchema = z
  .strictObject({
    $schema: z.string().optional().describe('This schema, for editors.'),
    routes: z.array(z.unknown()).min(1).describe('The routes, each validated on its own.'),
  })
  .describe('Resilient Relay routes file (ROUTES_FILE).');

/** The published JSON Schema (docs/routes.schema.json), from the same zod schemas that validate a file. */
export function routesJsonSchema(): Record<string, unknown> {
  const file = z.strictObject({ ...routesFileSchema.shape, routes: z.array(routeSchema).min(1).describe('The routes.') });
  return z.toJSONSchema(file.meta({ title: 'Resilient Relay routes file', description: routesFileSchema.description }), {
    io: 'input',
    target: 'draft-2020-12',
  });
}

/** The text of docs/routes.schema.json. */
export function routesJsonSchemaText(): string {
  return `${JSON.stringify(routesJsonSchema(), null, 2)}\n`;
}
