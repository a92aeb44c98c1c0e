import type { Express } from 'express';

/** One path the app serves through express's router, with its methods (upper-case). */
export interface RegisteredRoute {
  /** Express syntax: `/dlq/:id`. */
  path: string;
  methods: string[];
  /** Found in a router mounted under a prefix (`app.use('/x', router)`): `path` lacks the prefix, which express does not keep. */
  prefixed?: true;
}

interface Layer {
  route?: { path: unknown; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
  /** router 2.x: true when the layer is mounted at `/`. */
  slash?: boolean;
}

/**
 * Every `router.route(path)` of the app, through the routers it mounts
 * (createApp mounts them at `/`). The start-up line names only pages that
 * exist, and the OpenAPI test checks each of these is documented (and that
 * none is `prefixed`, whose full path cannot be known). `/relay...` is served
 * by a middleware, not a route, so it is not listed here. Never throws: the
 * start-up line must not stop a relay from starting.
 */
export function registeredRoutes(app: Express): RegisteredRoute[] {
  const found: RegisteredRoute[] = [];
  const walk = (stack: Layer[], prefixed: boolean) => {
    for (const layer of stack) {
      if (layer.route) {
        const methods = Object.keys(layer.route.methods).filter((m) => m !== '_all').map((m) => m.toUpperCase());
        found.push({ path: String(layer.route.path), methods, ...(prefixed ? { prefixed: true as const } : {}) });
      } else if (layer.handle?.stack) {
        walk(layer.handle.stack, prefixed || layer.slash === false);
      }
    }
  };
  walk((app as unknown as { router?: { stack?: Layer[] } }).router?.stack ?? [], false);
  return found;
}
