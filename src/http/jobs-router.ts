import { Router, json, type Request, type Response } from 'express';
import { z } from 'zod';
import { BadRequestError, NotFoundError, RelayError, UnsupportedMediaTypeError } from '../errors.js';
import { parseIdempotencyKey, requestFingerprint } from '../idempotency/key.js';
import type { JobService } from '../jobs/job-service.js';
import type { Job, RelayStore } from '../storage/types.js';
import { requireAdmin } from './admin.js';
import { jsonFragment } from './dlq-router.js';
import { problemBody } from './problem.js';
import { forwardHeaders, isJsonRequest, parsePriority } from './relay-router.js';
import { methodNotAllowed } from './routing.js';

/** SQS's SendMessageBatch and most batch APIs stop at a few dozen; 100 keeps one batch under a second of store writes. */
export const MAX_BATCH_ITEMS = 100;

const batchSchema = z.object({
  items: z
    .array(
      z
        .object({
          // Any JSON value (body-parser already parsed it): z.json() would recurse and overflow the stack on deep nesting.
          body: z.unknown().refine((value) => value !== undefined),
          idempotencyKey: z.string().optional(),
          priority: z.string().optional(),
        })
        .strict(),
    )
    .min(1)
    .max(MAX_BATCH_ITEMS),
});

const idParam = z.string().min(1).max(128);

/** POST /relay/batch (async items), GET /jobs/:id (anyone holding the id), GET /jobs (admin: counts per state). */
export function jobsRouter(deps: { jobs: JobService; store: RelayStore; maxBodyBytes: number; adminToken: string | undefined }): Router {
  const router = Router();

  router
    .route('/relay/batch')
    .post(
      (req, _res, next) => {
        if (!isJsonRequest(req)) return next(new UnsupportedMediaTypeError('POST /relay/batch takes Content-Type: application/json.'));
        next();
      },
      json({ limit: deps.maxBodyBytes, strict: true, type: () => true }),
      async (req: Request, res: Response) => {
        const parsed = batchSchema.safeParse(req.body);
        if (!parsed.success) {
          throw new BadRequestError(
            `Expected {"items": [...]} with 1 to ${MAX_BATCH_ITEMS} items, each {"body": <JSON>, "idempotencyKey"?: string, "priority"?: "high"|"normal"|"low"}.`,
          );
        }
        const results = [];
        for (const [index, item] of parsed.data.items.entries()) {
          results.push(await acceptItem(req, res, deps.jobs, index, item));
        }
        const allAccepted = results.every((r) => r.status === 202);
        // 202 when every item was stored; 207 (per-item statuses) when some were not.
        res.status(allAccepted ? 202 : 207).json({ items: results });
      },
    )
    .all(methodNotAllowed(['POST']));

  router
    .route('/jobs')
    .get(requireAdmin(deps.adminToken), async (_req, res) => {
      res.json({ counts: await deps.store.jobs.counts() });
    })
    .all(methodNotAllowed(['GET']));

  router
    .route('/jobs/:id')
    .get(async (req, res) => {
      const id = idParam.safeParse(req.params.id);
      const job = id.success ? await deps.jobs.get(id.data) : null;
      if (!job) throw new NotFoundError(`No job with id ${JSON.stringify(String(req.params.id).slice(0, 128))}.`);
      res.type('application/json').send(presentJob(job));
    })
    .all(methodNotAllowed(['GET']));

  return router;
}

async function acceptItem(
  req: Request,
  res: Response,
  jobs: JobService,
  index: number,
  item: { body: unknown; idempotencyKey?: string | undefined; priority?: string | undefined },
): Promise<Record<string, unknown>> {
  try {
    const key = parseIdempotencyKey(item.idempotencyKey);
    const priority = parsePriority(item.priority);
    let text: string;
    try {
      text = JSON.stringify(item.body);
    } catch {
      // Nested deeper than the stack allows: refuse the item, never crash.
      throw new BadRequestError('The item body is nested too deeply.');
    }
    const body = Buffer.from(text, 'utf8');
    const headers = forwardHeaders(req, res);
    headers['content-type'] = 'application/json';
    if (key !== undefined) headers['idempotency-key'] = item.idempotencyKey!;
    else delete headers['idempotency-key'];
    if (headers['x-request-id']) headers['x-request-id'] = `${headers['x-request-id']}.${index}`;
    const { job, created } = await jobs.accept({
      body,
      forwardHeaders: headers,
      idempotencyKey: key,
      fingerprint: key === undefined ? undefined : requestFingerprint(body, req.get('authorization')),
      priority,
    });
    return { index, status: 202, jobId: job.id, location: `/jobs/${job.id}`, state: job.state, created };
  } catch (error) {
    if (!(error instanceof RelayError)) throw error;
    return { index, status: error.status, problem: problemBody(error) };
  }
}

/** The API view of a job; the downstream's answer body is spliced in as JSON when it is JSON. */
export function presentJob(job: Job): string {
  const meta = JSON.stringify({
    id: job.id,
    state: job.state,
    priority: job.priority,
    idempotencyKey: job.idempotencyKey,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
    nextAttemptAt: job.state === 'queued' ? new Date(job.availableAt).toISOString() : null,
    attempts: job.attempts,
    lastError: job.lastError,
    dlqId: job.dlqId,
    redrives: job.redrives,
  });
  const response = job.response
    ? `{"status":${job.response.status},"contentType":${JSON.stringify(job.response.headers['content-type'] ?? null)},"body":${jsonFragment(job.response.body)}}`
    : 'null';
  return `${meta.slice(0, -1)},"response":${response}}`;
}
