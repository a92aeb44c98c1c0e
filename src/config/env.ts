import { z } from 'zod';
import { ConfigError } from './config-error.js';
import { describeIssue } from './issue-text.js';
import { PROTECTION_MODES, envKnob, envOptionalKnob } from './knobs.js';
import { isLoopbackHost } from './loopback.js';
import { redacted, redactUserInfo } from './redact.js';

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);
const rate = z.coerce.number().min(0).max(1);
const fraction = z.coerce.number().gt(0).max(1);
const mode = z.enum(PROTECTION_MODES).default('enforce');
const httpUrl = z.url({ protocol: /^https?$/ });
const urlList = z
  .string()
  .optional()
  .transform((v) => (v ?? '').split(',').map((u) => u.trim()).filter((u) => u !== ''))
  .pipe(z.array(httpUrl));
/** Empty counts as unset, so `NAME=` in a .env file means "use the default". */
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v));

const ADMIN_TOKEN_RULE = 'expected at least 16 characters with no whitespace';
const SECRET_KEY_RULE = 'expected base64 of exactly 32 bytes (make one with: openssl rand -base64 32)';

/** Strict base64 (padding optional) that decodes to exactly 32 bytes. */
function isBase64Key32(value: string): boolean {
  return /^[A-Za-z0-9+/]{43}=?$/.test(value) && Buffer.from(value, 'base64').length === 32;
}

/**
 * Every environment variable the relay reads, with its default. `.env.example`
 * lists the same variables with one line of why each default was chosen.
 */
