import type { Clock } from '../clock.js';
import type { Logger } from '../observability/logger.js';
import type { RelayEvents } from '../relay-events.js';
import type { CircuitBreaker } from '../resilience/circuit-breaker.js';
import type { RetryBudget } from '../resilience/retry-budget.js';
import type { ControlShare } from '../routes/route-control.js';
import type { BreakerKnobs, RateLimitKnobs, RetryBudgetKnobs } from '../routes/route-spec.js';
import { FleetBreakers, type ProbeGate } from './fleet-breakers.js';
import { FleetControls } from './fleet-controls.js';
import { FleetRateLimiter } from './fleet-rate-limiter.js';
import { FleetRetryBudget } from './fleet-retry-budget.js';
import { Fleet, type FleetSnapshot } from './fleet.js';

/**
 * What the route table asks of the fleet while it builds each route (issue 14).
 * Each answers null/undefined for a protection that is not enforced: shadow and
 * off protections stay per instance.
 */
export interface FleetProtections {
  rateLimiter(route: string, upstream: string, knobs: RateLimitKnobs): FleetRateLimiter | null;
  retryBudget(route: string, knobs: RetryBudgetKnobs): RetryBudget | null;
  breaker(route: string, upstream: string, breaker: CircuitBreaker, knobs: BreakerKnobs): ProbeGate | undefined;
}

export interface FleetState {
  protections: FleetProtections;
  /** The operators' holds on the routes (forced breaker state, pause), kept by the fleet on Redis. */
  controls: ControlShare;
  snapshot(): FleetSnapshot;
  /** Leaves the fleet and closes its connections; idempotent, never rejects. */
  close(): Promise<void>;
}

export interface FleetStateOptions {
  url: string;
  prefix: string;
  clock: Clock;
  logger: Logger;
  events: RelayEvents;
  /** FLEET_HEARTBEAT_MS */
  heartbeatMs: number;
  /** FLEET_LEASE_MS */
  leaseMs: number;
}

/**
 * Joins the fleet of relays sharing `prefix` on Redis: membership, and the
 * factories that make a route's rate limit, retry budget and breaker fleet-wide.
 * Resolves after the first heartbeat, whether Redis answered it or not.
 */
export async function startFleetState(options: FleetStateOptions): Promise<FleetState> {
  const { clock, prefix, leaseMs } = options;
  const fleet = new Fleet({ url: options.url, prefix, logger: options.logger, heartbeatMs: options.heartbeatMs });
  const breakers = new FleetBreakers(fleet, options.events, options.logger);
  const controls = new FleetControls(fleet, breakers, options.logger);
  const budgets: FleetRetryBudget[] = [];
  await fleet.start();
  await breakers.start();
  let closing: Promise<void> | undefined;
  return {
    protections: {
      rateLimiter: (route, upstream, knobs) =>
        knobs.mode === 'enforce' ? new FleetRateLimiter({ clock, fleet, knobs, leaseMs, key: `${prefix}fleet:rate:${route}:${upstream}` }) : null,
      retryBudget: (route, knobs) => {
        if (knobs.mode !== 'enforce') return null;
        const budget = new FleetRetryBudget({ clock, fleet, knobs, key: `${prefix}fleet:budget:${route}` });
        budgets.push(budget);
        return budget;
      },
      breaker: (route, upstream, breaker, knobs) => breakers.register(route, upstream, breaker, knobs),
    },
    controls,
    snapshot: () => fleet.snapshot(),
    close: () =>
      (closing ??= (async () => {
        controls.close();
        breakers.close();
        for (const budget of budgets) budget.close();
        await fleet.close().catch(() => {});
      })()),
  };
}
