import type { AimdKnobs, BreakerKnobs, RateLimitKnobs, RetryBudgetKnobs, RetryKnobs, RouteSpec } from './routes/route-spec.js';
import { type Env, parseEnv } from './config/env.js';
import { DEFAULT_METHODS } from './config/methods.js';
import { resolveKnobs } from './config/route-knobs.js';
import { type ReadFile, loadRoutesFile, readFileUtf8 } from './config/routes-file.js';

export { ConfigError } from './config/config-error.js';
export { RELAY_ENV_NAMES } from './config/env.js';
export { isLoopbackHost } from './config/loopback.js';
export type { ReadFile } from './config/routes-file.js';

export interface Config {
  port: number;
  host: string;
  /** The HTTP server's limits on a client (see `.env.example` for why each default). */
  server: {
    /** Request line and headers must arrive within this. @default 10000 */
    headersTimeoutMs: number;
    /** The whole request, body included, must arrive within this; the relay's own work is not counted. @default 30000 */
    requestTimeoutMs: number;
    /** An idle keep-alive connection is closed after this. @default 65000 */
    keepAliveTimeoutMs: number;
  };
  /** Unset: the embedded simulator is started and used (and always unset with ROUTES_FILE). */
  downstreamUrl: string | undefined;
  downstreamTimeoutMs: number;
  /** Keep-alive sockets in the undici pool to each downstream; undefined: the route's concurrency ceiling. */
  downstreamConnections: number | undefined;
  requestDeadlineMs: number;
  retry: RetryKnobs;
  queueCapacity: number;
  workers: number;
  maxBodyBytes: number;
  /** A downstream answer larger than this is aborted (502 RESPONSE_TOO_LARGE). @default 10485760 */
  maxResponseBytes: number;
  idempotencyTtlS: number;
  adminToken: string | undefined;
  /** RELAY_SECRET_KEY decoded: the AES-256-GCM key for stored secret headers. undefined: secrets are never stored. */
  secretKey: Buffer | undefined;
  /** The routes file read at start (and on reload); undefined: one `default` route from the environment. */
  routesFile: string | undefined;
  /** The .env file main.ts loads before reading the environment. @default '.env' */
  envFile: string;
  store: 'sqlite' | 'redis';
  sqlitePath: string;
  redisUrl: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** `json`: one pino line per event; `pretty`: readable at a terminal. @default 'json' */
  logFormat: 'json' | 'pretty';
  statsWindowS: number;
  sim: { failRate: number; latencyMs: number };
  /** Tried in order when the primary's breaker is open; each has its own breaker. */
  fallbackUrls: string[];
  /** A low-priority request is refused once the queue is this full. */
  lowPriorityMaxFill: number;
  breaker: BreakerKnobs;
  retryBudget: RetryBudgetKnobs;
  /** The `default` route's, from the environment; null: no rate limit (RATE_LIMIT_RPS unset). */
  rateLimit: RateLimitKnobs | null;
  aimd: AimdKnobs;
  /** Every Redis key starts with it: instances sharing one Redis share a prefix. */
  redisPrefix: string;
  /** STORE=redis (issue 14): how often an instance heartbeats, and how long a lease of rate-limit slots lasts at the full rate. */
  fleet: { heartbeatMs: number; leaseMs: number };
  jobs: {
    maxAttempts: number;
    baseDelayMs: number;
    maxDelayMs: number;
    leaseMs: number;
    pollMs: number;
    retentionS: number;
    /** At most this share of a route's concurrency goes to jobs, redrives and replays. @default 0.5 */
    maxShare: number;
  };
  dlq: { retentionS: number; redriveMax: number; redriveCooldownS: number; redriveRatePerS: number };
  /** Caps on what is stored; a full one refuses new work (429 or 507), never drops. */
  quotas: { jobQueueMax: number; jobQueueMaxBytes: number; dlqMax: number; dlqMaxBytes: number };
  /** Every route, resolved: the routes file's, or the one `default` route from the environment. */
  routes: RouteSpec[];
}

export interface LoadConfigOptions {
  /** How ROUTES_FILE is read. @default node:fs readFileSync (UTF-8) */
  readFile?: ReadFile;
}

