import type { Express } from 'express';

/** One path the app serves through express's router, with its methods (upper-case). */
export interface RegisteredRoute {
  /** Express syntax: `/dlq/:id`. */
  path: string;
  methods: string[];
}

interface Layer {
  route?: { path: unknown; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
  /** router 2.x: true when the layer is mounted at `/`. */
  slash?: boolean;
}

/**
 * Every `router.route(path)` of the app, through routers mounted at `/`
 * (`app.use(router)`, as createApp mounts them). The start-up line names only
 * pages that exist, and the OpenAPI test checks each of these is documented.
 * `/relay...` is served by a middleware, not a route, so it is not listed here.
 * @throws Error when a router is mounted under a prefix: its paths would be listed wrong.
 */
export function registeredRoutes(app: Express): RegisteredRoute[] {
  const found: RegisteredRoute[] = [];
  const walk = (stack: Layer[]) => {
    for (const layer of stack) {
      if (layer.route) {
        const methods = Object.keys(layer.route.methods).filter((m) => m !== '_all').map((m) => m.toUpperCase());
        found.push({ path: String(layer.route.path), methods });
      } else if (layer.handle?.stack) {
        if (layer.slash === false) throw new Error('registeredRoutes: a router mounted under a prefix is not supported');
        walk(layer.handle.stack);
      }
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack);
  return found;
}
