import type { Express } from 'express';
import type { Dispatcher } from 'undici';
import { createApp } from './app.js';
import { CircuitOpenError } from './errors.js';
import { systemClock, type Clock, type Random } from './clock.js';
import type { Config } from './config.js';
import { DownstreamClient } from './downstream/client.js';
import { UpstreamSet, type Upstream } from './downstream/upstreams.js';
import type { Logger } from './observability/logger.js';
import { createMetrics, type Metrics } from './observability/metrics.js';
import { StatsCollector, type StatsSources } from './observability/stats.js';
import { WorkerPool } from './queue/worker-pool.js';
import { RelayEvents } from './relay-events.js';
import { RelayService } from './relay-service.js';
import { AimdLimiter } from './resilience/aimd.js';
import { CircuitBreaker } from './resilience/circuit-breaker.js';
import { RateLimiter } from './resilience/rate-limiter.js';
import { RetryBudget } from './resilience/retry-budget.js';
import { RetryManager } from './resilience/retry.js';
import { startSimulator, type Simulator } from './sim/simulator.js';
import { DlqRedriver } from './jobs/dlq-redriver.js';
import { JobRunner } from './jobs/job-runner.js';
import { JobService } from './jobs/job-service.js';
import { guardStore } from './storage/guard.js';
import { openRedisStore } from './storage/redis/redis-store.js';
import { openSqliteStore } from './storage/sqlite/sqlite-store.js';
import type { RelayStore } from './storage/types.js';

/** What tests and benchmarks may replace; everything else comes from Config. */
export interface RelayOverrides {
  clock?: Clock;
  random?: Random;
  store?: RelayStore;
  dispatcherFactory?: (origin: string, connections: number) => Dispatcher;
}

export interface Relay {
  app: Express;
  config: Config;
  events: RelayEvents;
  service: RelayService;
  pool: WorkerPool;
  store: RelayStore;
  stats: StatsCollector;
  metrics: Metrics;
  /** The primary downstream and the fallbacks, each with its breaker and rate limit. */
  upstreams: UpstreamSet;
  jobs: JobService;
  jobRunner: JobRunner;
  redriver: DlqRedriver;
  aimd: AimdLimiter;
  retryBudget: RetryBudget;
  /** Where /relay forwards: DOWNSTREAM_URL, or the embedded simulator's URL. */
  downstreamUrl: string;
  /** The embedded simulator, when DOWNSTREAM_URL is unset. */
  simulator: Simulator | undefined;
  /** Stop taking new work (readiness turns 503); queued and in-flight requests go on. */
  beginShutdown(): void;
  /**
   * Ordered, idempotent shutdown: stop taking work, let queued and in-flight
   * requests finish within REQUEST_DEADLINE_MS, abort what is left, close the
   * downstream pool, the store and the simulator. Every step runs even when one fails.
   */
  close(): Promise<void>;
}

const PURGE_INTERVAL_MS = 60_000;
/** Queued requests refused per turn of the event loop when every breaker has opened. */
const REFUSE_BATCH = 16;