/**
 * Reads and validates the environment and, when ROUTES_FILE is set, the routes file.
 * @throws ConfigError whose message has one readable line per mistake (secrets redacted)
 */
export function loadConfig(env: Record<string, string | undefined>, options: LoadConfigOptions = {}): Config {
  const e = parseEnv(env);
  const knobs = resolveKnobs(e);
  const routes =
    e.ROUTES_FILE === undefined ? [defaultRouteFromEnv(e)] : loadRoutesFile(e.ROUTES_FILE, env, e, options.readFile ?? readFileUtf8);
  return {
    port: e.PORT,
    host: e.HOST,
    server: {
      headersTimeoutMs: e.SERVER_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: e.SERVER_REQUEST_TIMEOUT_MS,
      keepAliveTimeoutMs: e.SERVER_KEEP_ALIVE_TIMEOUT_MS,
    },
    downstreamUrl: e.DOWNSTREAM_URL,
    downstreamTimeoutMs: e.DOWNSTREAM_TIMEOUT_MS,
    downstreamConnections: e.DOWNSTREAM_CONNECTIONS,
    requestDeadlineMs: e.REQUEST_DEADLINE_MS,
    retry: knobs.retry,
    queueCapacity: e.QUEUE_CAPACITY,
    workers: e.WORKERS,
    maxBodyBytes: e.MAX_BODY_BYTES,
    maxResponseBytes: e.MAX_RESPONSE_BYTES,
    idempotencyTtlS: e.IDEMPOTENCY_TTL_S,
    adminToken: e.ADMIN_TOKEN,
    secretKey: e.RELAY_SECRET_KEY,
    routesFile: e.ROUTES_FILE,
    envFile: e.ENV_FILE,
    store: e.STORE,
    sqlitePath: e.SQLITE_PATH,
    redisUrl: e.REDIS_URL,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    statsWindowS: e.STATS_WINDOW_S,
    sim: { failRate: e.SIM_FAIL_RATE, latencyMs: e.SIM_LATENCY_MS },
    fallbackUrls: e.FALLBACK_URLS,
    lowPriorityMaxFill: e.QUEUE_LOW_PRIORITY_MAX_FILL,
    breaker: knobs.breaker,
    retryBudget: knobs.retryBudget,
    rateLimit: knobs.rateLimit,
    aimd: knobs.aimd,
    redisPrefix: e.REDIS_PREFIX,
    fleet: { heartbeatMs: e.FLEET_HEARTBEAT_MS, leaseMs: e.FLEET_LEASE_MS },
    jobs: {
      maxAttempts: e.JOB_MAX_ATTEMPTS,
      baseDelayMs: e.JOB_RETRY_BASE_DELAY_MS,
      maxDelayMs: e.JOB_RETRY_MAX_DELAY_MS,
      leaseMs: e.JOB_LEASE_MS,
      pollMs: e.JOB_POLL_MS,
      retentionS: e.JOB_RETENTION_S,
      maxShare: e.JOB_MAX_SHARE,
    },
    dlq: {
      retentionS: e.DLQ_RETENTION_S,
      redriveMax: e.DLQ_REDRIVE_MAX,
      redriveCooldownS: e.DLQ_REDRIVE_COOLDOWN_S,
      redriveRatePerS: e.DLQ_REDRIVE_RATE_PER_S,
    },
    quotas: { jobQueueMax: e.JOB_QUEUE_MAX, jobQueueMaxBytes: e.JOB_QUEUE_MAX_BYTES, dlqMax: e.DLQ_MAX, dlqMaxBytes: e.DLQ_MAX_BYTES },
    routes,
  };
}

/** The one route without a routes file: POST /relay to DOWNSTREAM_URL (or the embedded simulator), as before routes. */
function defaultRouteFromEnv(e: Env): RouteSpec {
  return {
    name: 'default',
    target: e.DOWNSTREAM_URL,
    methods: [...DEFAULT_METHODS],
    ...resolveKnobs(e),
    idempotency: { header: 'Idempotency-Key', generate: false },
    headers: { set: {}, remove: [], secret: [] },
    clients: [],
    fallbacks: [],
    fallbackUrls: e.FALLBACK_URLS,
  };
}