export const envSchema = z.object({
  PORT: int(0, 65535).default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  SERVER_HEADERS_TIMEOUT_MS: int(1).default(10_000),
  SERVER_REQUEST_TIMEOUT_MS: int(1).default(30_000),
  SERVER_KEEP_ALIVE_TIMEOUT_MS: int(1).default(65_000),
  DOWNSTREAM_URL: optionalString.pipe(httpUrl.optional()),
  DOWNSTREAM_TIMEOUT_MS: envKnob('DOWNSTREAM_TIMEOUT_MS'),
  DOWNSTREAM_CONNECTIONS: z.preprocess((v) => (typeof v === 'string' && v.trim() === '' ? undefined : v), int(1, 10_000).optional()),
  REQUEST_DEADLINE_MS: int(1).default(15000),
  RETRY_MAX_ATTEMPTS: envKnob('RETRY_MAX_ATTEMPTS'),
  RETRY_BASE_DELAY_MS: envKnob('RETRY_BASE_DELAY_MS'),
  RETRY_MAX_DELAY_MS: envKnob('RETRY_MAX_DELAY_MS'),
  QUEUE_CAPACITY: envKnob('QUEUE_CAPACITY'),
  WORKERS: envKnob('WORKERS'),
  MAX_BODY_BYTES: int(1).default(1_048_576),
  MAX_RESPONSE_BYTES: int(1).default(10_485_760),
  IDEMPOTENCY_TTL_S: int(1).default(86_400),
  ADMIN_TOKEN: optionalString.pipe(
    z.string().min(16, { error: ADMIN_TOKEN_RULE }).regex(/^\S+$/, { error: ADMIN_TOKEN_RULE }).optional(),
  ),
  RELAY_SECRET_KEY: optionalString.pipe(
    z
      .string()
      .refine(isBase64Key32, { error: SECRET_KEY_RULE })
      .transform((v) => Buffer.from(v, 'base64'))
      .optional(),
  ),
  ROUTES_FILE: optionalString,
  ENV_FILE: optionalString.transform((v) => v ?? '.env'),
  STORE: z.enum(['sqlite', 'redis']).default('sqlite'),
  SQLITE_PATH: z.string().min(1).default('./data/relay.db'),
  REDIS_URL: z.string().min(1).default('redis://127.0.0.1:6379'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['json', 'pretty']).default('json'),
  STATS_WINDOW_S: int(1, 3600).default(60),
  FALLBACK_URLS: urlList,
  QUEUE_LOW_PRIORITY_MAX_FILL: envKnob('QUEUE_LOW_PRIORITY_MAX_FILL'),
  BREAKER_MODE: mode,
  BREAKER_CANARY_PERCENT: envKnob('BREAKER_CANARY_PERCENT'),
  BREAKER_WINDOW_MS: envKnob('BREAKER_WINDOW_MS'),
  BREAKER_MIN_CALLS: envKnob('BREAKER_MIN_CALLS'),
  BREAKER_FAILURE_RATE: envKnob('BREAKER_FAILURE_RATE'),
  BREAKER_SLOW_CALL_MS: envKnob('BREAKER_SLOW_CALL_MS'),
  BREAKER_SLOW_CALL_RATE: envKnob('BREAKER_SLOW_CALL_RATE'),
  BREAKER_CONSECUTIVE_FAILURES: envKnob('BREAKER_CONSECUTIVE_FAILURES'),
  BREAKER_OPEN_MS: envKnob('BREAKER_OPEN_MS'),
  BREAKER_OPEN_MAX_MS: envKnob('BREAKER_OPEN_MAX_MS'),
  BREAKER_HALF_OPEN_PROBES: envKnob('BREAKER_HALF_OPEN_PROBES'),
  RETRY_BUDGET_MODE: mode,
  RETRY_BUDGET_CANARY_PERCENT: envKnob('RETRY_BUDGET_CANARY_PERCENT'),
  RETRY_BUDGET_RATIO: envKnob('RETRY_BUDGET_RATIO'),
  RETRY_BUDGET_MIN_PER_S: envKnob('RETRY_BUDGET_MIN_PER_S'),
  RETRY_BUDGET_WINDOW_MS: envKnob('RETRY_BUDGET_WINDOW_MS'),
  RATE_LIMIT_MODE: mode,
  RATE_LIMIT_CANARY_PERCENT: envKnob('RATE_LIMIT_CANARY_PERCENT'),
  RATE_LIMIT_RPS: envOptionalKnob('RATE_LIMIT_RPS'),
  RATE_LIMIT_BURST: envKnob('RATE_LIMIT_BURST'),
  RATE_LIMIT_WARMUP_MS: envKnob('RATE_LIMIT_WARMUP_MS'),
  RATE_LIMIT_WARMUP_START_RPS: envKnob('RATE_LIMIT_WARMUP_START_RPS'),
  AIMD_MODE: mode,
  AIMD_CANARY_PERCENT: envKnob('AIMD_CANARY_PERCENT'),
  AIMD_MIN_CONCURRENCY: envKnob('AIMD_MIN_CONCURRENCY'),
  AIMD_LATENCY_TARGET_MS: envKnob('AIMD_LATENCY_TARGET_MS'),
  AIMD_DECREASE_FACTOR: envKnob('AIMD_DECREASE_FACTOR'),
  AIMD_COOLDOWN_MS: int(0).default(1000),
  AIMD_PLATEAU_ROUND_TRIPS: int(1, 1000).default(40),
  REDIS_PREFIX: z.string().min(1).max(100).default('relay:'),
  FLEET_HEARTBEAT_MS: int(50, 60_000).default(1000),
  FLEET_LEASE_MS: int(10, 1000).default(100),
  JOB_MAX_ATTEMPTS: int(1, 100).default(8),
  JOB_RETRY_BASE_DELAY_MS: int(0).default(1000),
  JOB_RETRY_MAX_DELAY_MS: int(0).default(60_000),
  JOB_LEASE_MS: int(1000).default(30_000),
  JOB_POLL_MS: int(10, 60_000).default(250),
  JOB_RETENTION_S: int(1).default(86_400),
  JOB_MAX_SHARE: fraction.default(0.5),
  JOB_QUEUE_MAX: int(1).default(10_000),
  JOB_QUEUE_MAX_BYTES: int(1).default(268_435_456),
  DLQ_MAX: int(1).default(10_000),
  DLQ_MAX_BYTES: int(1).default(268_435_456),
  DLQ_RETENTION_S: int(1).default(1_209_600),
  DLQ_REDRIVE_MAX: int(0, 1000).default(3),
  DLQ_REDRIVE_COOLDOWN_S: int(0).default(300),
  DLQ_REDRIVE_RATE_PER_S: z.coerce.number().gt(0).max(10_000).default(10),
  SIM_FAIL_RATE: rate.default(0.3),
  SIM_LATENCY_MS: int(0).default(20),
});

/** The environment, parsed: every variable present, typed, defaulted. */
export type Env = z.output<typeof envSchema>;

