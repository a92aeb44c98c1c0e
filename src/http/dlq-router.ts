import { Router, json, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import { BadRequestError, NotFoundError, UnsupportedMediaTypeError } from '../errors.js';
import type { RelayEvents } from '../relay-events.js';
import type { DlqRedriver, RedriveFilter } from '../jobs/dlq-redriver.js';
import type { RelayService } from '../relay-service.js';
import { InvalidCursorError, type RelayStore } from '../storage/types.js';
import { requireAdmin } from './admin.js';
import { bodyMembers, presentEdit, presentEntry, presentSummary } from './present.js';
import { readBody } from './relay-router.js';
import { parseReplayBody, replayBodyLimit } from './replay-body.js';
import { methodNotAllowed } from './routing.js';

const listQuery = z.object({
  // Clamped rather than refused: a page is at most 100 summaries, so a listing never builds a huge answer.
  limit: z.coerce
    .number()
    .int()
    .default(50)
    .transform((limit) => Math.min(100, Math.max(1, limit))),
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

const headerText = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

/** The dead-letter queue: inspect, replay, delete. Admin only. */
export function dlqRouter(deps: {
  service: RelayService;
  store: RelayStore;
  events: RelayEvents;
  redriver: DlqRedriver;
  adminToken: string | undefined;
  /** Caps an edited replay's body, as it caps a relayed one. */
  maxBodyBytes: number;
  /** Scopes an edited replay's new idempotency key to its credential. */
  credentialKey: Buffer;
}): Router {
  const router = Router();
  router.use('/dlq', requireAdmin(deps.adminToken));

  // Before /dlq/:id, which would otherwise take "redrive" for an id.
  router
    .route('/dlq/redrive')
    .post(
      ...jsonBodyOrNone('POST /dlq/redrive'),
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
        const field = String(query.error.issues[0]?.path[0] ?? 'query');
        throw new BadRequestError(`Invalid ${field}: limit is a whole number (clamped to 1-100); cursor a value from nextCursor; reason permanent or transient.`);
      }
      const { limit, cursor, reason } = query.data;
      try {
        const page = await deps.store.dlq.list({ limit, ...(cursor ? { cursor } : {}), ...(reason ? { filter: { reason } } : {}) });
        sendJsonText(res, `{"items":[${page.items.map(presentSummary).join(',')}],"nextCursor":${JSON.stringify(page.nextCursor)}}`);
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
    .post(
      // Read raw, not with json(): an edited `body` goes out as the exact text it had here.
      requireJsonOrNone('POST /dlq/:id/replay'),
      async (req, res) => {
        const id = parseId(req.params.id);
        const text = (await readBody(req, replayBodyLimit(deps.maxBodyBytes))).toString('utf8');
        const { force, edit } = parseReplayBody(text, deps.maxBodyBytes);
        const { answer, edit: recorded } = await deps.service.replay(id, {
          ...(force ? { force: true } : {}),
          ...(edit ? { edit, credentialKey: deps.credentialKey, requestId: res.locals.requestId as string } : {}),
        });
        const editMember = recorded ? `"edit":${presentEdit(recorded)},` : '';
        sendJsonText(
          res,
          `{"outcome":"delivered","status":${answer.status},"attempts":${answer.attempts},${editMember}${bodyMembers(answer.body, headerText(answer.headers['content-type']))}}`,
        );
      },
    )
    .all(methodNotAllowed(['POST']));

  return router;
}

/**
 * A small JSON body, or none. A body in another format would be skipped by json()
 * and read as "no options" (for a redrive: no filter, so everything would move).
 */
function jsonBodyOrNone(route: string): RequestHandler[] {
  return [requireJsonOrNone(route), json({ limit: '16kb' })];
}

function requireJsonOrNone(route: string): RequestHandler {
  return (req, _res, next) => {
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    if (hasBody && !req.is(['application/json', 'application/*+json'])) {
      return next(new UnsupportedMediaTypeError(`${route} takes a JSON body (Content-Type: application/json), or none.`));
    }
    next();
  };
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
