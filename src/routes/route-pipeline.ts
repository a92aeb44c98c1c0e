import type { Dispatcher } from 'undici';
import type { Clock, Random } from '../clock.js';
import type { RequestTarget } from '../domain.js';
import { DownstreamClient } from '../downstream/client.js';
import { CircuitOpenError } from '../errors.js';
import type { FleetProtections } from '../fleet/fleet-state.js';
import { WorkerPool } from '../queue/worker-pool.js';
import type { RelayEvents } from '../relay-events.js';
import { AimdLimiter } from '../resilience/aimd.js';
import { CircuitBreaker } from '../resilience/circuit-breaker.js';
import { RateLimiter } from '../resilience/rate-limiter.js';
import { RetryBudget } from '../resilience/retry-budget.js';
import { RetryManager } from '../resilience/retry.js';
import type { RouteSpec } from './route-spec.js';
import { DownstreamSet, type Downstream } from './downstream-set.js';

/**
 * One route's protections, composed in the one order requests meet them:
 * queue and concurrency (WorkerPool, AIMD limit) -> retry (budget, backoff,
 * deadline) -> per attempt, DownstreamSet: breaker -> rate limit -> credentials
 * -> the call. Sync requests, jobs, replays and redrives all go through it.
 */
export interface RoutePipeline {
  readonly name: string;
  readonly spec: RouteSpec;
  /** This route's own target with its breaker and rate limit (shared with routes that fall back to it). */
  readonly downstream: Downstream;
  readonly downstreams: DownstreamSet;
  readonly pool: WorkerPool;
  readonly aimd: AimdLimiter;
  readonly retryBudget: RetryBudget;
  readonly retry: RetryManager;
  /**
   * Paces the async backlog a restart finds, at the warm-up ramp of the route's
   * rate limit, while that warm-up lasts (live traffic is never warmed up at
   * start). null without a rate limit: the AIMD slow start ramps it instead.
   */
  readonly backlogPacer: RateLimiter | null;
  /** Lower-case name of the header the idempotency key goes out under. */
  readonly keyHeader: string;
  /** Secret header names of this route: the contract's plus `headers.set` and `headers.secret`. */
  readonly secretHeaders: ReadonlySet<string>;
}

/** A request as the edge admitted it for a route: what is sent, and what identifies it under its key. */
export interface RoutedRequest {
  route: RoutePipeline;
  target: RequestTarget;
  /** null for a request without a body (GET, HEAD...). */
  body: Buffer | null;
  /**
   * Lower-case names; exactly the headers to forward, the idempotency key and
   * X-Request-Id included (the route's own credentials are added per downstream at send time).
   */
  headers: Record<string, string>;
  /** The key sent with every attempt: the client's, or one the route generated; undefined: none. */
  sendKey: string | undefined;
  /** The client's key in the relay's key space (route, credential, key); undefined without a client key. */
  keyScope: string | undefined;
  fingerprint: string | undefined;
}

export interface RouteTableDeps {
  clock: Clock;
  random: Random;
  events: RelayEvents;
  requestDeadlineMs: number;
  /** undefined: the route's concurrency ceiling, so a call never waits for a socket. */
  downstreamConnections: number | undefined;
  maxResponseBytes: number;
  /** The target of a route whose spec has none: the embedded simulator. */
  defaultTarget: string;
  dispatcherFactory?: (origin: string, connections: number) => Dispatcher;
  /** STORE=redis: each route's enforced rate limit, retry budget and breaker are shared by the fleet (issue 14). */
  fleet?: FleetProtections;
}

/** A fresh route's concurrency limit, before slow start doubles it per round trip toward its ceiling. */
const INITIAL_CONCURRENCY = 16;
/** Queued requests refused per turn of the event loop when every breaker of a route has opened. */
const REFUSE_BATCH = 16;
const BASE_SECRET_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key', 'x-relay-token'];

/** Every route by name, built from the specs in two passes: downstreams first, since fallbacks name other routes. */
export class RouteTable {
  private readonly routes = new Map<string, RoutePipeline>();

  constructor(specs: readonly RouteSpec[], deps: RouteTableDeps) {
    const owned = new Map<string, { downstream: Downstream; anonymous: Downstream[]; hooks: BreakerHooks }>();
    for (const spec of specs) {
      const hooks: BreakerHooks = { onClosed: [] };
      const downstream = buildDownstream(spec, spec.target ?? deps.defaultTarget, 'primary', deps, hooks);
      const anonymous = spec.fallbackUrls.map((url, index) => buildDownstream(spec, url, `fallback-${index + 1}`, deps, hooks));
      owned.set(spec.name, { downstream, anonymous, hooks });
    }
    for (const spec of specs) {
      const { downstream, anonymous, hooks } = owned.get(spec.name)!;
      const named = spec.fallbacks.map((name) => owned.get(name)!.downstream);
      this.routes.set(spec.name, buildPipeline(spec, [downstream, ...named, ...anonymous], hooks, deps));
    }
  }

  get(name: string): RoutePipeline | undefined {
    return this.routes.get(name);
  }

  get names(): string[] {
    return [...this.routes.keys()];
  }

  all(): RoutePipeline[] {
    return [...this.routes.values()];
  }

