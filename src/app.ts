import { createServer, IncomingMessage, ServerResponse, type Server, type ServerOptions } from 'node:http';
import express, { type ErrorRequestHandler, type Express, type Request, type RequestHandler, type Response } from 'express';
import type { Registry } from 'prom-client';
import type { Clock } from './clock.js';
import { adminRouter } from './http/admin-router.js';
import { dashboardRouter } from './http/dashboard-router.js';
import { dlqRouter } from './http/dlq-router.js';
import { healthRouter } from './http/health-router.js';
import { jobsRouter } from './http/jobs-router.js';
import { openapiRouter } from './http/openapi.js';
import { problemHandler } from './http/problem.js';
import { relayRouter, splitRelayPath } from './http/relay-router.js';
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
  const context = requestContext(deps.logger);
  const relay = relayRouter(deps);
  const problem = problemHandler(deps.logger);
  app.use(context);
  // First: the hot path meets no other router. It passes POST /relay/batch on (a reserved route name) to jobsRouter.
  app.use(relay);
  app.use(jobsRouter(deps));
  app.use(dlqRouter(deps));
  app.use(routesRouter(deps));
  app.use(adminRouter(deps));
  app.use(healthRouter(deps));
  app.use(statsStreamRouter(deps));
  app.use(dashboardRouter(deps));
  app.use(openapiRouter());
  app.use(notFound);
  app.use(problem);
  relayFrontDoor(app, context, relay, problem);
  return app;
}

/** Express's dispatch (`app.handle`, which the app function calls): not in its types. */
interface Dispatching {
  handle(req: IncomingMessage, res: ServerResponse, callback?: (error?: unknown) => void): void;
}

/**
 * A relayed call meets the same three handlers Express would call for it (the
 * request context, the relay router, the problem handler), without Express's
 * router walking its layers and building a final handler per request (6-13% of
 * the relay's CPU per relayed call), and without `app.handle` swapping the
 * prototypes that createRelayServer gave the request at birth (the larger
 * saving: LEARNINGS, "S1"). Every other path, the batch endpoint and an app
 * mounted in another (a callback given) go through Express as before.
 */
function relayFrontDoor(app: Express, context: RequestHandler, relay: RequestHandler, problem: ErrorRequestHandler): void {
  const dispatching = app as unknown as Dispatching;
  const viaExpress = dispatching.handle.bind(app);
  dispatching.handle = (incoming, outgoing, callback) => {
    if (callback !== undefined || incoming.url === undefined || splitRelayPath(incoming.url) === null) return viaExpress(incoming, outgoing, callback);
    // What app.handle and the router set up before the first middleware; the prototypes only where createRelayServer did not.
    if (!Object.prototype.isPrototypeOf.call(app.request, incoming)) {
      Object.setPrototypeOf(incoming, app.request);
      Object.setPrototypeOf(outgoing, app.response);
    }
    const req = incoming as Request;
    const res = outgoing as Response;
    req.res = res;
    res.req = req;
    res.locals ??= Object.create(null) as Response['locals'];
    req.originalUrl ||= req.url;
    req.baseUrl = '';
    // The relay router never passes a relay path on without an error; if it did, the problem handler answers 500 and logs it.
    const fail = (error?: unknown) => problem(error, req, res, () => undefined);
    try {
      context(req, res, () => relay(req, res, fail));
    } catch (error) {
      fail(error);
    }
  };
}

/**
 * The relay's HTTP server: `createServer(options, app)`, with requests and
 * answers made with Express's prototypes from the start. Express otherwise
 * swaps the prototypes of every request and answer (`Object.setPrototypeOf`),
 * which V8 pays for on every later access to those objects in node's http
 * code too: it cost the relay about 40% of its CPU per relayed call (LEARNINGS,
 * "S1"). `app.listen` and supertest still work, without the saving.
 */
export function createRelayServer(app: Express, options: ServerOptions = {}): Server {
  class RelayRequest extends IncomingMessage {}
  class RelayResponse extends ServerResponse<RelayRequest> {}
  Object.setPrototypeOf(RelayRequest.prototype, app.request);
  Object.setPrototypeOf(RelayResponse.prototype, app.response);
  return createServer({ ...options, IncomingMessage: RelayRequest, ServerResponse: RelayResponse }, app);
}
