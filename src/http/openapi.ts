import { Router } from 'express';
import { methodNotAllowed } from './routing.js';

/**
 * `GET /openapi.json`: an OpenAPI 3.1 document of every route the relay serves
 * (test/openapi.test.ts validates it against the OpenAPI schema and checks that
 * every route the app registers is in it). The prose version, with what is not
 * yet implemented, is docs/http-api.md. Built in code so `npm run build` ships it
 * with no file to copy.
 */
export function openapiRouter(): Router {
  const router = Router();
  const text = JSON.stringify(openapiDocument());
  router
    .route('/openapi.json')
    .get((_req, res) => {
      res.type('application/json').send(text);
    })
    .all(methodNotAllowed(['GET']));
  return router;
}

type Json = Record<string, unknown>;

const problem = (description: string): Json => ({ description, content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } });
const json = (description: string, schema: Json): Json => ({ description, content: { 'application/json': { schema } } });
const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const pathParam = (name: string, description: string): Json => ({ name, in: 'path', required: true, description, schema: { type: 'string' } });
/** Admin routes: loopback clients without ADMIN_TOKEN, else `Authorization: Bearer <ADMIN_TOKEN>`. */
const ADMIN: Json[] = [{ adminToken: [] }, {}];
const ADMIN_NOTE = ' Admin: with ADMIN_TOKEN set, `Authorization: Bearer <token>` (401 without); without it, loopback clients only (403).';
const adminErrors = { '401': { $ref: '#/components/responses/Unauthorized' }, '403': { $ref: '#/components/responses/Forbidden' } };

/** The downstream's answer, passed through (any status and content type), or the relay's own problem. */
function relayOperation(summary: string, withBody: boolean): Json {
  return {
    tags: ['relay'],
    summary,
    description:
      'Forwards the request to the route\'s target with retries (full jitter, inside REQUEST_DEADLINE_MS), the route\'s queue, breaker, rate limit and adaptive concurrency. The downstream\'s answer (status, headers less hop-by-hop, body) is passed through byte for byte. With `Prefer: respond-async` the request is stored as a job and answered 202.',
    parameters: [
      { $ref: '#/components/parameters/IdempotencyKey' },
      { $ref: '#/components/parameters/Prefer' },
      { $ref: '#/components/parameters/Priority' },
      { $ref: '#/components/parameters/RelayToken' },
      { $ref: '#/components/parameters/RequestId' },
    ],
    ...(withBody ? { requestBody: { required: false, description: 'Any content type, forwarded byte for byte (at most MAX_BODY_BYTES).', content: { '*/*': { schema: {} } } } } : {}),
    responses: {
      '202': json('Stored as an async job (`Prefer: respond-async`); `Location: /jobs/{id}`.', ref('JobAccepted')),
      '400': problem('Bad Idempotency-Key, X-Relay-Priority or path (`BAD_PATH`); `SECRET_KEY_REQUIRED` for an async request carrying secrets without RELAY_SECRET_KEY.'),
      '401': problem('The route carries a credential and X-Relay-Token is missing or wrong.'),
      '404': problem('No such route.'),
      '405': problem('The route does not allow this method (`Allow` lists those it does).'),
      '409': problem('The Idempotency-Key is in flight (`Retry-After: 1`), held by a job (`Location`), or its first outcome is unknown (`IDEMPOTENCY_OUTCOME_UNKNOWN`).'),
      '413': problem('The body exceeds MAX_BODY_BYTES.'),
      '422': problem('`IDEMPOTENCY_KEY_REUSED`: the key was used with a different request.'),
      '429': problem('`QUEUE_FULL` (`Retry-After`), or a full job queue for an async request.'),
      '502': problem('`UPSTREAM_FAILED` or `RESPONSE_TOO_LARGE`: every attempt failed; the problem has `attempts`, `lastError`, `delivery` and `dlqId`.'),
      '503': problem('`CIRCUIT_OPEN` or `RATE_LIMITED` (`Retry-After`), `STORE_UNAVAILABLE`, or shutting down.'),
      '504': problem('`UPSTREAM_TIMEOUT` (the last attempt timed out) or `DEADLINE_EXCEEDED`; the problem has `attempts` and `dlqId` when attempts were made.'),
      '507': problem('`DLQ_FULL`: new async work is refused while the DLQ is full.'),
      default: { description: "The downstream's own answer, passed through unchanged, with `X-Relay-Attempts`, `X-Relay-Upstream` and `X-Request-Id`." },
    },
  };
}