/** The composition root: builds the relay from a config object. Never listens. */
export async function buildRelay(config: Config, logger: Logger, overrides: RelayOverrides = {}): Promise<Relay> {
  const clock = overrides.clock ?? systemClock;
  const random = overrides.random ?? Math.random;
  const events = new RelayEvents();

  const simulator = config.downstreamUrl
    ? undefined
    : await startSimulator({
        profile: { failRate: config.sim.failRate, latencyMs: config.sim.latencyMs },
        ...(config.adminToken ? { adminToken: config.adminToken } : {}),
      });
  const downstreamUrl = config.downstreamUrl ?? `${simulator!.url}/`;

  // While a store is down every poll and request fails: one line per context per second says so without flooding.
  const lastStoreWarning = new Map<string, number>();
  const onStoreError = (error: unknown, context: string) => {
    const now = clock.now();
    if (now - (lastStoreWarning.get(context) ?? Number.NEGATIVE_INFINITY) < 1_000) return;
    lastStoreWarning.set(context, now);
    logger.warn({ err: error, context }, 'store operation failed');
  };
  const store = guardStore(overrides.store ?? (await openStore(config, (error) => logger.warn({ err: error }, 'redis connection trouble'))), onStoreError);
  const upstreams = new UpstreamSet(
    [downstreamUrl, ...config.fallbackUrls].map((url, index): Upstream => {
      const name = index === 0 ? 'primary' : `fallback-${index}`;
      const limiter = new RateLimiter({ clock, ...config.rateLimit });
      const breaker = new CircuitBreaker({
        clock,
        ...config.breaker,
        onStateChange: (change) => {
          if (change.to === 'closed') {
            // Slow start again after an outage: the recovered downstream gets a ramp, not the backlog at once.
            limiter.startWarmup();
            aimd.forgetCeiling();
          }
          events.emit('breaker', { upstream: name, ...change });
        },
      });
      const client = new DownstreamClient({
        url,
        connections: config.downstreamConnections,
        ...(overrides.dispatcherFactory ? { dispatcherFactory: overrides.dispatcherFactory } : {}),
      });
      return { name, url, client, breaker, limiter };
    }),
    {
      clock,
      attemptTimeoutMs: config.downstreamTimeoutMs,
      calls: { begin: () => aimd.begin() },
    },
  );
  const aimd = new AimdLimiter({
    clock,
    ...config.aimd,
    max: config.workers,
    // Workers taken by calls: one waiting for a rate-limit token is held back by the limiter, not by AIMD.
    inUse: (): number => pool.busy - upstreams.waitingForRateLimit,
    onChange: (change) => {
      events.emit('aimd', change);
      // Outside the caller's stack: a rise may start queued tasks.
      if (change.to > change.from) queueMicrotask(() => pool.poke());
    },
  });
  const retryBudget = new RetryBudget({ clock, ...config.retryBudget });
  const pool = new WorkerPool({
    workers: config.workers,
    capacity: config.queueCapacity,
    clock,
    fallbackRetryAfterS: Math.max(1, Math.ceil(config.downstreamTimeoutMs / 1000)),
    lowPriorityMaxFill: config.lowPriorityMaxFill,
    limit: () => aimd.limit,
    onShed: (event) => events.emit('shed', event),
  });
  const retry = new RetryManager({
    ...config.retry,
    attemptTimeoutMs: config.downstreamTimeoutMs,
    requestDeadlineMs: config.requestDeadlineMs,
    clock,
    random,
    budget: retryBudget,
    onAttempt: (record) =>
      events.emit('attempt', { outcome: record.outcome, status: record.status, durationMs: record.durationMs, upstream: record.upstream }),
    onRetry: (event) => events.emit('retry', event),
  });
  events.on('breaker', (change) => {
    logger.warn({ upstream: change.upstream, from: change.from, to: change.to, reason: change.reason, mode: config.breaker.mode }, `circuit ${change.upstream}: ${change.from} -> ${change.to} (${change.reason})`);
  });
  // When the last breaker opens, the queue is refused at once rather than one by one as workers free up;
  // in batches, so that requests arriving meanwhile get their fail-fast answer without waiting behind it.
  const refuseQueue = () => {
    const openForMs = upstreams.allOpenForMs();
    if (openForMs === null) return;
    if (pool.rejectWaiting(() => new CircuitOpenError(openForMs), REFUSE_BATCH) === REFUSE_BATCH) setImmediate(refuseQueue);
  };
  events.on('breaker', (change) => {
    if (change.to === 'open') setImmediate(refuseQueue);
  });
  events.on('aimd', (change) => logger.debug({ from: change.from, to: change.to, reason: change.reason }, 'concurrency limit changed'));
  const service = new RelayService({
    pool,
    retry,
    upstreams,
    store,
    events,
    clock,
    requestDeadlineMs: config.requestDeadlineMs,
    idempotencyTtlMs: config.idempotencyTtlS * 1000,
  });
  const jobRunner = new JobRunner({
    store,
    pool,
    upstreams,
    events,
    clock,
    random,
    ...config.jobs,
    attemptTimeoutMs: config.downstreamTimeoutMs,
    onError: onStoreError,
  });
  const jobs = new JobService({ store, events, clock, onAccepted: () => jobRunner.wake() });
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

  const sources: StatsSources = {
    queue: () => ({
      depth: pool.depth,
      capacity: pool.capacity,
      workers: pool.workers,
      busy: pool.busy,
      backingOff: pool.backingOff,
      concurrencyLimit: pool.concurrencyLimit,
      byPriority: pool.depthByPriority,
    }),
    dlqSize: () => store.dlq.size(),
    jobCounts: () => store.jobs.counts(),
    protections: () => ({
      breakers: Object.fromEntries(upstreams.upstreams.map((u) => [u.name, { url: u.url, ...u.breaker.snapshot() }])),
      rateLimit: Object.fromEntries(upstreams.upstreams.map((u) => [u.name, u.limiter.snapshot()])),
      retryBudget: retryBudget.snapshot(),
      aimd: aimd.snapshot(),
    }),
  };
  const stats = new StatsCollector({ events, clock, sources, windowMs: config.statsWindowS * 1000 });
  const metrics = createMetrics({ events, sources });

  const purgeTimer = setInterval(() => {
    const now = clock.now();
    const warn = (what: string) => (error: unknown) => logger.warn({ err: error }, `${what} purge failed`);
    store.idempotency.purgeExpired(now).catch(warn('idempotency'));
    store.dlq.purgeOlderThan(now - config.dlq.retentionS * 1000).catch(warn('dlq'));
    store.jobs.purgeFinishedBefore(now - config.jobs.retentionS * 1000).catch(warn('jobs'));
  }, PURGE_INTERVAL_MS);
  purgeTimer.unref();

  const app = createApp({
    service,
    jobs,
    redriver,
    store,
    events,
    stats,
    registry: metrics.registry,
    logger,
    clock,
    maxBodyBytes: config.maxBodyBytes,
    adminToken: config.adminToken,
  });
  jobRunner.start();
  // Check at most once a minute, and at least as often as the cool-down, for transient entries to redrive.
  redriver.startAuto(Math.max(1_000, Math.min(60_000, config.dlq.redriveCooldownS * 1000)));

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      service.beginShutdown();
      jobs.beginShutdown();
      clearInterval(purgeTimer);
      await step(logger, 'jobs.stop', () => jobRunner.stop());
      await step(logger, 'redrive', () => redriver.close());
      await step(logger, 'drain', () =>
        drainWithin(pool, config.requestDeadlineMs, () => {
          service.abortInFlight();
          jobRunner.abortInFlight();
        }),
      );
      // Leased jobs the pool refused store their way back to the queue outside it.
      await step(logger, 'jobs', () => jobRunner.settled());
      await step(logger, 'downstream', () => upstreams.close());
      await step(logger, 'observability', async () => {
        stats.close();
        metrics.close();
      });
      await step(logger, 'store', () => store.close());
      if (simulator) await step(logger, 'simulator', () => simulator.close());
    })());

  return {
    app,
    config,
    events,
    service,
    pool,
    store,
    stats,
    metrics,
    upstreams,
    jobs,
    jobRunner,
    redriver,
    aimd,
    retryBudget,
    downstreamUrl,
    simulator,
    beginShutdown: () => {
      service.beginShutdown();
      jobs.beginShutdown();
      void jobRunner.stop();
    },
    close,
  };
}

/** Waits for the pool to empty; past the grace period, aborts in-flight attempts and waits for them to settle. */
async function drainWithin(pool: WorkerPool, graceMs: number, abortInFlight: () => void): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const graceOver = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), graceMs);
  });
  try {
    const result = await Promise.race([pool.whenIdle().then(() => 'idle' as const), graceOver]);
    if (result === 'timeout') {
      abortInFlight();
      await pool.whenIdle();
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
