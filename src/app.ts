import express, { type Express } from 'express';
import type { Registry } from 'prom-client';
import type { Clock } from './clock.js';
import { adminRouter } from './http/admin-router.js';
import { dashboardRouter } from './http/dashboard-router.js';
import { dlqRouter } from './http/dlq-router.js';
import { healthRouter } from './http/health-router.js';
import { jobsRouter } from './http/jobs-router.js';
import { openapiRouter } from './http/openapi.js';
import { problemHandler } from './http/problem.js';
import { relayRouter } from './http/relay-router.js';
import { routesRouter } from './http/routes-router.js';
import { statsStreamRouter, type StatsStreams } from './http/stats-stream.js';
import { requestContext } from './http/request-context.js';
import { notFound } from './http/routing.js';
import type { Logger } from './observability/logger.js';
import type { StatsCollector } from './observability/stats.js';
import type { RelayEvents } from './relay-events.js';
import type { DlqRedriver } from './jobs/dlq-redriver.js';
import type { JobService } from './jobs/job-service.js';
import type { RelayService } from './relay-service.js';
import type { RouteControl } from './routes/route-control.js';
import type { RouteTable } from './routes/route-pipeline.js';
import type { RelayStore } from './storage/types.js';

export interface AppDeps {
  service: RelayService;
  jobs: JobService;
  routes: RouteTable;
  /** Runtime control of the routes: POST /admin/*. */
  control: RouteControl;
  redriver: DlqRedriver;
  store: RelayStore;
  events: RelayEvents;
  stats: StatsCollector;
  /** The open GET /stats/stream answers; the relay ends them when it shuts down. */
  statsStreams: StatsStreams;
  registry: Registry;
  logger: Logger;
  clock: Clock;
  maxBodyBytes: number;
  adminToken: string | undefined;
  /** Scopes idempotency keys to a client's credential. */
  credentialKey: Buffer;
}

/** Builds the HTTP behaviour; never listens (main.ts and tests do). */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(requestContext(deps.logger));
  // First: the hot path meets no other router. It passes POST /relay/batch on (a reserved route name) to jobsRouter.
  app.use(relayRouter(deps));
  app.use(jobsRouter(deps));
  app.use(dlqRouter(deps));
  app.use(routesRouter(deps));
  app.use(adminRouter(deps));
  app.use(healthRouter(deps));
  app.use(statsStreamRouter(deps));
  app.use(dashboardRouter(deps));
  app.use(openapiRouter());
  app.use(notFound);
  app.use(problemHandler(deps.logger));
  return app;
}
