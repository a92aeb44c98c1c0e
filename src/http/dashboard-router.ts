import { readdirSync, readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { Router, type Response } from 'express';
import { NotFoundError } from '../errors.js';
import { methodNotAllowed } from './routing.js';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/**
 * Only the relay's own files, no inline script or style, no frames: the page
 * shows bodies and errors an attacker may have written, and holds an admin token.
 */
const PAGE_HEADERS = {
  'Content-Security-Policy': "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  // A new relay version must not run against a cached script of the last one.
  'Cache-Control': 'no-cache',
};

/** Where the page's files are: src/dashboard/ under tsx, dist/dashboard/ after `npm run build` (scripts/copy-lua.mjs copies them). */
const DASHBOARD_DIR = new URL('../dashboard/', import.meta.url);

/** The dashboard's files by name, read once: the page is a few kilobytes and never changes while the relay runs. */
function loadAssets(dir: URL): Map<string, { type: string; body: Buffer }> {
  const assets = new Map<string, { type: string; body: Buffer }>();
  for (const name of readdirSync(dir)) {
    const type = CONTENT_TYPES[extname(name)];
    if (type) assets.set(name, { type, body: readFileSync(new URL(name, dir)) });
  }
  if (!assets.has('index.html')) throw new Error(`dashboard: no index.html in ${dir.pathname}`);
  return assets;
}

function send(res: Response, asset: { type: string; body: Buffer }): void {
  res.status(200).set(PAGE_HEADERS).type(asset.type).send(asset.body);
}

/**
 * `GET /dashboard`: the operator's live page and its scripts, styles and icon,
 * public (the page holds no data; what it shows comes from the admin routes
 * with the operator's token). No build step and nothing from another host.
 */
export function dashboardRouter(deps: { adminToken: string | undefined }): Router {
  const assets = loadAssets(DASHBOARD_DIR);
  if (deps.adminToken !== undefined) {
    // Says only that a token is needed (a 401 says as much), so the page asks at once instead of failing a request first.
    const page = assets.get('index.html')!;
    const marked = page.body.toString('utf8').replace('<meta name="relay-admin-auth" content="loopback">', '<meta name="relay-admin-auth" content="token">');
    assets.set('index.html', { ...page, body: Buffer.from(marked) });
  }
  const router = Router();
  router
    .route('/dashboard')
    .get((_req, res) => send(res, assets.get('index.html')!))
    .all(methodNotAllowed(['GET']));
  router
    .route('/dashboard/:asset')
    .get((req, res) => {
      const asset = req.params.asset === 'index.html' ? undefined : assets.get(req.params.asset);
      if (!asset) throw new NotFoundError(`No dashboard file ${JSON.stringify(req.params.asset.slice(0, 64))}.`);
      send(res, asset);
    })
    .all(methodNotAllowed(['GET']));
  return router;
}