/** Every method a route may allow (`methods` in the routes file; default all but TRACE and CONNECT). */
function relayPath(summary: string, parameters: Json[]): Json {
  const path: Json = { parameters };
  for (const method of ['get', 'post', 'put', 'patch', 'delete', 'head', 'options']) {
    path[method] = { ...relayOperation(`${summary} (${method.toUpperCase()})`, method !== 'get' && method !== 'head'), operationId: `${summary.split(' ')[0]!.replace(/\W/g, '')}${method}` };
  }
  return path;
}

function operation(tag: string, summary: string, responses: Json, extra: Json = {}): Json {
  return { tags: [tag], summary, ...extra, responses };
}

function admin(tag: string, summary: string, responses: Json, extra: Json = {}): Json {
  return operation(tag, summary + ADMIN_NOTE, { ...responses, ...adminErrors }, { security: ADMIN, ...extra });
}

const health = (description: string): Json => ({
  description,
  content: { 'application/health+json': { schema: { type: 'object', required: ['status'], properties: { status: { enum: ['pass', 'fail'] }, checks: { type: 'object' } } } } },
});

/** POST /admin/*: runtime control of the routes (each logged and counted in relay_admin_actions_total). */
function controlPaths(): Json {
  const routeControl = {
    type: 'object',
    required: ['route', 'control', 'breakers'],
    properties: {
      route: { type: 'string' },
      control: { type: 'object', required: ['breaker', 'paused'], properties: { breaker: { enum: ['auto', 'open', 'closed'] }, paused: { type: 'boolean' } } },
      breakers: { type: 'object', description: 'The state of each breaker the route tries, by label.', additionalProperties: { enum: ['closed', 'open', 'half_open'] } },
    },
  };
  const answers = {
    '200': json("The route's control state.", routeControl),
    '404': problem('No such route.'),
    '503': problem('`STORE_UNAVAILABLE` (STORE=redis): Redis, where the fleet keeps the hold, could not confirm it; nothing was applied here.'),
  };
  const name = pathParam('name', 'The route name.');
  return {
    '/admin/routes/{name}/breaker': {
      post: admin('operations', "Force the route's own breakers open (503 `CIRCUIT_OPEN`, nothing sent) or closed (everything sent, nothing opens), or back to automatic from a clean closed state. Acts in every BREAKER_MODE but off.", { ...answers, '400': problem('Not `{"state": "open" | "closed" | "auto"}`.') }, {
        operationId: 'forceBreaker',
        parameters: [name],
        requestBody: { required: true, content: { 'application/json': { schema: { type: 'object', required: ['state'], properties: { state: { enum: ['open', 'closed', 'auto'] } } } } } },
      }),
    },
    '/admin/routes/{name}/pause': {
      post: admin('operations', "Hold the route's deliveries: its queue keeps accepting up to capacity, a synchronous request still held at its deadline gets 503 `ROUTE_PAUSED` (`Retry-After`), async jobs wait.", answers, { operationId: 'pauseRoute', parameters: [name] }),
    },
    '/admin/routes/{name}/resume': {
      post: admin('operations', 'Release a paused route: held requests and jobs go.', answers, { operationId: 'resumeRoute', parameters: [name] }),
    },
    '/admin/reload': {
      post: admin('operations', 'Read ENV_FILE and ROUTES_FILE again and replace the routes at once (also on SIGHUP); requests in flight finish on the routes they were admitted with.', {
        '200': json('What changed.', { type: 'object', required: ['routes', 'added', 'changed', 'removed', 'unchanged'], properties: Object.fromEntries(['routes', 'added', 'changed', 'removed', 'unchanged'].map((k) => [k, { type: 'array', items: { type: 'string' } }])) }),
        '422': problem('`ROUTES_INVALID`: the file does not validate; `errors` has one line per mistake and the routes loaded before stay.'),
      }, { operationId: 'reloadRoutes' }),
    },
  };
}