  /** Closes every route's own clients; every one runs even when one fails. */
  async close(): Promise<void> {
    const results = await Promise.allSettled(this.all().map((route) => route.downstreams.close()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}

/** What a breaker closing must reach: the owner route's limiter warm-up and AIMD ceiling. */
interface BreakerHooks {
  onClosed: Array<() => void>;
}

function buildDownstream(spec: RouteSpec, url: string, name: string, deps: RouteTableDeps, hooks: BreakerHooks): Downstream {
  const limiter = spec.rateLimit ? (deps.fleet?.rateLimiter(spec.name, name, spec.rateLimit) ?? new RateLimiter({ clock: deps.clock, ...spec.rateLimit })) : null;
  const breaker = new CircuitBreaker({
    clock: deps.clock,
    ...spec.breaker,
    onStateChange: (change) => {
      if (change.to === 'closed') {
        // Slow start again after an outage: the recovered downstream gets a ramp, not the backlog at once.
        limiter?.startWarmup();
        for (const hook of hooks.onClosed) hook();
      }
      deps.events.emit('breaker', { route: spec.name, upstream: name, ...change });
    },
  });
  const client = new DownstreamClient({
    url,
    connections: deps.downstreamConnections ?? spec.concurrency.max,
    maxResponseBytes: deps.maxResponseBytes,
    ...(deps.dispatcherFactory ? { dispatcherFactory: deps.dispatcherFactory } : {}),
  });
  const probeGate = deps.fleet?.breaker(spec.name, name, breaker, spec.breaker);
  return { route: spec.name, name, url, client, breaker, limiter, ...(probeGate ? { probeGate } : {}), headers: { set: spec.headers.set, remove: spec.headers.remove } };
}

function buildPipeline(spec: RouteSpec, members: Downstream[], hooks: BreakerHooks, deps: RouteTableDeps): RoutePipeline {
  const { clock, events } = deps;
  const route = spec.name;
  // The pool and the limiter refer to each other through closures: the pool reads the limit, the limiter the pool's use.
  let pool: WorkerPool | undefined;
  const downstreams = new DownstreamSet(members, {
    clock,
    attemptTimeoutMs: spec.timeoutMs,
    calls: { begin: () => aimd.begin() },
  });
  const aimd: AimdLimiter = new AimdLimiter({
    clock,
    ...spec.aimd,
    min: Math.min(spec.aimd.min, spec.concurrency.max),
    max: spec.concurrency.max,
    initial: Math.min(spec.concurrency.max, Math.max(spec.aimd.min, INITIAL_CONCURRENCY)),
    slowStart: true,
    // Workers taken by calls: one waiting for a rate-limit token is held back by the limiter, not by AIMD.
    inUse: (): number => (pool ? pool.busy - downstreams.waitingForRateLimit : 0),
    onChange: (change) => {
      events.emit('aimd', { route, ...change });
      // Outside the caller's stack: a rise may start queued tasks.
      if (change.to > change.from) queueMicrotask(() => pool?.poke());
    },
  });
  hooks.onClosed.push(() => {
    // A route without a rate limit has no token warm-up to ramp the recovered downstream: its concurrency ramps instead.
    if (spec.rateLimit) aimd.forgetCeiling();
    else aimd.restart();
  });
  pool = new WorkerPool({
    workers: spec.concurrency.max,
    capacity: spec.queue.capacity,
    clock,
    fallbackRetryAfterS: Math.max(1, Math.ceil(spec.timeoutMs / 1000)),
    lowPriorityMaxFill: spec.queue.lowPriorityMaxFill,
    limit: () => aimd.limit,
    onShed: (event) => events.emit('shed', { route, ...event }),
  });
  const retryBudget = deps.fleet?.retryBudget(route, spec.retryBudget) ?? new RetryBudget({ clock, ...spec.retryBudget });
  const retry = new RetryManager({
    ...spec.retry,
    attemptTimeoutMs: spec.timeoutMs,
    requestDeadlineMs: deps.requestDeadlineMs,
    clock,
    random: deps.random,
    budget: retryBudget,
    onAttempt: (record) =>
      events.emit('attempt', { route, outcome: record.outcome, status: record.status, durationMs: record.durationMs, upstream: record.upstream }),
    onRetry: (event) => events.emit('retry', { route, ...event }),
  });
  const workerPool = pool;
  // When the route's last breaker opens, its queue is refused at once rather than one by one as workers
  // free up; in batches, so that requests arriving meanwhile get their fail-fast answer without waiting behind it.
  const refuseQueue = () => {
    const openForMs = downstreams.allOpenForMs();
    if (openForMs === null) return;
    if (workerPool.rejectWaiting(() => new CircuitOpenError(openForMs), REFUSE_BATCH) === REFUSE_BATCH) setImmediate(refuseQueue);
  };
  events.on('breaker', (change) => {
    if (change.to === 'open' && members.some((u) => u.route === change.route && u.name === change.upstream)) setImmediate(refuseQueue);
  });
  return {
    name: route,
    spec,
    downstream: members[0]!,
    downstreams,
    pool: workerPool,
    aimd,
    retryBudget,
    retry,
    backlogPacer: spec.rateLimit && spec.rateLimit.mode !== 'off' ? new RateLimiter({ clock, ...spec.rateLimit, mode: 'enforce', warmupAtStart: true }) : null,
    keyHeader: spec.idempotency.header.toLowerCase(),
    secretHeaders: new Set([...BASE_SECRET_HEADERS, ...Object.keys(spec.headers.set), ...spec.headers.secret]),
  };
}
