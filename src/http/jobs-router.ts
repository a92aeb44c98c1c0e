import { Router, type Request, type Response } from 'express';
import { findNodeAtLocation, parseTree, type Node as JsonNode } from 'jsonc-parser';
import { z } from 'zod';
import { HOP_BY_HOP } from '../downstream/client.js';
import { BadPathError, BadRequestError, MethodNotAllowedError, NotFoundError, RelayError, UnsupportedMediaTypeError } from '../errors.js';
import { keyScope, parseIdempotencyKey, requestFingerprint } from '../idempotency/key.js';
import type { JobService } from '../jobs/job-service.js';
import type { RouteTable } from '../routes/route-pipeline.js';
import type { RelayStore } from '../storage/types.js';
import { requireAdmin, refuseCrossSite } from './admin.js';
import { assertRouteClient, assertSafePath, forwardHeaders } from './forwarding.js';
import { presentJob } from './present.js';
import { problemBody } from './problem.js';
import { parsePriority, readBody } from './relay-router.js';
import { methodNotAllowed } from './routing.js';

/** SQS's SendMessageBatch and most batch APIs stop at a few dozen; 100 keeps one batch under a second of store writes. */
export const MAX_BATCH_ITEMS = 100;

const headerName = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

const batchItemSchema = z
  .object({
    route: z.string().min(1).max(64).optional(),
    method: z.string().regex(/^[A-Za-z]{1,20}$/).optional(),
    path: z.string().max(2048).optional(),
    query: z.string().max(4096).optional(),
    headers: z.record(z.string().regex(headerName).max(256), z.string().max(8192)).optional(),
    idempotencyKey: z.string().optional(),
    priority: z.string().optional(),
    contentType: z.string().max(256).optional(),
    // Any JSON value: its bytes are taken from the batch text, never re-serialised.
    body: z.unknown().optional(),
    bodyText: z.string().optional(),
    bodyBase64: z.base64().optional(),
  })
  .strict()
  .refine((item) => [item.body, item.bodyText, item.bodyBase64].filter((b) => b !== undefined).length <= 1, {
    message: 'at most one of body, bodyText and bodyBase64',
  });

const batchSchema = z.object({ items: z.array(z.unknown()).min(1).max(MAX_BATCH_ITEMS) }).strict();

type BatchItem = z.infer<typeof batchItemSchema>;

const idParam = z.string().min(1).max(128);

/** POST /relay/batch (async items), GET /jobs/:id (anyone holding the id), GET /jobs (admin: counts per state). */
interface BatchDeps {
  jobs: JobService;
  routes: RouteTable;
  store: RelayStore;
  maxBodyBytes: number;
  adminToken: string | undefined;
  credentialKey: Buffer;
}

