import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config.js';
import { describeLimits, nextSteps, reachableBaseUrl } from './startup-summary.js';

const routeFrom = (env: Record<string, string>) => loadConfig({ DOWNSTREAM_URL: 'http://127.0.0.1:4000/', ...env }).routes[0]!;

describe('the start-up summary', () => {
  it('says which limits are in force on a route, from its resolved config', () => {
    const limited = routeFrom({ RATE_LIMIT_RPS: '50', RATE_LIMIT_BURST: '10', WORKERS: '64', AIMD_MODE: 'shadow', BREAKER_MODE: 'off', QUEUE_CAPACITY: '20' });
    expect(describeLimits(limited)).toBe('rate limit 50 rps, burst 10; concurrency <= 64 (AIMD shadow); breaker off; retry budget enforce; queue 20');
    const unlimited = routeFrom({ WORKERS: '256', QUEUE_CAPACITY: '100' });
    expect(unlimited.rateLimit).toBeNull();
    expect(describeLimits(unlimited)).toBe('rate limit none; concurrency <= 256 (AIMD enforce); breaker enforce; retry budget enforce; queue 100');
    expect(describeLimits(routeFrom({ RATE_LIMIT_RPS: '50', RATE_LIMIT_MODE: 'off' }))).toMatch(/^rate limit none;/);
  });

  it('says on what share a protection in canary mode enforces', () => {
    const canary = routeFrom({ RATE_LIMIT_RPS: '50', RATE_LIMIT_MODE: 'canary', RATE_LIMIT_CANARY_PERCENT: '5', BREAKER_MODE: 'canary', BREAKER_CANARY_PERCENT: '10', RETRY_BUDGET_MODE: 'off' });
    expect(describeLimits(canary)).toBe('rate limit 50 rps, burst 50 (canary 5%); concurrency <= 256 (AIMD enforce); breaker canary 10%; retry budget off; queue 100');
  });

  it('names a URL an operator can open, also for a wildcard or IPv6 bind address', () => {
    expect(reachableBaseUrl('127.0.0.1', 3000)).toBe('http://127.0.0.1:3000');
    expect(reachableBaseUrl('0.0.0.0', 3000)).toBe('http://127.0.0.1:3000');
    expect(reachableBaseUrl('::', 3000)).toBe('http://[::1]:3000');
    expect(reachableBaseUrl('::1', 80)).toBe('http://[::1]:80');
  });

  it('suggests a curl through the default route and only the pages the app serves', () => {
    const route = routeFrom({});
    const served = [
      { path: '/stats', methods: ['GET'] },
      { path: '/openapi.json', methods: ['GET'] },
    ];
    const steps = nextSteps('http://127.0.0.1:3000', [route], served);
    expect(steps).toEqual({
      send: `curl -i http://127.0.0.1:3000/relay -H 'Content-Type: application/json' -d '{}'`,
      stats: 'http://127.0.0.1:3000/stats',
      api: 'http://127.0.0.1:3000/openapi.json',
    });
    expect(nextSteps('http://h:1', [route], [...served, { path: '/dashboard', methods: ['GET'] }]).dashboard).toBe('http://h:1/dashboard');
  });

  it('names a route of a routes file, its token header and a method it allows', () => {
    const base = routeFrom({});
    const payments = { ...base, name: 'payments', clients: ['secret-token'], methods: ['GET', 'DELETE'] };
    expect(nextSteps('http://h:1', [payments], []).send).toBe(`curl -i -X GET http://h:1/relay/payments/ -H 'X-Relay-Token: <one of the route's clients>'`);
  });
});
