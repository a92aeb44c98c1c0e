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
      workers: 5,
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

  it('refuses a backoff cap below the base delay', () => {
    expect(() => loadConfig({ RETRY_BASE_DELAY_MS: '500', RETRY_MAX_DELAY_MS: '100' })).toThrow(/RETRY_MAX_DELAY_MS/);
  });

  it('refuses a non-loopback HOST without ADMIN_TOKEN, like Redis protected mode', () => {
    expect(() => loadConfig({ HOST: '0.0.0.0' })).toThrow(/ADMIN_TOKEN/);
    expect(loadConfig({ HOST: '0.0.0.0', ADMIN_TOKEN: 't' }).host).toBe('0.0.0.0');
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
    expect(() => loadConfig({ AIMD_MODE: 'on' })).toThrow('Invalid AIMD_MODE="on": expected one of enforce, shadow, off');
    expect(() => loadConfig({ FALLBACK_URLS: 'ftp://x' })).toThrow('Invalid FALLBACK_URLS="ftp://x": expected an http(s) URL');
    expect(() => loadConfig({ AIMD_PLATEAU_ROUND_TRIPS: '0' })).toThrow('Invalid AIMD_PLATEAU_ROUND_TRIPS="0"');
    expect(() => loadConfig({ AIMD_DECREASE_FACTOR: '1' })).toThrow('Invalid AIMD_DECREASE_FACTOR="1": expected a number < 1');
    expect(() => loadConfig({ JOB_LEASE_MS: '2000' })).toThrow('Invalid JOB_LEASE_MS="2000": expected a number >= DOWNSTREAM_TIMEOUT_MS + 1000 (6000)');
  });
});
