import { hkdfSync } from 'node:crypto';
import type { Express } from 'express';
import type { Dispatcher } from 'undici';
import { createApp } from './app.js';
import { StatsStreams } from './http/stats-stream.js';
import { systemClock, type Clock, type Random } from './clock.js';
import type { Config } from './config.js';
import { DlqRedriver } from './jobs/dlq-redriver.js';
import { JobRunner } from './jobs/job-runner.js';
import { JobService } from './jobs/job-service.js';
import type { Logger } from './observability/logger.js';
import type { Tracing } from './observability/tracing.js';
import { createMetrics, type Metrics } from './observability/metrics.js';
import { StatsCollector, type RouteSources, type StatsSources } from './observability/stats.js';
import type { WorkerPool } from './queue/worker-pool.js';
import { RelayEvents } from './relay-events.js';
import { RelayService } from './relay-service.js';
import { RouteControl } from './routes/route-control.js';
import { RouteTable, type RoutePipeline } from './routes/route-pipeline.js';
import type { RouteSpec } from './routes/route-spec.js';
import { HeaderVault } from './secrets/header-vault.js';
import { redactUrl } from './secrets/redact.js';
import { SecretBox } from './secrets/secret-box.js';
import { startSimulator, type Simulator } from './sim/simulator.js';
import { guardStore } from './storage/guard.js';
import { openRedisStore } from './storage/redis/redis-store.js';
import { startFleetState } from './fleet/fleet-state.js';
import { openSqliteStore } from './storage/sqlite/sqlite-store.js';
import type { RelayStore } from './storage/types.js';

/** What tests and benchmarks may replace; everything else comes from Config. */
export interface RelayOverrides {
  clock?: Clock;
  random?: Random;
  store?: RelayStore;
  dispatcherFactory?: (origin: string, connections: number) => Dispatcher;
  /** OpenTelemetry tracing (main.ts starts it from the OTEL_* variables); the relay shuts it down last. @default undefined (off) */
  tracing?: Tracing | undefined;
  /**
   * How POST /admin/reload and SIGHUP read the routes again (main.ts: ENV_FILE, then
   * ROUTES_FILE); throws ConfigError for a bad file. @default undefined (reload answers 503)
   */
  loadRoutes?: () => RouteSpec[] | Promise<RouteSpec[]>;
}

export interface Relay {
  app: Express;
  config: Config;
  events: RelayEvents;
  service: RelayService;
  routes: RouteTable;
  /** Force breakers, pause and resume routes, reload the routes (POST /admin/*, SIGHUP). */
  control: RouteControl;
  /** The `default` route (or the first one): what POST /relay and the top of /stats describe. */
  main: RoutePipeline;
  store: RelayStore;
  stats: StatsCollector;
  metrics: Metrics;
  jobs: JobService;
  jobRunner: JobRunner;
  redriver: DlqRedriver;
  /** Where the `default` route forwards: DOWNSTREAM_URL, or the embedded simulator's URL (user-info included: never log it). */
  downstreamUrl: string;
  /** The embedded simulator, when no route has a target. */
  simulator: Simulator | undefined;
  /** Stop taking new work (readiness turns 503); queued and in-flight requests go on. */
  beginShutdown(): void;
  /**
   * Ordered, idempotent shutdown: stop taking work, let queued and in-flight
   * requests finish within REQUEST_DEADLINE_MS, abort what is left, close the
   * downstream pools, the store and the simulator. Every step runs even when one fails.
   */
  close(): Promise<void>;
}

const PURGE_INTERVAL_MS = 60_000;

