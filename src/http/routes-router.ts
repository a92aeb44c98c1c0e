import { Router } from 'express';
import type { RoutePipeline, RouteTable } from '../routes/route-pipeline.js';
import { REDACTED, redactUrl } from '../secrets/redact.js';
import { requireAdmin } from './admin.js';
import { methodNotAllowed } from './routing.js';

/** GET /routes (admin): the routes as loaded, with every secret shown as "[redacted]". */
export function routesRouter(deps: { routes: RouteTable; adminToken: string | undefined }): Router {
  const router = Router();
  router
    .route('/routes')
    .get(requireAdmin(deps.adminToken), (_req, res) => {
      res.json({ routes: deps.routes.all().map(presentRoute) });
    })
    .all(methodNotAllowed(['GET']));
  return router;
}

function presentRoute(route: RoutePipeline): Record<string, unknown> {
  const { spec } = route;
  return {
    name: spec.name,
    target: redactUrl(route.downstream.url),
    methods: spec.methods,
    timeoutMs: spec.timeoutMs,
    retry: spec.retry,
    idempotency: spec.idempotency,
    headers: {
      set: Object.fromEntries(Object.keys(spec.headers.set).map((name) => [name, REDACTED])),
      remove: spec.headers.remove,
      secret: spec.headers.secret,
    },
    rateLimit: spec.rateLimit,
    concurrency: spec.concurrency,
    breaker: spec.breaker,
    retryBudget: spec.retryBudget,
    aimd: spec.aimd,
    queue: spec.queue,
    clients: spec.clients.map(() => REDACTED),
    fallbacks: [...spec.fallbacks, ...spec.fallbackUrls.map(redactUrl)],
  };
}
