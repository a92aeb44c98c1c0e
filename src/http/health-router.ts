import { Router } from 'express';
import type { Registry } from 'prom-client';
import type { StatsCollector } from '../observability/stats.js';
import type { RelayService } from '../relay-service.js';
import type { RelayStore } from '../storage/types.js';
import { requireAdmin } from './admin.js';
import { methodNotAllowed } from './routing.js';

const HEALTH_JSON = 'application/health+json';
const STORE_PING_TIMEOUT_MS = 1_000;

/** /health (liveness), /ready (readiness), /stats (JSON RED, admin), /metrics (Prometheus). */
export function healthRouter(deps: { service: RelayService; store: RelayStore; stats: StatsCollector; registry: Registry; adminToken: string | undefined }): Router {
  const router = Router();

  router
    .route('/health')
    .get((_req, res) => {
      res.type(HEALTH_JSON).send(JSON.stringify({ status: 'pass' }));
    })
    .all(methodNotAllowed(['GET']));

  router
    .route('/ready')
    .get(async (_req, res) => {
      const ping = await pingWithin(deps.store, STORE_PING_TIMEOUT_MS);
      const accepting = deps.service.isClosing ? { status: 'fail', output: 'shutting down' } : { status: 'pass' };
      // A fleet exists only with STORE=redis. Redis lost is the whole fleet's at once (contract): a warning,
      // since failing readiness everywhere would drain every instance; unkeyed traffic needs no store.
      const fleet = deps.stats.fleet();
      const store = ping.status === 'fail' && fleet !== null ? { ...ping, status: 'warn' } : ping;
      const ready = store.status !== 'fail' && accepting.status === 'pass';
      const fleetCheck =
        fleet === null
          ? {}
          : { 'fleet:shared-state': [fleet.redis === 'ok' ? { status: 'pass', observedValue: fleet.instances } : { status: 'warn', output: `Redis lost: each instance enforces 1/${fleet.instances} of the limits alone` }] };
      const status = !ready ? 'fail' : store.status === 'warn' || fleet?.redis === 'lost' ? 'warn' : 'pass';
      res
        .status(ready ? 200 : 503)
        .type(HEALTH_JSON)
        .send(JSON.stringify({ status, checks: { 'store:responsive': [store], 'relay:accepting': [accepting], ...fleetCheck } }));
    })
    .all(methodNotAllowed(['GET']));

  // Admin (contract): it names routes, targets' health and DLQ sizes; /metrics stays public for scrapers.
  router
    .route('/stats')
    .get(requireAdmin(deps.adminToken), async (_req, res) => {
      res.json(await deps.stats.snapshot());
    })
    .all(methodNotAllowed(['GET']));

  router
    .route('/metrics')
    .get(async (_req, res) => {
      const text = await deps.registry.metrics();
      res.type(deps.registry.contentType).send(text);
    })
    .all(methodNotAllowed(['GET']));

  return router;
}

async function pingWithin(store: RelayStore, timeoutMs: number): Promise<{ status: 'pass' | 'fail'; output?: string }> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      store.ping(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return { status: 'pass' };
  } catch (error) {
    return { status: 'fail', output: (error as Error).message };
  } finally {
    clearTimeout(timer);
  }
}
