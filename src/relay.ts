import type { Express } from 'express';
import type { Dispatcher } from 'undici';
import { createApp } from './app.js';
import { systemClock, type Clock, type Random } from './clock.js';
import type { Config } from './config.js';
import { DownstreamClient } from './downstream/client.js';
import type { Logger } from './observability/logger.js';
import { createMetrics, type Metrics } from './observability/metrics.js';
import { StatsCollector, type StatsSources } from './observability/stats.js';
import { WorkerPool } from './queue/worker-pool.js';
import { RelayEvents } from './relay-events.js';
import { RelayService } from './relay-service.js';
import { RetryManager } from './resilience/retry.js';
import { startSimulator, type Simulator } from './sim/simulator.js';
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

  const store = overrides.store ?? openSqliteStore({ path: config.sqlitePath });
  const client = new DownstreamClient({
    url: downstreamUrl,
    connections: config.downstreamConnections,
    ...(overrides.dispatcherFactory ? { dispatcherFactory: overrides.dispatcherFactory } : {}),
  });
  const pool = new WorkerPool({
    workers: config.workers,
    capacity: config.queueCapacity,
    clock,
    fallbackRetryAfterS: Math.max(1, Math.ceil(config.downstreamTimeoutMs / 1000)),
  });
  const retry = new RetryManager({
    ...config.retry,
    attemptTimeoutMs: config.downstreamTimeoutMs,
    clock,
    random,
    onAttempt: (record) => events.emit('attempt', { outcome: record.outcome, status: record.status, durationMs: record.durationMs }),
    onRetry: (event) => events.emit('retry', event),
  });
  const service = new RelayService({
    pool,
    retry,
    client,
    store,
    events,
    clock,
    requestDeadlineMs: config.requestDeadlineMs,
    idempotencyTtlMs: config.idempotencyTtlS * 1000,
    onStoreError: (error, context) => logger.warn({ err: error, context }, 'store operation failed'),
  });

  const sources: StatsSources = {
    queue: () => ({ depth: pool.depth, capacity: pool.capacity, workers: pool.workers, busy: pool.busy }),
    dlqSize: () => store.dlq.size(),
  };
  const stats = new StatsCollector({ events, clock, sources, windowMs: config.statsWindowS * 1000 });
  const metrics = createMetrics({ events, sources });

  const purgeTimer = setInterval(() => {
    store.idempotency.purgeExpired(clock.now()).catch((error: unknown) => logger.warn({ err: error }, 'idempotency purge failed'));
  }, PURGE_INTERVAL_MS);
  purgeTimer.unref();

  const app = createApp({ service, store, events, stats, registry: metrics.registry, logger, clock, maxBodyBytes: config.maxBodyBytes, adminToken: config.adminToken });

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      service.beginShutdown();
      clearInterval(purgeTimer);
      await step(logger, 'drain', () => drainWithin(pool, service, config.requestDeadlineMs));
      await step(logger, 'downstream', () => client.close());
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
    downstreamUrl,
    simulator,
    beginShutdown: () => service.beginShutdown(),
    close,
  };
}

/** Waits for the pool to empty; past the grace period, aborts in-flight attempts and waits for them to settle. */
async function drainWithin(pool: WorkerPool, service: RelayService, graceMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const graceOver = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), graceMs);
  });
  try {
    const result = await Promise.race([pool.whenIdle().then(() => 'idle' as const), graceOver]);
    if (result === 'timeout') {
      service.abortInFlight();
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
