import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import type { Clock, Random } from '../clock.js';
import type { RequestTarget } from '../domain.js';
import { DownstreamClient } from '../downstream/client.js';
import { CircuitOpenError, RoutePausedError } from '../errors.js';
import type { FleetProtections } from '../fleet/fleet-state.js';
import { WorkerPool } from '../queue/worker-pool.js';
import type { RelayEvents } from '../relay-events.js';
import { AimdLimiter } from '../resilience/aimd.js';
import { CircuitBreaker, type ForcedBreakerState } from '../resilience/circuit-breaker.js';
import { RateLimiter } from '../resilience/rate-limiter.js';
import { RetryBudget } from '../resilience/retry-budget.js';
import { RetryManager } from '../resilience/retry.js';
import type { RouteSpec } from './route-spec.js';
import { DownstreamSet, type Downstream } from './downstream-set.js';
import { canKeepPipeline, carriedLimit, diffRoutes, downstreamIdentity, sameRetryBudget, withCredentials, type RoutesChange } from './reload.js';

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
  /** Stops listening to relay events: a reload replaced this pipeline and its last request has finished. */
  readonly detach: () => void;
}

/** An operator's hold on a route (POST /admin/routes/{name}/breaker, /pause), kept by name across reloads. */
export interface RouteControlState {
  breaker: 'auto' | ForcedBreakerState;
  paused: boolean;
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
  /**
   * An id the relay made for this request (never the client's X-Request-Id, which the client chooses):
   * it picks the request's side of every canary protection, and a DLQ entry of the request takes it as its id,
   * so a redrive stays on the same side. undefined: the relay makes one.
   */
  canaryId?: string | undefined;
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
  /** Whether a route's jobs run at their share of its limit (JOB_MAX_SHARE): more would run under a higher limit. */
  jobsAtShare?: (route: string) => boolean;
}

/** A fresh route's concurrency limit, before slow start doubles it per round trip toward its ceiling. */
const INITIAL_CONCURRENCY = 16;
/** Queued requests refused per turn of the event loop when every breaker of a route has opened. */
const REFUSE_BATCH = 16;
const BASE_SECRET_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key', 'x-relay-token'];

/**
 * Every route by name, built from the specs in two passes: downstreams first,
 * since fallbacks name other routes. `replace` swaps in new specs at once (a
 * reload); a request keeps the pipeline it was admitted with, and what a
 * replaced pipeline owned is closed only once its last request has finished.
 */
export class RouteTable {
  private routes = new Map<string, RoutePipeline>();
  /** The current downstreams by `route label`, with what their breaker, limiter and client were built from. */
  private downstreamsByKey = new Map<string, { downstream: Downstream; builtFrom: string }>();
  private readonly hooksByRoute = new Map<string, BreakerHooks>();
  private readonly controls = new Map<string, RouteControlState>();
  /** Pipelines a reload replaced, until their last request has finished. */
  private readonly retiring = new Set<RoutePipeline>();
  private readonly retirements = new Set<Promise<void>>();
  private readonly closing = new AbortController();