/** The composition root: builds the relay from a config object, in small steps. Never listens. */
export async function buildRelay(config: Config, logger: Logger, overrides: RelayOverrides = {}): Promise<Relay> {
  const clock = overrides.clock ?? systemClock;
  const random = overrides.random ?? Math.random;
  const events = new RelayEvents();
  const simulator = await startEmbeddedSimulator(config);
  const onStoreError = storeErrorLogger(logger, clock);
  const store = guardStore(overrides.store ?? (await openStore(config, (error) => logger.warn({ err: error }, 'redis connection trouble'))), onStoreError);
  // STORE=redis: the route protections are the fleet's (issue 14).
  const fleet =
    config.store === 'redis'
      ? await startFleetState({ url: config.redisUrl, prefix: config.redisPrefix, clock, logger, events, ...config.fleet })
      : undefined;
  // The job runner needs the routes, and a route's AIMD asks it whether the route's jobs are at their share.
  let jobRunner: JobRunner | undefined;
  const routes = new RouteTable(config.routes, {
    jobsAtShare: (route) => jobRunner?.atShare(route) ?? false,
    clock,
    random,
    events,
    requestDeadlineMs: config.requestDeadlineMs,
    downstreamConnections: config.downstreamConnections,
    maxResponseBytes: config.maxResponseBytes,
    defaultTarget: simulator ? `${simulator.url}/` : '',
    ...(overrides.dispatcherFactory ? { dispatcherFactory: overrides.dispatcherFactory } : {}),
    ...(fleet ? { fleet: fleet.protections } : {}),
  });
  const main = routes.get('default') ?? routes.all()[0]!;
  logProtectionChanges(events, logger);
  logDlqEntries(events, logger);
  const vault = new HeaderVault(config.secretKey ? new SecretBox(config.secretKey) : undefined);
  const service = new RelayService({
    routes,
    store,
    events,
    clock,
    vault,
    requestDeadlineMs: config.requestDeadlineMs,
    idempotencyTtlMs: config.idempotencyTtlS * 1000,
    tracing: overrides.tracing,
  });
  jobRunner = new JobRunner({ store, routes, vault, events, clock, random, ...config.jobs, onError: onStoreError, tracing: overrides.tracing });
  const jobs = new JobService({ store, events, clock, vault, quotas: config.quotas, schedule: config.jobs, random, onAccepted: () => jobRunner.wake() });
  const redriver = new DlqRedriver({
    store,
    events,
    clock,
    onMoved: () => jobRunner.wake(),
    ratePerSecond: config.dlq.redriveRatePerS,
    autoMaxRedrives: config.dlq.redriveMax,
    autoCooldownMs: config.dlq.redriveCooldownS * 1000,
    onError: onStoreError,
  });
  const sources: StatsSources = { ...statsSources(routes, store, config.quotas), ...(fleet ? { fleet: () => fleet.snapshot() } : {}) };
  const stats = new StatsCollector({ events, clock, sources, windowMs: config.statsWindowS * 1000 });
  const control = new RouteControl({
    routes,
    logger,
    loadRoutes: overrides.loadRoutes,
    hasEmbeddedSimulator: simulator !== undefined,
    wakeJobs: () => jobRunner.wake(),
    share: fleet?.controls,
  });
  // Before the relay serves: a hold the fleet keeps (forced breaker, pause) applies to the first request.
  await control.start();
  const metrics = createMetrics({ events, sources, adminActions: control });
  const statsStreams = new StatsStreams({ snapshot: () => stats.snapshot() });
  const purgeTimer = startPurges(store, config, clock, logger);

  const app = createApp({
    service,
    jobs,
    routes,
    control,
    redriver,
    store,
    events,
    stats,
    statsStreams,
    registry: metrics.registry,
    logger,
    clock,
    maxBodyBytes: config.maxBodyBytes,
    adminToken: config.adminToken,
    credentialKey: credentialKey(config.secretKey),
  });
  jobRunner.start();
  // Check at most once a minute, and at least as often as the cool-down, for transient entries to redrive.
  redriver.startAuto(Math.max(1_000, Math.min(60_000, config.dlq.redriveCooldownS * 1000)));

  const beginShutdown = () => {
    service.beginShutdown();
    jobs.beginShutdown();
    // An open dashboard would otherwise hold the server open until the last connection is cut.
    statsStreams.close();
  };
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      beginShutdown();
      clearInterval(purgeTimer);
      await step(logger, 'jobs.stop', () => jobRunner.stop());
      await step(logger, 'redrive', () => redriver.close());
      await step(logger, 'drain', () =>
        drainWithin(routes.pools(), config.requestDeadlineMs, () => {
          service.abortInFlight();
          jobRunner.abortInFlight();
        }),
      );
      // Leased jobs the pool refused store their way back to the queue outside it.
      await step(logger, 'jobs', () => jobRunner.settled());
      // Prefer wait: an attempt in flight at N stores its outcome on its job after the drain.
      await step(logger, 'held jobs', () => jobs.settled());
      await step(logger, 'downstream', () => routes.close());
      await step(logger, 'observability', async () => {
        stats.close();
        metrics.close();
      });
      if (fleet) await step(logger, 'fleet', () => fleet.close());
      await step(logger, 'store', () => store.close());
      if (simulator) await step(logger, 'simulator', () => simulator.close());
      // Last, so that the spans of requests answered while draining are sent too.
      const { tracing } = overrides;
      if (tracing) await step(logger, 'tracing', () => tracing.shutdown());
    })());

  return {
    app,
    config,
    events,
    service,
    routes,
    control,
    main,
    store,
    stats,
    metrics,
    jobs,
    jobRunner,
    redriver,
    downstreamUrl: main.downstream.url,
    simulator,
    beginShutdown: () => {
      beginShutdown();
      void jobRunner.stop();
    },
    close,
  };
}

/** The embedded flaky downstream, when a route (the `default` one from the environment) has no target. */
async function startEmbeddedSimulator(config: Config): Promise<Simulator | undefined> {
  if (config.routes.every((route) => route.target !== undefined)) return undefined;
  return startSimulator({
    profile: { failRate: config.sim.failRate, latencyMs: config.sim.latencyMs },
    ...(config.adminToken ? { adminToken: config.adminToken } : {}),
  });
}

/** While a store is down every poll and request fails: one line per context per second says so without flooding. */
function storeErrorLogger(logger: Logger, clock: Clock): (error: unknown, context: string) => void {
  const lastWarning = new Map<string, number>();
  return (error, context) => {
    const now = clock.now();
    if (now - (lastWarning.get(context) ?? Number.NEGATIVE_INFINITY) < 1_000) return;
    lastWarning.set(context, now);
    logger.warn({ err: error, context }, 'store operation failed');
  };
}

