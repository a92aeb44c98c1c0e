import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, RELAY_ENV_NAMES, loadConfig } from './config.js';

describe('loadConfig', () => {
  it('has the contract defaults with an empty environment', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 3000,
      host: '127.0.0.1',
      downstreamUrl: undefined,
      downstreamTimeoutMs: 5000,
      requestDeadlineMs: 15000,
      retry: { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 2000 },
      queueCapacity: 100,
      workers: 256,
      maxBodyBytes: 1_048_576,
      idempotencyTtlS: 86_400,
      adminToken: undefined,
      store: 'sqlite',
      sqlitePath: './data/relay.db',
      redisUrl: 'redis://127.0.0.1:6379',
      logLevel: 'info',
      sim: { failRate: 0.3, latencyMs: 20 },
    });
  });

  it('treats an empty DOWNSTREAM_URL as unset (embedded simulator)', () => {
    expect(loadConfig({ DOWNSTREAM_URL: '' }).downstreamUrl).toBeUndefined();
  });

  it.each([
    [{ PORT: 'abc' }, 'Invalid PORT="abc": expected a number'],
    [{ PORT: '70000' }, 'Invalid PORT="70000": expected a number <= 65535'],
    [{ WORKERS: '0' }, 'Invalid WORKERS="0": expected a number >= 1'],
    [{ WORKERS: '1.5' }, 'Invalid WORKERS="1.5": expected a whole number'],
    [{ STORE: 'mongo' }, 'Invalid STORE="mongo": expected one of sqlite, redis'],
    [{ DOWNSTREAM_URL: 'ftp://example' }, 'Invalid DOWNSTREAM_URL="ftp://example": expected an http(s) URL'],
    [{ SIM_FAIL_RATE: '2' }, 'Invalid SIM_FAIL_RATE="2": expected a number <= 1'],
    [{ LOG_LEVEL: 'loud' }, 'Invalid LOG_LEVEL="loud": expected one of fatal, error, warn, info, debug, trace, silent'],
  ])('names the variable, the value and what was expected: %j', (env, message) => {
    expect(() => loadConfig(env)).toThrow(new ConfigError(message));
  });

  it('has HTTP server timeouts that cut a slow client, and refuses a request timeout shorter than the headers one', () => {
    expect(loadConfig({}).server).toEqual({ headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 65_000 });
    expect(loadConfig({ SERVER_HEADERS_TIMEOUT_MS: '500', SERVER_REQUEST_TIMEOUT_MS: '800', SERVER_KEEP_ALIVE_TIMEOUT_MS: '1000' }).server).toEqual({
      headersTimeoutMs: 500,
      requestTimeoutMs: 800,
      keepAliveTimeoutMs: 1000,
    });
    expect(() => loadConfig({ SERVER_REQUEST_TIMEOUT_MS: '5000' })).toThrow(
      new ConfigError('Invalid SERVER_REQUEST_TIMEOUT_MS="5000": expected a number >= SERVER_HEADERS_TIMEOUT_MS (10000)'),
    );
    expect(() => loadConfig({ SERVER_KEEP_ALIVE_TIMEOUT_MS: '0' })).toThrow(new ConfigError('Invalid SERVER_KEEP_ALIVE_TIMEOUT_MS="0": expected a number >= 1'));
  });

  it('refuses a backoff cap below the base delay', () => {
    expect(() => loadConfig({ RETRY_BASE_DELAY_MS: '500', RETRY_MAX_DELAY_MS: '100' })).toThrow(/RETRY_MAX_DELAY_MS/);
  });

  it('refuses a non-loopback HOST without ADMIN_TOKEN, like Redis protected mode', () => {
    expect(() => loadConfig({ HOST: '0.0.0.0' })).toThrow(/ADMIN_TOKEN/);
    // The contract now asks for an ADMIN_TOKEN of at least 16 characters (was any non-empty one).
    expect(loadConfig({ HOST: '0.0.0.0', ADMIN_TOKEN: 'a-token-of-16-chars' }).host).toBe('0.0.0.0');
    expect(loadConfig({ HOST: '::1' }).host).toBe('::1');
  });

  it('every variable the relay reads is listed in .env.example with a default', () => {
    const example = readFileSync(new URL('../.env.example', import.meta.url), 'utf8');
    const missing = RELAY_ENV_NAMES.filter((name) => !new RegExp(`^${name}=`, 'm').test(example));
    expect(missing).toEqual([]);
  });

  it('reads the protections, fallbacks and job settings, and names a bad value', () => {
    const config = loadConfig({ FALLBACK_URLS: 'http://127.0.0.1:4001/, http://127.0.0.1:4002/x', BREAKER_MODE: 'shadow', JOB_MAX_ATTEMPTS: '3' });
    expect(config.fallbackUrls).toEqual(['http://127.0.0.1:4001/', 'http://127.0.0.1:4002/x']);
    expect(config.breaker.mode).toBe('shadow');
    expect(config.jobs.maxAttempts).toBe(3);
    expect(config.aimd.plateauRoundTrips).toBe(40);
    expect(loadConfig({ AIMD_PLATEAU_ROUND_TRIPS: '1' }).aimd.plateauRoundTrips).toBe(1);
    expect(() => loadConfig({ AIMD_MODE: 'on' })).toThrow('Invalid AIMD_MODE="on": expected one of enforce, shadow, canary, off');
    expect(() => loadConfig({ FALLBACK_URLS: 'ftp://x' })).toThrow('Invalid FALLBACK_URLS="ftp://x": expected an http(s) URL');
    expect(() => loadConfig({ AIMD_PLATEAU_ROUND_TRIPS: '0' })).toThrow('Invalid AIMD_PLATEAU_ROUND_TRIPS="0"');
    expect(() => loadConfig({ AIMD_DECREASE_FACTOR: '1' })).toThrow('Invalid AIMD_DECREASE_FACTOR="1": expected a number < 1');
    expect(() => loadConfig({ JOB_LEASE_MS: '2000' })).toThrow('Invalid JOB_LEASE_MS="2000": expected a number >= DOWNSTREAM_TIMEOUT_MS + 1000 (6000)');
  });

  it('takes canary mode with a percent per protection (default 10) and refuses a percent outside 0-100', () => {
    const config = loadConfig({ BREAKER_MODE: 'canary', RATE_LIMIT_MODE: 'canary', RATE_LIMIT_RPS: '5', RATE_LIMIT_CANARY_PERCENT: '2.5', AIMD_CANARY_PERCENT: '0' });
    expect(config.breaker).toMatchObject({ mode: 'canary', canaryPercent: 10 });
    expect(config.rateLimit).toMatchObject({ mode: 'canary', canaryPercent: 2.5 });
    expect(config.aimd).toMatchObject({ mode: 'enforce', canaryPercent: 0 });
    expect(config.retryBudget.canaryPercent).toBe(10);
    expect(() => loadConfig({ BREAKER_CANARY_PERCENT: '150' })).toThrow('Invalid BREAKER_CANARY_PERCENT="150": expected a number <= 100');
    expect(() => loadConfig({ RETRY_BUDGET_CANARY_PERCENT: '-1' })).toThrow('Invalid RETRY_BUDGET_CANARY_PERCENT="-1": expected a number >= 0');
    expect(() => loadConfig({ RATE_LIMIT_MODE: 'canery' })).toThrow('Invalid RATE_LIMIT_MODE="canery": expected one of enforce, shadow, canary, off');
  });

  it('has the defaults of the variables added for routes, secrets, logs and quotas', () => {
    expect(loadConfig({})).toMatchObject({
      routesFile: undefined,
      secretKey: undefined,
      envFile: '.env',
      logFormat: 'json',
      maxResponseBytes: 10_485_760,
      quotas: { jobQueueMax: 10_000, jobQueueMaxBytes: 268_435_456, dlqMax: 10_000, dlqMaxBytes: 268_435_456 },
      jobs: { maxShare: 0.5 },
    });
    expect(loadConfig({ LOG_FORMAT: 'pretty', ENV_FILE: 'config/relay.env', JOB_MAX_SHARE: '1' })).toMatchObject({
      logFormat: 'pretty',
      envFile: 'config/relay.env',
      jobs: { maxShare: 1 },
    });
  });

  it.each([
    [{ JOB_MAX_SHARE: '0' }, 'Invalid JOB_MAX_SHARE="0": expected a number > 0'],
    [{ JOB_MAX_SHARE: '1.5' }, 'Invalid JOB_MAX_SHARE="1.5": expected a number <= 1'],
    [{ LOG_FORMAT: 'xml' }, 'Invalid LOG_FORMAT="xml": expected one of json, pretty'],
    [{ MAX_RESPONSE_BYTES: '0' }, 'Invalid MAX_RESPONSE_BYTES="0": expected a number >= 1'],
    [{ DLQ_MAX_BYTES: 'lots' }, 'Invalid DLQ_MAX_BYTES="lots": expected a number'],
  ])('names a bad new variable: %j', (env, message) => {
    expect(() => loadConfig(env)).toThrow(new ConfigError(message));
  });

  it('decodes RELAY_SECRET_KEY into a 32-byte key', () => {
    const key = Buffer.alloc(32, 7);
    const config = loadConfig({ RELAY_SECRET_KEY: key.toString('base64') });
    expect(config.secretKey).toBeInstanceOf(Buffer);
    expect(config.secretKey?.equals(key)).toBe(true);
  });

  it.each([
    ['16 bytes', Buffer.alloc(16, 1).toString('base64')],
    ['33 bytes', Buffer.alloc(33, 1).toString('base64')],
    ['not base64', 'this is not base64 at all, not even close!!'],
  ])('refuses a RELAY_SECRET_KEY of %s without showing it', (_what, value) => {
    expect(() => loadConfig({ RELAY_SECRET_KEY: value })).toThrow(
      new ConfigError(`Invalid RELAY_SECRET_KEY=[redacted, ${value.length} chars]: expected base64 of exactly 32 bytes (make one with: openssl rand -base64 32)`),
    );
  });

  it.each([
    ['shorter than 16 characters', 'short-secret'],
    ['with whitespace', 'a long secret with spaces'],
  ])('refuses an ADMIN_TOKEN %s and never shows it', (_what, token) => {
    let message = '';
    try {
      loadConfig({ ADMIN_TOKEN: token });
    } catch (error) {
      message = (error as ConfigError).message;
    }
    expect(message).toBe(`Invalid ADMIN_TOKEN=[redacted, ${token.length} chars]: expected at least 16 characters with no whitespace`);
    expect(message).not.toContain(token);
  });

  it('redacts the user-info of a bad URL', () => {
    const message = errorOf({ DOWNSTREAM_URL: 'ftp://billing:hunter2-pass@example.test/' });
    expect(message).toBe('Invalid DOWNSTREAM_URL="ftp://[redacted, 20 chars]@example.test/": expected an http(s) URL');
    expect(message).not.toContain('hunter2');
  });

  it('lists every bad variable, one line each', () => {
    const message = errorOf({ PORT: 'abc', WORKERS: '0', LOG_FORMAT: 'xml' });
    expect(message.split('\n')).toEqual([
      'Invalid PORT="abc": expected a number',
      'Invalid WORKERS="0": expected a number >= 1',
      'Invalid LOG_FORMAT="xml": expected one of json, pretty',
    ]);
  });

  it('builds one default route from the environment, with the settings the relay had before routes', () => {
    const config = loadConfig({
      DOWNSTREAM_URL: 'http://127.0.0.1:4000/base?tenant=a',
      FALLBACK_URLS: 'http://127.0.0.1:4001/',
      DOWNSTREAM_TIMEOUT_MS: '3000',
      WORKERS: '12',
      QUEUE_CAPACITY: '40',
      RATE_LIMIT_MODE: 'shadow',
      RATE_LIMIT_RPS: '80',
    });
    expect(config.routes).toEqual([
      {
        name: 'default',
        target: 'http://127.0.0.1:4000/base?tenant=a',
        methods: expect.arrayContaining(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']) as string[],
        timeoutMs: 3000,
        retry: config.retry,
        idempotency: { header: 'Idempotency-Key', generate: false },
        headers: { set: {}, remove: [], secret: [] },
        rateLimit: config.rateLimit,
        concurrency: { max: 12 },
        breaker: config.breaker,
        retryBudget: config.retryBudget,
        aimd: config.aimd,
        queue: { capacity: 40, lowPriorityMaxFill: 0.5 },
        clients: [],
        fallbacks: [],
        fallbackUrls: ['http://127.0.0.1:4001/'],
      },
    ]);
    expect(config.routes[0]!.methods).not.toContain('TRACE');
    expect(config.routes[0]!.methods).not.toContain('CONNECT');
    expect(config.rateLimit).toMatchObject({ mode: 'shadow', ratePerSecond: 80 });
  });

  it('sets no rate limit unless RATE_LIMIT_RPS (or a route) gives a rate, and a high WORKERS ceiling', () => {
    const config = loadConfig({});
    expect(config.rateLimit).toBeNull();
    expect(config.routes[0]).toMatchObject({ rateLimit: null, concurrency: { max: 256 } });
    expect(config.downstreamConnections).toBeUndefined();
    expect(loadConfig({ RATE_LIMIT_RPS: '' }).rateLimit).toBeNull();
    expect(errorOf({ RATE_LIMIT_RPS: '0' })).toBe('Invalid RATE_LIMIT_RPS="0": expected a number > 0');
    const readFile = () => JSON.stringify({ routes: [{ name: 'pay', target: 'http://127.0.0.1:4101/', rateLimit: { burst: 5 } }, { name: 'sms', target: 'http://127.0.0.1:4102/' }] });
    expect(errorOf({ ROUTES_FILE: 'routes.json' }, readFile)).toMatch(/routes\[0\] \(pay\) field rateLimit\.rps: .*required here: RATE_LIMIT_RPS is unset/);
    const withEnvRate = loadConfig({ ROUTES_FILE: 'routes.json', RATE_LIMIT_RPS: '40' }, { readFile });
    expect(withEnvRate.routes.map((r) => r.rateLimit?.ratePerSecond ?? null)).toEqual([40, null]);
  });

  it('leaves the default route on the embedded simulator when DOWNSTREAM_URL is unset', () => {
    expect(loadConfig({}).routes.map((r) => [r.name, r.target])).toEqual([['default', undefined]]);
  });

  it('refuses ROUTES_FILE together with DOWNSTREAM_URL or FALLBACK_URLS', () => {
    const readFile = () => JSON.stringify({ routes: [{ name: 'pay', target: 'http://127.0.0.1:4101/' }] });
    expect(() => loadConfig({ ROUTES_FILE: 'routes.json', DOWNSTREAM_URL: 'http://127.0.0.1:4000/' }, { readFile })).toThrow(
      new ConfigError('Invalid DOWNSTREAM_URL="http://127.0.0.1:4000/": expected it unset when ROUTES_FILE is set (each route in the file names its target)'),
    );
    expect(() => loadConfig({ ROUTES_FILE: 'routes.json', FALLBACK_URLS: 'http://127.0.0.1:4001/' }, { readFile })).toThrow(/^Invalid FALLBACK_URLS=.*expected it unset when ROUTES_FILE is set/);
    expect(loadConfig({ ROUTES_FILE: 'routes.json' }, { readFile }).routes.map((r) => r.name)).toEqual(['pay']);
  });
});

function errorOf(env: Record<string, string>, readFile?: () => string): string {
  try {
    loadConfig(env, readFile ? { readFile } : {});
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  throw new Error('expected a ConfigError');
}