export function jobsRouter(deps: BatchDeps): Router {
  const router = Router();

  router
    .route('/relay/batch')
    // Like every relayed call that is not safe: no page in a browser may send it (see relayRouter).
    .post(refuseCrossSite({ adminToken: deps.adminToken, loopbackHostPort: () => undefined }), async (req: Request, res: Response) => {
      if (!req.is(['application/json', 'application/*+json'])) throw new UnsupportedMediaTypeError('POST /relay/batch takes Content-Type: application/json.');
      const text = (await readBody(req, deps.maxBodyBytes)).toString('utf8');
      const { items, tree } = parseBatch(text);
      const results = [];
      for (const [index, raw] of items.entries()) {
        const bodyNode = findNodeAtLocation(tree, ['items', index, 'body']);
        results.push(await acceptItem(req, res, deps, index, raw, bodyNode ? text.slice(bodyNode.offset, bodyNode.offset + bodyNode.length) : undefined));
      }
      const allAccepted = results.every((r) => r.status === 202);
      // 202 when every item was stored; 207 (per-item statuses) when some were not.
      res.status(allAccepted ? 202 : 207).json({ items: results });
    })
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

/** The batch as JSON (strict: JSON.parse judges it) and as a tree of offsets, so each body's bytes can be cut out as sent. */
function parseBatch(text: string): { items: unknown[]; tree: JsonNode } {
  let value: unknown;
  let tree: JsonNode | undefined;
  try {
    value = JSON.parse(text);
    tree = parseTree(text);
  } catch {
    // Invalid JSON, or nested deeper than the stack allows: refuse it, never crash.
    throw new BadRequestError('The batch is not valid JSON (or is nested too deeply).');
  }
  const parsed = batchSchema.safeParse(value);
  if (!parsed.success || !tree) throw new BadRequestError(`Expected {"items": [...]} with 1 to ${MAX_BATCH_ITEMS} items.`);
  return { items: parsed.data.items, tree };
}

async function acceptItem(
  req: Request,
  res: Response,
  deps: BatchDeps,
  index: number,
  raw: unknown,
  bodyText: string | undefined,
): Promise<Record<string, unknown>> {
  try {
    const parsed = batchItemSchema.safeParse(raw);
    if (!parsed.success) {
      throw new BadRequestError(
        'Each item is {route?, method?, path?, query?, headers?, idempotencyKey?, priority?, contentType?, body | bodyText | bodyBase64}; ' +
          `item ${index}: ${parsed.error.issues[0]?.path.join('.') || 'item'} ${parsed.error.issues[0]?.message ?? ''}`.trim(),
      );
    }
    const item: BatchItem = parsed.data;
    const route = deps.routes.get(item.route ?? 'default');
    if (!route) throw new NotFoundError(`No route named ${JSON.stringify((item.route ?? 'default').slice(0, 64))}.`);
    const method = (item.method ?? 'POST').toUpperCase();
    if (!route.spec.methods.includes(method)) throw new MethodNotAllowedError([...route.spec.methods]);
    const rest = item.path ?? '';
    if (rest !== '' && !rest.startsWith('/')) throw new BadPathError('An item path starts with `/`.');
    assertSafePath(rest);
    if (item.query !== undefined && /[#\s]/.test(item.query)) throw new BadPathError('An item query has no `#` or whitespace.');
    const path = item.query ? `${rest}?${item.query.replace(/^\?/, '')}` : rest;
    assertRouteClient(route, typeof req.headers['x-relay-token'] === 'string' ? req.headers['x-relay-token'] : undefined);
    const key = parseIdempotencyKey(item.idempotencyKey);
    const priority = parsePriority(item.priority);
    const { body, contentType } = itemBody(item, bodyText);
    const itemHeaders = Object.fromEntries(Object.entries(item.headers ?? {}).map(([name, value]) => [name.toLowerCase(), value]));
    const requestId = `${res.locals.requestId as string}.${index}`;
    const headers = { ...forwardHeaders(req, { requestId, keyHeader: route.keyHeader, sendKey: key }), ...withoutControls(itemHeaders) };
    if (contentType === undefined) delete headers['content-type'];
    else headers['content-type'] = contentType;
    if (key !== undefined) headers[route.keyHeader] = key;
    const credential = headers.authorization ?? headers['x-api-key'];
    const accepted = await deps.jobs.accept({
      route,
      target: { route: route.name, method, path },
      body: method === 'GET' || method === 'HEAD' ? null : body,
      headers,
      sendKey: key,
      keyScope: key === undefined ? undefined : keyScope(route.name, deps.credentialKey, credential, key),
      fingerprint: key === undefined ? undefined : requestFingerprint({ method, route: route.name, path, contentType, body }),
      priority,
    });
    if (accepted.kind === 'answered') {
      return { index, status: accepted.response.status, replayed: true };
    }
    const { job, created } = accepted;
    return { index, status: 202, jobId: job.id, location: `/jobs/${job.id}`, state: job.state, created };
  } catch (error) {
    if (!(error instanceof RelayError)) throw error;
    return { index, status: error.status, problem: problemBody(error) };
  }
}

/** The item's bytes and type: `body` as the exact JSON text it had in the batch, `bodyText` as UTF-8, `bodyBase64` decoded. */
function itemBody(item: BatchItem, bodyText: string | undefined): { body: Buffer; contentType: string | undefined } {
  if (item.bodyBase64 !== undefined) return { body: Buffer.from(item.bodyBase64, 'base64'), contentType: item.contentType ?? 'application/octet-stream' };
  if (item.bodyText !== undefined) return { body: Buffer.from(item.bodyText, 'utf8'), contentType: item.contentType ?? 'text/plain; charset=utf-8' };
  if (bodyText !== undefined) return { body: Buffer.from(bodyText, 'utf8'), contentType: item.contentType ?? 'application/json' };
  return { body: Buffer.alloc(0), contentType: item.contentType };
}

/** An item's own headers follow the request's rules: no hop-by-hop, framing or relay controls. */
function withoutControls(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (HOP_BY_HOP.has(name) || name.startsWith('x-relay-') || ['host', 'content-length', 'expect', 'prefer'].includes(name)) continue;
    if (/[\r\n\0]/.test(value)) throw new BadRequestError(`Header ${name} has a CR, LF or NUL.`);
    out[name] = value;
  }
  return out;
}
