import { Router } from 'express';
import { z } from 'zod';
import { BadRequestError, NotFoundError } from '../errors.js';
import type { RelayEvents } from '../relay-events.js';
import type { RelayService } from '../relay-service.js';
import { InvalidCursorError, type DlqEntry, type RelayStore } from '../storage/types.js';
import { requireAdmin } from './admin.js';
import { methodNotAllowed } from './routing.js';

const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().min(1).max(512).optional(),
});

const idParam = z.string().min(1).max(128);

/** The dead-letter queue: inspect, replay, delete. Admin only. */
export function dlqRouter(deps: { service: RelayService; store: RelayStore; events: RelayEvents; adminToken: string | undefined }): Router {
  const router = Router();
  router.use('/dlq', requireAdmin(deps.adminToken));

  router
    .route('/dlq')
    .get(async (req, res) => {
      const query = listQuery.safeParse(req.query);
      if (!query.success) throw new BadRequestError('limit must be a whole number from 1 to 500; cursor must be a value from nextCursor.');
      try {
        const page = await deps.store.dlq.list(query.data);
        res.json({ items: page.items.map(presentEntry), nextCursor: page.nextCursor });
      } catch (error) {
        if (error instanceof InvalidCursorError) throw new BadRequestError('cursor is not a value this relay returned as nextCursor.');
        throw error;
      }
    })
    .all(methodNotAllowed(['GET']));

  router
    .route('/dlq/:id')
    .get(async (req, res) => {
      const entry = await deps.store.dlq.get(idParam.parse(req.params.id));
      if (!entry) throw new NotFoundError(`No dead-letter entry with id ${JSON.stringify(req.params.id)}.`);
      res.json(presentEntry(entry));
    })
    .delete(async (req, res) => {
      const removed = await deps.store.dlq.remove(idParam.parse(req.params.id));
      if (!removed) throw new NotFoundError(`No dead-letter entry with id ${JSON.stringify(req.params.id)}.`);
      deps.events.emit('dlq', { action: 'deleted' });
      res.status(204).end();
    })
    .all(methodNotAllowed(['GET', 'DELETE']));

  router
    .route('/dlq/:id/replay')
    .post(async (req, res) => {
      const { answer } = await deps.service.replay(idParam.parse(req.params.id));
      res.json({ outcome: 'delivered', status: answer.status, body: decodeBody(answer.body), attempts: answer.attempts });
    })
    .all(methodNotAllowed(['POST']));

  return router;
}

/** The API view of an entry: the body as JSON (it was validated as JSON on the way in), no fingerprint. */
export function presentEntry(entry: DlqEntry) {
  return {
    id: entry.id,
    createdAt: entry.createdAt,
    updatedAt: entry.updatedAt,
    idempotencyKey: entry.idempotencyKey,
    status: entry.status,
    lastError: entry.lastError,
    replays: entry.replays,
    headers: entry.headers,
    body: decodeBody(entry.body),
    attempts: entry.attempts,
  };
}

function decodeBody(body: Buffer): unknown {
  const text = body.toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