/** The document itself: a plain object, so a test can validate it without a server. */
export function openapiDocument(): Json {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Resilient Relay',
      version: '0.1.0',
      summary: 'An HTTP relay that makes calls through an unreliable downstream dependable.',
      description: 'The HTTP contract in prose, with what is not yet implemented, is docs/http-api.md in the repository.',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: 'http://127.0.0.1:3000', description: 'the default PORT and HOST' }],
    tags: [
      { name: 'relay', description: 'Forwarding, sync and async' },
      { name: 'jobs', description: 'Async jobs' },
      { name: 'dlq', description: 'The dead-letter queue (admin)' },
      { name: 'operations', description: 'Health, readiness, stats, metrics, routes, this document' },
    ],
    paths: {
      '/relay': relayPath('relayDefault: the `default` route', []),
      '/relay/{route}': relayPath('relayRoute: the route\'s target exactly', [pathParam('route', 'A route name from ROUTES_FILE (`[a-z0-9-]{1,32}`).')]),
      '/relay/{route}/{rest}': relayPath('relayRouteRest: the route\'s target plus rest', [
        pathParam('route', 'A route name from ROUTES_FILE.'),
        pathParam('rest', 'The rest of the path, appended to the target with one `/` (it may contain further `/` segments; `.`/`..`, empty segments, `%2f`, `%5c` and control characters are refused with 400 `BAD_PATH`).'),
      ]),
      '/relay/batch': {
        post: operation(
          'relay',
          'Up to 100 async items, each answered on its own',
          {
            '202': json('Every item was stored as a job (or replayed).', ref('BatchAnswer')),
            '207': json('Some items were refused; each has its own status and problem.', ref('BatchAnswer')),
            '400': problem('Not `{"items": [...]}` with 1 to 100 items, or not JSON.'),
            '415': problem('Not `Content-Type: application/json`.'),
          },
          { operationId: 'relayBatch', requestBody: { required: true, content: { 'application/json': { schema: ref('Batch') } } } },
        ),
      },
      '/jobs/{id}': {
        get: operation(
          'jobs',
          'An async job: state, attempts, the downstream\'s answer or the DLQ id (the id is the capability)',
          { '200': json('The job.', ref('Job')), '404': problem('No such job.') },
          { operationId: 'getJob', parameters: [pathParam('id', 'The job id from the 202 answer.')] },
        ),
      },
      '/jobs': {
        get: admin('jobs', 'Job counts per state.', { '200': json('Counts.', { type: 'object', properties: { counts: { type: 'object', additionalProperties: { type: 'integer' } } } }) }, { operationId: 'jobCounts' }),
      },
      '/dlq': {
        get: admin(
          'dlq',
          'DLQ entries without their bodies, oldest first.',
          { '200': json('A page.', { type: 'object', required: ['items', 'nextCursor'], properties: { items: { type: 'array', items: ref('DlqEntry') }, nextCursor: { type: ['string', 'null'] } } }), '400': problem('Bad limit, cursor or reason.') },
          {
            operationId: 'listDlq',
            parameters: [
              { name: 'limit', in: 'query', schema: { type: 'integer', default: 50 }, description: 'Clamped to 1-100.' },
              { name: 'cursor', in: 'query', schema: { type: 'string' }, description: 'The `nextCursor` of the previous page.' },
              { name: 'reason', in: 'query', schema: { enum: ['permanent', 'transient'] } },
            ],
          },
        ),
      },
      '/dlq/{id}': {
        parameters: [pathParam('id', 'The DLQ entry id (the `dlqId` of a 502/504 problem or a dead job).')],
        get: admin('dlq', 'One DLQ entry, with its body.', { '200': json('The entry.', ref('DlqEntry')), '404': problem('No such entry.') }, { operationId: 'getDlqEntry' }),
        delete: admin('dlq', 'Delete an entry.', { '204': { description: 'Deleted.' }, '404': problem('No such entry.') }, { operationId: 'deleteDlqEntry' }),
      },
      '/dlq/{id}/replay': {
        post: admin(
          'dlq',
          'Run the entry through its route again now, as stored or with changes (the entry keeps the original and records each edit); on success it leaves the DLQ.',
          {
            '200': json('Delivered.', { type: 'object', required: ['outcome', 'status'], properties: { outcome: { const: 'delivered' }, status: { type: 'integer' }, attempts: { type: 'integer' }, edit: ref('DlqEdit'), body: {}, bodyBase64: { type: 'string' } } }),
            '400': problem('A bad replay body (the member is named): an unknown member, two body members, a hop-by-hop or relay-owned header, a malformed key.'),
            '404': problem('No such entry.'),
            '409': problem('`DELIVERY_UNKNOWN` (a keyless entry, or an edit under another key, that may duplicate a delivery: send `{"force": true}`), `REPLAY_IN_PROGRESS`, `ROUTE_GONE`, `EDIT_HISTORY_FULL`, or the new key\'s own 409s.'),
            '415': problem('A body that is not JSON.'),
            '422': problem('`SECRET_KEY_REQUIRED` (the entry\'s secrets were not stored or no longer decrypt), `EDIT_NEEDS_NEW_KEY` (a changed body or content type under the entry\'s key) or `IDEMPOTENCY_KEY_REUSED` (the new key is bound to another request).'),
            '502': problem('Failed again; the new attempts are appended to the entry.'),
            '504': problem('Timed out again; the new attempts are appended to the entry.'),
          },
          {
            operationId: 'replayDlqEntry',
            parameters: [pathParam('id', 'The DLQ entry id.')],
            requestBody: { required: false, content: { 'application/json': { schema: ref('ReplayBody') } } },
          },
        ),
      },
      '/dlq/redrive': {
        post: admin(
          'dlq',
          'Move matching entries back to the job queue at a bounded rate; 202 with a task.',
          { '202': json('The task (`Location: /dlq/redrive/{taskId}`).', ref('RedriveTask')), '400': problem('A bad filter.'), '415': problem('A body that is not JSON.') },
          { operationId: 'startRedrive', requestBody: { required: false, content: { 'application/json': { schema: ref('RedriveFilter') } } } },
        ),
        get: admin('dlq', 'The redrive tasks of this instance.', { '200': json('Tasks.', { type: 'object', properties: { items: { type: 'array', items: ref('RedriveTask') } } }) }, { operationId: 'listRedrives' }),
      },
      '/dlq/redrive/{taskId}': {
        get: admin('dlq', 'One redrive task of this instance.', { '200': json('The task.', ref('RedriveTask')), '404': problem('No such task on this instance.') }, {
          operationId: 'getRedrive',
          parameters: [pathParam('taskId', 'From the 202 answer of POST /dlq/redrive.')],
        }),
      },
      '/routes': {
        get: admin('operations', 'The routes as loaded, every secret shown as "[redacted]".', { '200': json('The routes.', { type: 'object' }) }, { operationId: 'listRoutes' }),
      },
      ...controlPaths(),
      '/health': { get: operation('operations', 'Liveness', { '200': health('`{"status":"pass"}` while the process can serve.') }, { operationId: 'health' }) },
      '/ready': {
        get: operation('operations', 'Readiness', { '200': health('`pass`: the store answers and the relay accepts work; `warn` (STORE=redis): Redis is lost, `checks` name it, and unkeyed requests are still served.'), '503': health('`fail`, with `checks` naming what failed.') }, { operationId: 'ready' }),
      },
      '/stats': {
        get: operation('operations', 'RED over a sliding window, totals, queue, amplification, DLQ size, per route', { '200': json('The stats document.', ref('Stats')) }, { operationId: 'stats' }),
      },
      '/stats/stream': {
        get: admin(
          'operations',
          'Server-sent events: `event: stats` with the /stats document on one `data:` line at least once a second, a comment line every 15 s; ends when the relay shuts down.',
          {
            '200': { description: 'An event stream.', content: { 'text/event-stream': { schema: { type: 'string' } } } },
            '503': problem('`TOO_MANY_STREAMS`: 16 streams are open already; or the relay is shutting down.'),
          },
          { operationId: 'statsStream' },
        ),
      },
      '/dashboard': {
        get: operation('operations', 'The live operator page (public; its data comes from the admin routes with the operator\'s token)', { '200': { description: 'HTML.', content: { 'text/html': { schema: { type: 'string' } } } } }, { operationId: 'dashboard' }),
      },
      '/dashboard/{asset}': {
        get: operation(
          'operations',
          'A script, style sheet or icon of the dashboard',
          { '200': { description: 'The file.', content: { '*/*': { schema: { type: 'string' } } } }, '404': problem('No such file.') },
          { operationId: 'dashboardAsset', parameters: [pathParam('asset', 'A file name, e.g. `dashboard.js`.')] },
        ),
      },
      '/metrics': {
        get: operation('operations', 'Prometheus text exposition (`relay_*` families)', { '200': { description: 'Prometheus text.', content: { 'text/plain': { schema: { type: 'string' } } } } }, { operationId: 'metrics' }),
      },
      '/openapi.json': {
        get: operation('operations', 'This document', { '200': json('OpenAPI 3.1.', { type: 'object' }) }, { operationId: 'openapi' }),
      },
    },
    components: {
      securitySchemes: { adminToken: { type: 'http', scheme: 'bearer', description: 'ADMIN_TOKEN (at least 16 characters).' } },
      parameters: {
        IdempotencyKey: { name: 'Idempotency-Key', in: 'header', schema: { type: 'string', minLength: 1, maxLength: 257 }, description: '1-255 printable ASCII characters (a quoted structured-field string `"abc"` means `abc`); a retried call never runs twice.' },
        Prefer: { name: 'Prefer', in: 'header', schema: { type: 'string' }, description: '`respond-async`: store as a job and answer 202. `respond-async, wait=N`: try synchronously for up to N seconds, then answer 202 with the job (an answer within N is returned as usual).' },
        Priority: { name: 'X-Relay-Priority', in: 'header', schema: { enum: ['high', 'normal', 'low'] }, description: 'Queue class; low is shed first.' },
        RelayToken: { name: 'X-Relay-Token', in: 'header', schema: { type: 'string' }, description: 'One of the route\'s `clients` tokens, for a route that carries a credential; never forwarded.' },
        RequestId: { name: 'X-Request-Id', in: 'header', schema: { type: 'string', pattern: '^[\\w.:@-]{1,128}$' }, description: 'Echoed back and forwarded; a UUID is made up when absent or malformed.' },
      },
      responses: {
        Unauthorized: problem('ADMIN_TOKEN is set and the bearer token is missing or wrong.'),
        Forbidden: problem('No ADMIN_TOKEN and the client is not on loopback (or came through a proxy).'),
      },
      schemas: {
        Problem: {
          type: 'object',
          description: 'RFC 9457 problem details; match on `code`.',
          required: ['type', 'title', 'status', 'code'],
          properties: {
            type: { type: 'string' },
            title: { type: 'string' },
            status: { type: 'integer' },
            detail: { type: 'string' },
            code: { type: 'string', examples: ['QUEUE_FULL', 'CIRCUIT_OPEN', 'UPSTREAM_FAILED'] },
            attempts: { type: 'integer' },
            lastError: { type: 'string' },
            dlqId: { type: ['string', 'null'] },
            delivery: { enum: ['failed', 'unknown', 'not_sent'] },
          },
        },
        JobAccepted: { type: 'object', required: ['jobId', 'state', 'location'], properties: { jobId: { type: 'string' }, state: { type: 'string' }, location: { type: 'string' } } },
        Attempt: {
          type: 'object',
          properties: { at: { type: 'string' }, outcome: { type: 'string' }, status: { type: 'integer' }, durationMs: { type: 'number' }, sent: { enum: ['no', 'unknown', 'yes'] } },
        },
        Job: {
          type: 'object',
          required: ['id', 'state', 'attempts'],
          properties: {
            id: { type: 'string' },
            state: { enum: ['queued', 'in_flight', 'delivered', 'dead'] },
            priority: { enum: ['high', 'normal', 'low'] },
            idempotencyKey: { type: 'string' },
            createdAt: { type: 'string' },
            updatedAt: { type: 'string' },
            nextAttemptAt: { type: ['string', 'null'] },
            attempts: { type: 'array', items: ref('Attempt') },
            lastError: { type: ['string', 'null'] },
            dlqId: { type: ['string', 'null'] },
            response: { type: ['object', 'null'] },
          },
        },
        ReplayBody: {
          type: 'object',
          additionalProperties: false,
          description: 'None, or changes: at most one of body, bodyText and bodyBase64. A changed body or content type needs a new idempotencyKey (or null) when the entry has a key.',
          properties: {
            force: { type: 'boolean', description: 'Replay even though the first delivery may have been processed and the downstream cannot tell this one from it.' },
            body: { description: 'Any JSON value, sent as its exact text; a string under a content type that is not JSON is sent as the text itself; null is an empty body.' },
            bodyText: { type: 'string', description: 'Sent as UTF-8.' },
            bodyBase64: { type: 'string', contentEncoding: 'base64' },
            contentType: { type: 'string', description: 'Replaces Content-Type.' },
            headers: { type: 'object', additionalProperties: { type: 'string' }, description: 'Added or replaced; hop-by-hop, Host, Content-Length, Content-Type, the key header, X-Request-Id, traceparent and X-Relay-* are refused.' },
            idempotencyKey: { type: ['string', 'null'], description: 'Send under this key (a new operation); null: none, or a fresh one where the route makes them up.' },
          },
        },
        DlqEdit: {
          type: 'object',
          required: ['at', 'changed', 'firstAttempt'],
          properties: {
            at: { type: 'string' },
            requestId: { type: ['string', 'null'] },
            changed: { type: 'array', items: { enum: ['body', 'contentType', 'headers', 'idempotencyKey'] } },
            body: { type: 'object', properties: { bytes: { type: 'integer' }, sha256: { type: 'string' } } },
            contentType: { type: 'string' },
            headers: { type: 'object', description: 'Secrets shown as "[redacted]", never stored in clear.' },
            idempotencyKey: { type: ['string', 'null'] },
            firstAttempt: { type: 'integer', description: 'Index in attempts of the edited request\'s first attempt.' },
          },
        },
        DlqEntry: {
          type: 'object',
          required: ['id', 'createdAt', 'route', 'method', 'path', 'idempotencyKey', 'attempts', 'lastError'],
          properties: {
            id: { type: 'string' },
            createdAt: { type: 'string' },
            route: { type: 'string' },
            method: { type: 'string' },
            path: { type: 'string' },
            idempotencyKey: { type: ['string', 'null'] },
            contentType: { type: ['string', 'null'] },
            headers: { type: 'object', description: 'Secrets shown as "[redacted]".' },
            body: { description: 'The text for a textual content type (JSON as JSON); only on GET /dlq/{id}.' },
            bodyBase64: { type: 'string' },
            attempts: { type: 'array', items: ref('Attempt') },
            edits: { type: 'array', items: ref('DlqEdit'), description: 'Edited replays, oldest first; only on GET /dlq/{id}.' },
            lastError: { type: ['string', 'null'] },
            reason: { enum: ['permanent', 'transient'] },
            delivery: { enum: ['failed', 'unknown', 'not_sent'] },
          },
        },
        RedriveFilter: {
          type: 'object',
          additionalProperties: false,
          properties: {
            reason: { enum: ['permanent', 'transient'] },
            olderThanS: { type: 'integer', minimum: 0 },
            limit: { type: 'integer', minimum: 1, maximum: 100_000, default: 1000 },
            ratePerSecond: { type: 'number', minimum: 0.01, maximum: 10_000 },
          },
        },
        RedriveTask: {
          type: 'object',
          properties: {
            id: { type: 'string' },
            origin: { enum: ['auto', 'manual'] },
            state: { enum: ['running', 'completed', 'failed', 'cancelled'] },
            moved: { type: 'integer' },
            skipped: { type: 'integer' },
          },
        },
        Batch: {
          type: 'object',
          required: ['items'],
          additionalProperties: false,
          properties: {
            items: {
              type: 'array',
              minItems: 1,
              maxItems: 100,
              items: {
                type: 'object',
                properties: {
                  route: { type: 'string', default: 'default' },
                  method: { type: 'string', default: 'POST' },
                  path: { type: 'string' },
                  query: { type: 'string' },
                  headers: { type: 'object', additionalProperties: { type: 'string' } },
                  idempotencyKey: { type: 'string' },
                  priority: { enum: ['high', 'normal', 'low'] },
                  contentType: { type: 'string' },
                  body: { description: 'Any JSON value, forwarded as the exact bytes it had in the batch.' },
                  bodyText: { type: 'string' },
                  bodyBase64: { type: 'string' },
                },
              },
            },
          },
        },
        BatchAnswer: {
          type: 'object',
          properties: {
            items: {
              type: 'array',
              items: { type: 'object', required: ['index', 'status'], properties: { index: { type: 'integer' }, status: { type: 'integer' }, jobId: { type: 'string' }, location: { type: 'string' }, problem: ref('Problem') } },
            },
          },
        },
        Stats: {
          type: 'object',
          properties: {
            rate: { type: 'object' },
            errors: { type: 'object' },
            duration: { type: 'object' },
            totals: { type: 'object' },
            queue: { type: 'object' },
            downstream: { type: 'object', properties: { attempts: { type: 'integer' }, retries: { type: 'integer' }, amplification: { type: 'number' } } },
            dlq: { type: 'object' },
            idempotency: { type: 'object' },
            routes: { type: 'object', additionalProperties: { type: 'object' } },
          },
        },
      },
    },
  };
}
