import type { RegisteredRoute } from '../http/registered-routes.js';
import type { ProtectionMode } from '../resilience/mode.js';
import type { RouteSpec } from '../routes/route-spec.js';

/**
 * The limits in force on a route, in one line: `rate limit none; concurrency
 * <= 256 (AIMD enforce); breaker enforce; retry budget enforce; queue 100`. Read
 * from the resolved route, so it says what runs, whatever the defaults of the day
 * are. A protection in canary mode says on what share it enforces.
 */
export function describeLimits(route: RouteSpec): string {
  const { rateLimit } = route;
  const rate =
    rateLimit === null || rateLimit.mode === 'off'
      ? 'none'
      : `${rateLimit.ratePerSecond} rps, burst ${rateLimit.burst}${rateLimit.mode === 'enforce' ? '' : ` (${modeText(rateLimit)})`}`;
  return [
    `rate limit ${rate}`,
    `concurrency <= ${route.concurrency.max} (AIMD ${modeText(route.aimd)})`,
    `breaker ${modeText(route.breaker)}`,
    `retry budget ${modeText(route.retryBudget)}`,
    `queue ${route.queue.capacity}`,
  ].join('; ');
}

function modeText(knobs: { mode: ProtectionMode; canaryPercent: number }): string {
  return knobs.mode === 'canary' ? `canary ${knobs.canaryPercent}%` : knobs.mode;
}

/** Where an operator can reach the relay: a wildcard bind address is reached on loopback. */
export function reachableBaseUrl(host: string, port: number): string {
  if (host === '0.0.0.0') return `http://127.0.0.1:${port}`;
  if (host === '::') return `http://[::1]:${port}`;
  return host.includes(':') ? `http://[${host}]:${port}` : `http://${host}:${port}`;
}

/** Pages worth opening after start, when the app serves them (the dashboard may not exist in every build). */
const PAGES: Array<[name: string, path: string]> = [
  ['stats', '/stats'],
  ['dashboard', '/dashboard'],
  ['api', '/openapi.json'],
];

/**
 * What to try after start: a curl through the `default` route (or the first
 * one), and the URLs of the pages the app serves.
 */
export function nextSteps(baseUrl: string, routes: readonly RouteSpec[], served: readonly RegisteredRoute[]): Record<string, string> {
  const steps: Record<string, string> = {};
  const route = routes.find((r) => r.name === 'default') ?? routes[0];
  if (route) steps.send = curlFor(baseUrl, route);
  for (const [name, path] of PAGES) {
    if (served.some((r) => r.path === path && !r.prefixed && r.methods.includes('GET'))) steps[name] = `${baseUrl}${path}`;
  }
  return steps;
}

function curlFor(baseUrl: string, route: RouteSpec): string {
  const path = route.name === 'default' ? '/relay' : `/relay/${route.name}/`;
  const token = route.clients.length > 0 ? ` -H 'X-Relay-Token: <one of the route's clients>'` : '';
  if (route.methods.includes('POST')) return `curl -i ${baseUrl}${path} -H 'Content-Type: application/json'${token} -d '{}'`;
  const method = route.methods.includes('GET') ? 'GET' : route.methods[0];
  return `curl -i -X ${method} ${baseUrl}${path}${token}`;
}
