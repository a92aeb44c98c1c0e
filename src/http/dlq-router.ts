import { Router, json, type Response } from 'express';
import { z } from 'zod';
import { BadRequestError, NotFoundError, UnsupportedMediaTypeError } from '../errors.js';
import type { RelayEvents } from '../relay-events.js';
import type { DlqRedriver, RedriveFilter } from '../jobs/dlq-redriver.js';
import type { RelayService } from '../relay-service.js';
import { InvalidCursorError, type DlqEntry, type RelayStore } from '../storage/types.js';
import { requireAdmin } from './admin.js';
import { methodNotAllowed } from './routing.js';

const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().min(1).max(512).optional(),
  reason: z.enum(['permanent', 'transient']).optional(),
});

const redriveBody = z
  .object({
    reason: z.enum(['permanent', 'transient']).optional(),
    /** Only entries untouched for at least this many seconds. */
    olderThanS: z.number().int().min(0).max(10 * 365 * 86_400).optional(),
    limit: z.number().int().min(1).max(100_000).default(1_000),
    ratePerSecond: z.number().min(0.01).max(10_000).optional(),
  })
  .strict();

const idParam = z.string().min(1).max(128);

/** The dead-letter queue: inspect, replay, delete. Admin only. */
export function dlqRouter(deps: {
  service: RelayService;
  store: RelayStore;
  events: RelayEvents;
  redriver: DlqRedriver;
  adminToken: string | undefined;
}): Router {
  const router = Router();
  router.use('/dlq', requireAdmin(deps.adminToken));

  // Before /dlq/:id, which would otherwise take "redrive" for an id.
  router
    .route('/dlq/redrive')
    .post(
      (req, _res, next) => {
        // A body in another format would be skipped by json() and read as "no filter": everything would move.
        const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
        if (hasBody && !req.is(['application/json', 'application/*+json'])) {
          return next(new UnsupportedMediaTypeError('POST /dlq/redrive takes a JSON body (Content-Type: application/json), or none.'));
        }
        next();
      },
      json({ limit: '16kb' }),
      (req, res) => {
        const body = redriveBody.safeParse(req.body ?? {});
        if (!body.success) {
          throw new BadRequestError(
            'Expected a JSON object with optional reason ("permanent" or "transient"), olderThanS (whole seconds), limit (1-100000) and ratePerSecond (0.01-10000).',
          );
        }
        const { reason, olderThanS, limit, ratePerSecond } = body.data;
        const filter: RedriveFilter = {};
        if (reason) filter.reason = reason;
        if (olderThanS !== undefined) filter.olderThanMs = olderThanS * 1000;
        const task = deps.redriver.start(filter, { limit, ...(ratePerSecond ? { ratePerSecond } : {}) });
        res.status(202).location(`/dlq/redrive/${task.id}`).json(task);
      },
    )
    .get((_req, res) => {
      res.json({ items: deps.redriver.list() });
    })
    .all(methodNotAllowed(['GET', 'POST']));

  router
    .route('/dlq/redrive/:taskId')
    .get((req, res) => {
      const task = deps.redriver.get(req.params.taskId);
      if (!task) throw new NotFoundError(`No redrive task with id ${JSON.stringify(req.params.taskId.slice(0, 64))} on this instance.`);
      res.json(task);
    })
    .all(methodNotAllowed(['GET']));

  router
    .route('/dlq')
    .get(async (req, res) => {
      const query = listQuery.safeParse(req.query);
      if (!query.success) {
        throw new BadRequestError('limit must be a whole number from 1 to 500; cursor must be a value from nextCursor; reason permanent or transient.');
      }
      const { limit, cursor, reason } = query.data;
      try {
        const page = await deps.store.dlq.list({ limit, ...(cursor ? { cursor } : {}), ...(reason ? { filter: { reason } } : {}) });
        sendJsonText(res, `{"items":[${page.items.map(presentEntry).join(',')}],"nextCursor":${JSON.stringify(page.nextCursor)}}`);
      } catch (error) {
        if (error instanceof InvalidCursorError) throw new BadRequestError('cursor is not a value this relay returned as nextCursor.');
        throw error;
      }
    })
    .all(methodNotAllowed(['GET']));

  router
    .route('/dlq/:id')
    .get(async (req, res) => {
      const entry = await deps.store.dlq.get(parseId(req.params.id));
      if (!entry) throw notFound(req.params.id);
      sendJsonText(res, presentEntry(entry));
    })
    .delete(async (req, res) => {
      const removed = await deps.store.dlq.remove(parseId(req.params.id));
      if (!removed) throw notFound(req.params.id);
      deps.events.emit('dlq', { action: 'deleted' });
      res.status(204).end();
    })
    .all(methodNotAllowed(['GET', 'DELETE']));

  router
    .route('/dlq/:id/replay')
    .post(async (req, res) => {
      const { answer } = await deps.service.replay(parseId(req.params.id));
      sendJsonText(res, `{"outcome":"delivered","status":${answer.status},"attempts":${answer.attempts},"body":${jsonFragment(answer.body)}}`);
    })
    .all(methodNotAllowed(['POST']));

  return router;
}

/** An id longer than any this relay issues cannot exist: 404, like any unknown id. */
function parseId(raw: string | undefined): string {
  const id = idParam.safeParse(raw);
  if (!id.success) throw notFound(raw ?? '');
  return id.data;
}

function notFound(id: string): NotFoundError {
  return new NotFoundError(`No dead-letter entry with id ${JSON.stringify(id.slice(0, 128))}.`);
}

function sendJsonText(res: Response, text: string): void {
  res.type('application/json').send(text);
}

/**
 * The API view of an entry as JSON text: the body is spliced in as the JSON the
 * client sent (validated on the way in), never parsed and re-serialised, so a
 * deeply nested body cannot overflow the stack. No fingerprint.
 */
export function presentEntry(entry: DlqEntry): string {
  const { id, createdAt, updatedAt, idempotencyKey, status, lastError, reason, cause, jobId, redrives, replays, headers, attempts } = entry;
  const meta = JSON.stringify({ id, createdAt, updatedAt, idempotencyKey, status, lastError, reason, cause, jobId, redrives, replays, headers, attempts });
  return `${meta.slice(0, -1)},"body":${jsonFragment(entry.body)}}`;
}

/** The bytes as a JSON value when they are JSON, else as a JSON string. */
export function jsonFragment(body: Buffer): string {
  const text = body.toString('utf8');
  try {
    JSON.parse(text);
    return text;
  } catch {
    return JSON.stringify(text);
  }
}