function logProtectionChanges(events: RelayEvents, logger: Logger): void {
  events.on('breaker', (change) => {
    logger.warn(
      { route: change.route, upstream: change.upstream, from: change.from, to: change.to, reason: change.reason },
      `circuit ${change.route}/${change.upstream}: ${change.from} -> ${change.to} (${change.reason})`,
    );
  });
  events.on('aimd', (change) => logger.debug({ route: change.route, from: change.from, to: change.to, reason: change.reason }, 'concurrency limit changed'));
}

/** One line per quarantined request, at warn: the id is what an operator replays or inspects (GET /dlq/{id}). */
function logDlqEntries(events: RelayEvents, logger: Logger): void {
  events.on('dlq', (event) => {
    if (event.action !== 'added') return;
    const { id: dlqId, route, reason, status, attempts, lastError, jobId } = event;
    logger.warn(
      { dlqId, route, reason, status, attempts, lastError, ...(jobId === null ? {} : { jobId }) },
      `dead-lettered ${dlqId} (route ${route}, ${status} after ${attempts} attempt(s): ${lastError})`,
    );
  });
}

function statsSources(routes: RouteTable, store: RelayStore, quotas: Config['quotas']): StatsSources {
  return {
    routes: () =>
      Object.fromEntries(
        routes.all().map((route): [string, RouteSources] => {
          const { pool, downstreams } = route;
          const members = downstreams.entries;
          return [
            route.name,
            {
              queue: {
                depth: pool.depth,
                capacity: pool.capacity,
                workers: pool.workers,
                busy: pool.busy,
                backingOff: pool.backingOff,
                concurrencyLimit: pool.concurrencyLimit,
                byPriority: pool.depthByPriority,
              },
              protections: {
                breakers: Object.fromEntries(members.map(({ label, downstream }) => [label, { url: redactUrl(downstream.url), ...downstream.breaker.snapshot() }])),
                rateLimit: Object.fromEntries(
                  members.flatMap(({ label, downstream }) => (downstream.limiter ? [[label, downstream.limiter.snapshot()] as const] : [])),
                ),
                retryBudget: route.retryBudget.snapshot(),
                aimd: route.aimd.snapshot(),
              },
              control: routes.control(route.name)!,
            },
          ];
        }),
      ),
    dlqSize: () => store.dlq.size(),
    jobCounts: () => store.jobs.counts(),
    usage: async () => {
      const [jobs, dlq] = await Promise.all([store.jobs.usage(), store.dlq.usage()]);
      return { jobs, dlq };
    },
    quotas,
  };
}

function startPurges(store: RelayStore, config: Config, clock: Clock, logger: Logger): NodeJS.Timeout {
  const timer = setInterval(() => {
    const now = clock.now();
    const warn = (what: string) => (error: unknown) => logger.warn({ err: error }, `${what} purge failed`);
    store.idempotency.purgeExpired(now).catch(warn('idempotency'));
    store.dlq.purgeOlderThan(now - config.dlq.retentionS * 1000).catch(warn('dlq'));
    store.jobs.purgeFinishedBefore(now - config.jobs.retentionS * 1000).catch(warn('jobs'));
  }, PURGE_INTERVAL_MS);
  timer.unref();
  return timer;
}

/**
 * The key that scopes idempotency keys to a client's credential. From
 * RELAY_SECRET_KEY when set (HKDF, so the encryption key itself is never used
 * twice); else a fixed key: still not a plain hash of the credential, but only
 * as strong as the credential itself against a dictionary (LEARNINGS.md).
 */
function credentialKey(secretKey: Buffer | undefined): Buffer {
  const material = secretKey ?? Buffer.from('resilient-relay key scope (no RELAY_SECRET_KEY)');
  return Buffer.from(hkdfSync('sha256', material, Buffer.alloc(0), 'resilient-relay idempotency key scope', 32));
}

/** Waits for every pool to empty; past the grace period, aborts in-flight attempts and waits for them to settle. */
async function drainWithin(pools: WorkerPool[], graceMs: number, abortInFlight: () => void): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const graceOver = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), graceMs);
  });
  const idle = () => Promise.all(pools.map((pool) => pool.whenIdle()));
  try {
    const result = await Promise.race([idle().then(() => 'idle' as const), graceOver]);
    if (result === 'timeout') {
      abortInFlight();
      await idle();
    }
  } finally {
    clearTimeout(timer);
  }
}

async function step(logger: Logger, name: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (error) {
    logger.error({ err: error, step: name }, 'shutdown step failed');
  }
}

async function openStore(config: Config, onRedisError: (error: unknown) => void): Promise<RelayStore> {
  if (config.store === 'redis') return openRedisStore({ url: config.redisUrl, prefix: config.redisPrefix, onError: onRedisError });
  return openSqliteStore({ path: config.sqlitePath });
}
