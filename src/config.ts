import { z } from 'zod';

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);
const rate = z.coerce.number().min(0).max(1);
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
  SIM_FAIL_RATE: rate.default(0.3),
  SIM_LATENCY_MS: int(0).default(20),
});

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
  };
}

function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'too_small':
      return `expected a ${issue.origin === 'string' ? 'non-empty string' : `number >= ${String(issue.minimum)}`}`;
    case 'too_big':
      return `expected a number <= ${String(issue.maximum)}`;
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