  constructor(
    specs: readonly RouteSpec[],
    private readonly deps: RouteTableDeps,
  ) {
    this.install(specs);
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

  /** Every worker pool with work that may still run: the current routes' and those a reload replaced. */
  pools(): WorkerPool[] {
    return [...this.all(), ...this.retiring].map((route) => route.pool);
  }

  /**
   * Replaces every route at once with `specs` (already validated). What is kept
   * and what starts afresh: see reload.ts. A removed route's operator controls go with it.
   */
  replace(specs: readonly RouteSpec[]): RoutesChange {
    const before = this.routes;
    const downstreamsBefore = [...this.downstreamsByKey.values()];
    this.install(specs);
    const current = new Set(this.all());
    const live = new Set([...this.downstreamsByKey.values()].map(({ downstream }) => downstream.client));
    const change = diffRoutes(before, this.routes);
    for (const name of change.removed) {
      this.controls.delete(name);
      this.hooksByRoute.delete(name);
    }
    this.retire(
      [...before.values()].filter((route) => !current.has(route)),
      downstreamsBefore.map(({ downstream }) => downstream.client).filter((client) => !live.has(client)),
    );
    return change;
  }

  /** The route's operator controls; undefined for an unknown route. */
  control(name: string): RouteControlState | undefined {
    if (!this.routes.has(name)) return undefined;
    return { ...(this.controls.get(name) ?? { breaker: 'auto', paused: false }) };
  }

  /** Forces the breakers the route owns (its target and anonymous fallbacks, not other routes') open or closed, or back to automatic. */
  forceBreaker(name: string, breaker: RouteControlState['breaker']): RouteControlState | undefined {
    return this.setControl(name, { breaker });
  }

  /** Holds (true) or releases (false) the route's queue; see WorkerPool.pause. */
  setPaused(name: string, paused: boolean): RouteControlState | undefined {
    return this.setControl(name, { paused });
  }

  /** Closes every route's own clients; every one runs even when one fails. */
  async close(): Promise<void> {
    this.closing.abort();
    await Promise.allSettled([...this.retirements]);
    const results = await Promise.allSettled(this.all().map((route) => route.downstreams.close()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  private setControl(name: string, change: Partial<RouteControlState>): RouteControlState | undefined {
    const control = this.control(name);
    if (!control) return undefined;
    const next = { ...control, ...change };
    this.controls.set(name, next);
    for (const route of [this.routes.get(name)!, ...[...this.retiring].filter((r) => r.name === name)]) applyControl(route, next);
    return { ...next };
  }

  private install(specs: readonly RouteSpec[]): void {
    const previous = this.downstreamsByKey;
    const next = new Map<string, { downstream: Downstream; builtFrom: string }>();
    const downstreamFor = (spec: RouteSpec, url: string, label: string, hooks: BreakerHooks): Downstream => {
      const key = `${spec.name} ${label}`;
      const builtFrom = downstreamIdentity(spec, url, this.deps.downstreamConnections);
      const found = previous.get(key);
      const downstream = found?.builtFrom === builtFrom ? withCredentials(found.downstream, spec) : buildDownstream(spec, url, label, this.deps, hooks);
      next.set(key, { downstream, builtFrom });
      return downstream;
    };
    const owned = new Map<string, { downstream: Downstream; anonymous: Downstream[]; hooks: BreakerHooks }>();
    for (const spec of specs) {
      // Kept by name: a breaker kept across a reload calls the hooks of its route's current pipeline.
      const hooks = this.hooksByRoute.get(spec.name) ?? { onClosed: [] };
      this.hooksByRoute.set(spec.name, hooks);
      const downstream = downstreamFor(spec, spec.target ?? this.deps.defaultTarget, 'primary', hooks);
      const anonymous = spec.fallbackUrls.map((url, index) => downstreamFor(spec, url, `fallback-${index + 1}`, hooks));
      owned.set(spec.name, { downstream, anonymous, hooks });
    }
    const routes = new Map<string, RoutePipeline>();
    for (const spec of specs) {
      const { downstream, anonymous, hooks } = owned.get(spec.name)!;
      const named = spec.fallbacks.map((name) => owned.get(name)!.downstream);
      const members = [downstream, ...named, ...anonymous];
      const old = this.routes.get(spec.name);
      if (old && canKeepPipeline(old, spec, members)) {
        routes.set(spec.name, old);
        continue;
      }
      hooks.onClosed.length = 0;
      const pipeline = buildPipeline(spec, members, hooks, this.deps, old);
      const control = this.controls.get(spec.name);
      if (control) applyControl(pipeline, control);
      routes.set(spec.name, pipeline);
    }
    this.downstreamsByKey = next;
    this.routes = routes;
  }

  /** Detaches `pipelines` and closes `clients` once the replaced pipelines' last request has finished. */
  private retire(pipelines: RoutePipeline[], clients: DownstreamClient[]): void {
    if (pipelines.length === 0 && clients.length === 0) return;
    for (const route of pipelines) this.retiring.add(route);
    const done = (async () => {
      // A request may have resolved its route just before the reload and reach the pool only after an
      // await (its idempotency key): an idle pool is final only once such a request's deadline has passed.
      await sleep(this.deps.requestDeadlineMs, undefined, { signal: this.closing.signal, ref: false }).catch(() => undefined);
      await Promise.all(pipelines.map((route) => route.pool.whenIdle()));
      for (const route of pipelines) {
        route.detach();
        this.retiring.delete(route);
      }
      await Promise.allSettled(clients.map((client) => client.close()));
    })();
    this.retirements.add(done);
    void done.finally(() => this.retirements.delete(done));
  }
}

/** The breakers a route owns: its target's and its anonymous fallbacks' (a named fallback is another route's). */
function ownedBreakers(route: RoutePipeline): CircuitBreaker[] {
  return route.downstreams.entries.filter(({ downstream }) => downstream.route === route.name).map(({ downstream }) => downstream.breaker);
}

function applyControl(route: RoutePipeline, control: RouteControlState): void {
  const forced = control.breaker === 'auto' ? null : control.breaker;
  // Only a change of the forced state: forcing `auto` again would close a breaker that opened by itself (on a pause, say).
  for (const breaker of ownedBreakers(route)) if (breaker.snapshot().forced !== forced) breaker.force(forced);
  if (control.paused) route.pool.pause(() => new RoutePausedError(route.name));
  else if (route.pool.paused) route.pool.resume();
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

/** `previous`: the route's pipeline before a reload changed it; its AIMD limit and retry budget carry over. */
function buildPipeline(spec: RouteSpec, members: Downstream[], hooks: BreakerHooks, deps: RouteTableDeps, previous?: RoutePipeline): RoutePipeline {
  const { clock, events } = deps;
  const route = spec.name;
  // The pool and the limiter refer to each other through closures: the pool reads the limit, the limiter the pool's use.
  let pool: WorkerPool | undefined;
  const downstreams = new DownstreamSet(members, {
    clock,
    attemptTimeoutMs: spec.timeoutMs,
    calls: { begin: (id) => aimd.begin(id), acquireSlot: (id, wait) => aimd.acquireSlot(id, wait) },
  });
  const aimd: AimdLimiter = new AimdLimiter({
    clock,
    ...spec.aimd,
    min: Math.min(spec.aimd.min, spec.concurrency.max),
    max: spec.concurrency.max,
    initial: previous
      ? carriedLimit(previous.aimd.computedLimit, Math.min(spec.aimd.min, spec.concurrency.max), spec.concurrency.max)
      : Math.min(spec.concurrency.max, Math.max(spec.aimd.min, INITIAL_CONCURRENCY)),
    slowStart: true,
    // Workers taken by calls: one waiting for a rate-limit token is held back by the limiter, not by AIMD.
    // Jobs at their share are held back by the limit itself (the share is a part of it): it counts as used.
    // Else a backlog alone, using half the limit, drifted it to 1.5x that use, which shrank the share with
    // it, down to one job at a time (bench bulkhead: 2,000 jobs not drained in 60 s instead of 35 s).
    inUse: (): number => {
      if (deps.jobsAtShare?.(route)) return aimd.computedLimit;
      return pool ? pool.busy - downstreams.waitingForRateLimit : 0;
    },
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
  const retryBudget =
    previous && sameRetryBudget(previous.spec, spec)
      ? previous.retryBudget
      : (deps.fleet?.retryBudget(route, spec.retryBudget) ?? new RetryBudget({ clock, ...spec.retryBudget }));
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
  const detach = events.on('breaker', (change) => {
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
    detach,
  };
}