/** Every variable the relay reads (tests use it to keep a stray export out of a spawned relay). */
export const RELAY_ENV_NAMES: readonly string[] = Object.keys(envSchema.shape);

/** Variables whose whole value is a secret. */
const SECRET_VARIABLES = new Set(['ADMIN_TOKEN', 'RELAY_SECRET_KEY']);

/** How a variable's value appears in an error line: quoted, or redacted when it is (or holds) a secret. */
export function showEnvValue(name: string, value: string | undefined): string {
  if (SECRET_VARIABLES.has(name) && value !== undefined) return redacted(value);
  return JSON.stringify(redactUserInfo(value ?? ''));
}

function envLine(env: Record<string, string | undefined>, name: string, expected: string): string {
  return `Invalid ${name}=${showEnvValue(name, env[name])}: ${expected}`;
}

/**
 * Parses and validates the environment, rules between variables included.
 * @throws ConfigError with one line per bad variable.
 */
export function parseEnv(env: Record<string, string | undefined>): Env {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const seen = new Set<string>();
    const lines: string[] = [];
    for (const issue of parsed.error.issues) {
      const name = String(issue.path[0] ?? '?');
      if (seen.has(name)) continue;
      seen.add(name);
      lines.push(envLine(env, name, describeIssue(issue)));
    }
    throw new ConfigError(lines);
  }
  const e = parsed.data;
  // A rule between variables may be broken by a default: show the value in force.
  const inForce = (name: string) => env[name] ?? String(e[name as keyof Env]);
  const lines = crossChecks(e).map(([name, expected]) => `Invalid ${name}=${showEnvValue(name, inForce(name))}: ${expected}`);
  if (lines.length > 0) throw new ConfigError(lines);
  return e;
}

/** Rules that involve more than one variable: [variable, what was expected]. */
function crossChecks(e: Env): Array<[string, string]> {
  const found: Array<[string, string]> = [];
  if (e.RETRY_MAX_DELAY_MS < e.RETRY_BASE_DELAY_MS) {
    found.push(['RETRY_MAX_DELAY_MS', `expected a number >= RETRY_BASE_DELAY_MS (${e.RETRY_BASE_DELAY_MS})`]);
  }
  if (e.JOB_RETRY_MAX_DELAY_MS < e.JOB_RETRY_BASE_DELAY_MS) {
    found.push(['JOB_RETRY_MAX_DELAY_MS', `expected a number >= JOB_RETRY_BASE_DELAY_MS (${e.JOB_RETRY_BASE_DELAY_MS})`]);
  }
  if (e.JOB_LEASE_MS < e.DOWNSTREAM_TIMEOUT_MS + 1000) {
    // A lease shorter than one attempt would hand a job still being delivered to another worker.
    found.push(['JOB_LEASE_MS', `expected a number >= DOWNSTREAM_TIMEOUT_MS + 1000 (${e.DOWNSTREAM_TIMEOUT_MS + 1000})`]);
  }
  if (e.SERVER_REQUEST_TIMEOUT_MS < e.SERVER_HEADERS_TIMEOUT_MS) {
    // The headers are part of the request: node refuses a headers timeout longer than the request's.
    found.push(['SERVER_REQUEST_TIMEOUT_MS', `expected a number >= SERVER_HEADERS_TIMEOUT_MS (${e.SERVER_HEADERS_TIMEOUT_MS})`]);
  }
  if (!e.ADMIN_TOKEN && !isLoopbackHost(e.HOST)) {
    // Like Redis's protected mode: admin routes must not be open to the network.
    found.push(['HOST', 'binding a non-loopback address requires ADMIN_TOKEN to be set (admin routes would otherwise be open)']);
  }
  if (e.ROUTES_FILE !== undefined) {
    // Each route in the file names its own target and fallbacks; two sources would leave one silently unused.
    if (e.DOWNSTREAM_URL !== undefined) {
      found.push(['DOWNSTREAM_URL', 'expected it unset when ROUTES_FILE is set (each route in the file names its target)']);
    }
    if (e.FALLBACK_URLS.length > 0) {
      found.push(['FALLBACK_URLS', 'expected it unset when ROUTES_FILE is set (a route in the file names its fallbacks)']);
    }
  }
  return found;
}
