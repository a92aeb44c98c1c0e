import { Router, json, type Request } from 'express';
import { z } from 'zod';
import { BadRequestError } from '../errors.js';
import type { RouteControl } from '../routes/route-control.js';
import { requireAdmin } from './admin.js';
import { methodNotAllowed } from './routing.js';

const breakerBody = z.object({ state: z.enum(['open', 'closed', 'auto']) });

/**
 * Runtime control (admin; contract: "Operator console and control"):
 * POST /admin/routes/{name}/breaker, /pause, /resume and POST /admin/reload.
 * Each answers 200 with the new state; 404 for an unknown route, 400 for a bad body;
 * with STORE=redis, 503 STORE_UNAVAILABLE when Redis cannot keep a hold for the fleet.
 */
export function adminRouter(deps: { control: RouteControl; adminToken: string | undefined }): Router {
  const router = Router();
  const { control } = deps;
  // What the log says of who asked: never the token itself.
  const who = deps.adminToken === undefined ? 'loopback' : 'token';
  router.use('/admin', requireAdmin(deps.adminToken));
  router
    .route('/admin/routes/:name/breaker')
    // Any content type is read as JSON: a body that is not `{ "state": ... }` is a 400 either way.
    .post(json({ limit: '4kb', type: () => true }), async (req, res) => {
      const body = breakerBody.safeParse(req.body);
      if (!body.success) {
        throw new BadRequestError('The body must be {"state": "open" | "closed" | "auto"}.');
      }
      res.json(await control.forceBreaker(routeName(req), body.data.state, who));
    })
    .all(methodNotAllowed(['POST']));
  router
    .route('/admin/routes/:name/pause')
    .post(async (req, res) => {
      res.json(await control.setPaused(routeName(req), true, who));
    })
    .all(methodNotAllowed(['POST']));
  router
    .route('/admin/routes/:name/resume')
    .post(async (req, res) => {
      res.json(await control.setPaused(routeName(req), false, who));
    })
    .all(methodNotAllowed(['POST']));
  router
    .route('/admin/reload')
    .post(async (_req, res) => {
      res.json(await control.reload(who));
    })
    .all(methodNotAllowed(['POST']));
  return router;
}

function routeName(req: Request): string {
  return String(req.params.name ?? '');
}
