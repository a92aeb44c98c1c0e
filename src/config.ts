import { z } from 'zod';
import type { ProtectionMode } from './resilience/mode.js';

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);
const rate = z.coerce.number().min(0).max(1);
const fraction = z.coerce.number().gt(0).max(1);
const mode = z.enum(['enforce', 'shadow', 'off']).default('enforce');
const urlList = z
  .string()
  .optional()
  .transform((v) => (v ?? '').split(',').map((u) => u.trim()).filter((u) => u !== ''))
  .pipe(z.array(z.url({ protocol: /^https?$/ })));
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v));

/**
 * Every environment variable the relay reads, with its default. `.env.example`
 * lists the same variables with one line of why each default was chosen.
 */
const envSchema = z.object({
  PORT: int(0, 65535).default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  DOWNSTREAM_URL: optionalString.pipe(z.url({ protocol: /^https?$/ }).optional()),
  DOWNSTREAM_TIMEOUT_MS: int(1).default(5000),
  DOWNSTREAM_CONNECTIONS: int(1, 10_000).default(64),
  REQUEST_DEADLINE_MS: int(1).default(15000),
  RETRY_MAX_ATTEMPTS: int(1, 20).default(4),
  RETRY_BASE_DELAY_MS: int(0).default(100),
  RETRY_MAX_DELAY_MS: int(0).default(2000),
  QUEUE_CAPACITY: int(0).default(100),
  WORKERS: int(1, 10_000).default(5),
  MAX_BODY_BYTES: int(1).default(1_048_576),
  IDEMPOTENCY_TTL_S: int(1).default(86_400),
  ADMIN_TOKEN: optionalString,
  STORE: z.enum(['sqlite', 'redis']).default('sqlite'),
  SQLITE_PATH: z.string().min(1).default('./data/relay.db'),
  REDIS_URL: z.string().min(1).default('redis://127.0.0.1:6379'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  STATS_WINDOW_S: int(1, 3600).default(60),
  FALLBACK_URLS: urlList,
  QUEUE_LOW_PRIORITY_MAX_FILL: fraction.default(0.5),
  BREAKER_MODE: mode,
  BREAKER_WINDOW_MS: int(100).default(10_000),
  BREAKER_MIN_CALLS: int(1).default(20),
  BREAKER_FAILURE_RATE: fraction.default(0.5),
  BREAKER_SLOW_CALL_MS: int(1).default(2500),
  BREAKER_SLOW_CALL_RATE: fraction.default(0.8),
  BREAKER_OPEN_MS: int(1).default(5000),
  BREAKER_HALF_OPEN_PROBES: int(1, 1000).default(3),
  RETRY_BUDGET_MODE: mode,
  RETRY_BUDGET_RATIO: z.coerce.number().min(0).max(10).default(0.5),
  RETRY_BUDGET_MIN_PER_S: z.coerce.number().min(0).default(10),
  RETRY_BUDGET_WINDOW_MS: int(100).default(10_000),
  RATE_LIMIT_MODE: mode,
  RATE_LIMIT_RPS: z.coerce.number().gt(0).default(500),
  RATE_LIMIT_BURST: int(1).default(50),
  RATE_LIMIT_WARMUP_MS: int(0).default(10_000),
  RATE_LIMIT_WARMUP_START_RPS: z.coerce.number().gt(0).default(5),
  AIMD_MODE: mode,
  AIMD_MIN_CONCURRENCY: int(1, 10_000).default(1),
  AIMD_LATENCY_TARGET_MS: int(1).default(1000),
  AIMD_DECREASE_FACTOR: z.coerce.number().gt(0).lt(1).default(0.9),
  AIMD_COOLDOWN_MS: int(0).default(1000),
  AIMD_PLATEAU_ROUND_TRIPS: int(1, 1000).default(40),
  REDIS_PREFIX: z.string().min(1).max(100).default('relay:'),
  JOB_MAX_ATTEMPTS: int(1, 100).default(8),
  JOB_RETRY_BASE_DELAY_MS: int(0).default(1000),
  JOB_RETRY_MAX_DELAY_MS: int(0).default(60_000),
  JOB_LEASE_MS: int(1000).default(30_000),
  JOB_POLL_MS: int(10, 60_000).default(250),
  JOB_RETENTION_S: int(1).default(86_400),
  DLQ_RETENTION_S: int(1).default(1_209_600),
  DLQ_REDRIVE_MAX: int(0, 1000).default(3),
  DLQ_REDRIVE_COOLDOWN_S: int(0).default(300),
  DLQ_REDRIVE_RATE_PER_S: z.coerce.number().gt(0).max(10_000).default(10),
  SIM_FAIL_RATE: rate.default(0.3),
  SIM_LATENCY_MS: int(0).default(20),
});

/** Every variable the relay reads (tests use it to keep a stray export out of a spawned relay). */
export const RELAY_ENV_NAMES: readonly string[] = Object.keys(envSchema.shape);

export interface Config {
  port: number;
  host: string;
  /** Unset: the embedded simulator is started and used. */
  downstreamUrl: string | undefined;
  downstreamTimeoutMs: number;
  /** Keep-alive sockets in the undici pool to the downstream. */
  downstreamConnections: number;
  requestDeadlineMs: number;
  retry: { maxAttempts: number; baseDelayMs: number; maxDelayMs: number };
  queueCapacity: number;
  workers: number;
  maxBodyBytes: number;
  idempotencyTtlS: number;
  adminToken: string | undefined;
  store: 'sqlite' | 'redis';
  sqlitePath: string;
  redisUrl: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  statsWindowS: number;
  sim: { failRate: number; latencyMs: number };
  /** Tried in order when the primary's breaker is open; each has its own breaker. */
  fallbackUrls: string[];
  /** A low-priority request is refused once the queue is this full. */
  lowPriorityMaxFill: number;
  breaker: {
    mode: ProtectionMode;
    windowMs: number;
    minimumCalls: number;
    failureRateThreshold: number;
    slowCallMs: number;
    slowCallRateThreshold: number;
    openMs: number;
    halfOpenProbes: number;
  };
  retryBudget: { mode: ProtectionMode; ratio: number; minRetriesPerSecond: number; windowMs: number };
  rateLimit: { mode: ProtectionMode; ratePerSecond: number; burst: number; warmupMs: number; warmupStartRatePerSecond: number };
  aimd: { mode: ProtectionMode; min: number; latencyTargetMs: number; decreaseFactor: number; cooldownMs: number; plateauRoundTrips: number };
  /** Every Redis key starts with it: instances sharing one Redis share a prefix. */
  redisPrefix: string;
  jobs: { maxAttempts: number; baseDelayMs: number; maxDelayMs: number; leaseMs: number; pollMs: number; retentionS: number };
  dlq: { retentionS: number; redriveMax: number; redriveCooldownS: number; redriveRatePerS: number };
}

/** A bad environment value: its message is the one line printed at start-up. */
export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
}

const LOOPBACK_HOSTS = /^(127(?:\.\d{1,3}){3}|::1|localhost)$/i;

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.test(host);
}

/** Reads and validates the environment; throws ConfigError with one readable line. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = String(issue.path[0] ?? '?');
    throw new ConfigError(`Invalid ${name}=${JSON.stringify(env[name] ?? '')}: ${describeIssue(issue)}`);
  }
  const e = parsed.data;
  if (e.RETRY_MAX_DELAY_MS < e.RETRY_BASE_DELAY_MS) {
    throw new ConfigError(
      `Invalid RETRY_MAX_DELAY_MS=${JSON.stringify(String(e.RETRY_MAX_DELAY_MS))}: expected a number >= RETRY_BASE_DELAY_MS (${e.RETRY_BASE_DELAY_MS})`,
    );
  }
  if (e.JOB_RETRY_MAX_DELAY_MS < e.JOB_RETRY_BASE_DELAY_MS) {
    throw new ConfigError(
      `Invalid JOB_RETRY_MAX_DELAY_MS=${JSON.stringify(String(e.JOB_RETRY_MAX_DELAY_MS))}: expected a number >= JOB_RETRY_BASE_DELAY_MS (${e.JOB_RETRY_BASE_DELAY_MS})`,
    );
  }
  if (e.JOB_LEASE_MS < e.DOWNSTREAM_TIMEOUT_MS + 1000) {
    // A lease shorter than one attempt would hand a job still being delivered to another worker.
    throw new ConfigError(
      `Invalid JOB_LEASE_MS=${JSON.stringify(String(e.JOB_LEASE_MS))}: expected a number >= DOWNSTREAM_TIMEOUT_MS + 1000 (${e.DOWNSTREAM_TIMEOUT_MS + 1000})`,
    );
  }
  if (!e.ADMIN_TOKEN && !isLoopbackHost(e.HOST)) {
    // Like Redis's protected mode: admin routes must not be open to the network.
    throw new ConfigError(
      `Invalid HOST=${JSON.stringify(e.HOST)}: binding a non-loopback address requires ADMIN_TOKEN to be set (admin routes would otherwise be open)`,
    );
  }
  return {
    port: e.PORT,
    host: e.HOST,
    downstreamUrl: e.DOWNSTREAM_URL,
    downstreamTimeoutMs: e.DOWNSTREAM_TIMEOUT_MS,
    downstreamConnections: e.DOWNSTREAM_CONNECTIONS,
    requestDeadlineMs: e.REQUEST_DEADLINE_MS,
    retry: { maxAttempts: e.RETRY_MAX_ATTEMPTS, baseDelayMs: e.RETRY_BASE_DELAY_MS, maxDelayMs: e.RETRY_MAX_DELAY_MS },
    queueCapacity: e.QUEUE_CAPACITY,
    workers: e.WORKERS,
    maxBodyBytes: e.MAX_BODY_BYTES,
    idempotencyTtlS: e.IDEMPOTENCY_TTL_S,
    adminToken: e.ADMIN_TOKEN,
    store: e.STORE,
    sqlitePath: e.SQLITE_PATH,
    redisUrl: e.REDIS_URL,
    logLevel: e.LOG_LEVEL,
    statsWindowS: e.STATS_WINDOW_S,
    sim: { failRate: e.SIM_FAIL_RATE, latencyMs: e.SIM_LATENCY_MS },
    fallbackUrls: e.FALLBACK_URLS,
    lowPriorityMaxFill: e.QUEUE_LOW_PRIORITY_MAX_FILL,
    breaker: {
      mode: e.BREAKER_MODE,
      windowMs: e.BREAKER_WINDOW_MS,
      minimumCalls: e.BREAKER_MIN_CALLS,
      failureRateThreshold: e.BREAKER_FAILURE_RATE,
      slowCallMs: e.BREAKER_SLOW_CALL_MS,
      slowCallRateThreshold: e.BREAKER_SLOW_CALL_RATE,
      openMs: e.BREAKER_OPEN_MS,
      halfOpenProbes: e.BREAKER_HALF_OPEN_PROBES,
    },
    retryBudget: {
      mode: e.RETRY_BUDGET_MODE,
      ratio: e.RETRY_BUDGET_RATIO,
      minRetriesPerSecond: e.RETRY_BUDGET_MIN_PER_S,
      windowMs: e.RETRY_BUDGET_WINDOW_MS,
    },
    rateLimit: {
      mode: e.RATE_LIMIT_MODE,
      ratePerSecond: e.RATE_LIMIT_RPS,
      burst: e.RATE_LIMIT_BURST,
      warmupMs: e.RATE_LIMIT_WARMUP_MS,
      warmupStartRatePerSecond: Math.min(e.RATE_LIMIT_WARMUP_START_RPS, e.RATE_LIMIT_RPS),
    },
    aimd: {
      mode: e.AIMD_MODE,
      min: Math.min(e.AIMD_MIN_CONCURRENCY, e.WORKERS),
      latencyTargetMs: e.AIMD_LATENCY_TARGET_MS,
      decreaseFactor: e.AIMD_DECREASE_FACTOR,
      cooldownMs: e.AIMD_COOLDOWN_MS,
      plateauRoundTrips: e.AIMD_PLATEAU_ROUND_TRIPS,
    },
    redisPrefix: e.REDIS_PREFIX,
    jobs: {
      maxAttempts: e.JOB_MAX_ATTEMPTS,
      baseDelayMs: e.JOB_RETRY_BASE_DELAY_MS,
      maxDelayMs: e.JOB_RETRY_MAX_DELAY_MS,
      leaseMs: e.JOB_LEASE_MS,
      pollMs: e.JOB_POLL_MS,
      retentionS: e.JOB_RETENTION_S,
    },
    dlq: {
      retentionS: e.DLQ_RETENTION_S,
      redriveMax: e.DLQ_REDRIVE_MAX,
      redriveCooldownS: e.DLQ_REDRIVE_COOLDOWN_S,
      redriveRatePerS: e.DLQ_REDRIVE_RATE_PER_S,
    },
  };
}

function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'too_small':
      return `expected a ${issue.origin === 'string' ? 'non-empty string' : `number ${issue.inclusive === false ? '>' : '>='} ${String(issue.minimum)}`}`;
    case 'too_big':
      return `expected a number ${issue.inclusive === false ? '<' : '<='} ${String(issue.maximum)}`;
    case 'invalid_type':
      if (issue.expected === 'int') return 'expected a whole number';
      return issue.expected === 'number' ? 'expected a number' : `expected ${issue.expected}`;
    case 'invalid_value':
      return `expected one of ${issue.values.map((v) => String(v)).join(', ')}`;
    case 'invalid_format':
      return issue.format === 'url' ? 'expected an http(s) URL' : `expected ${issue.format}`;
    default:
      return issue.message;
  }
}
