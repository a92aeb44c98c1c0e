import { Validator } from '@seriousme/openapi-schema-validator';
import { afterEach, describe, expect, it } from 'vitest';
import { openapiDocument } from '../src/http/openapi.js';
import { registeredRoutes } from '../src/http/registered-routes.js';
import { startTestRelay, type TestRelay } from './helpers/test-relay.js';

let t: TestRelay | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

type Paths = Record<string, Record<string, unknown>>;

describe('GET /openapi.json', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const validator = new Validator();
    const result = await validator.validate(openapiDocument());
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('is served to anyone, as the document the relay builds', async () => {
    t = await startTestRelay({ env: { ADMIN_TOKEN: 'a-token-of-16-chars' } });
    const res = await t.http.get('/openapi.json');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body).toEqual(openapiDocument());
    expect((await t.http.post('/openapi.json')).status).toBe(405);
  });

  it('documents every route and method the app registers, and the relay paths', async () => {
    t = await startTestRelay();
    const paths = openapiDocument().paths as Paths;
    const registered = registeredRoutes(t.relay.app);
    expect(registered.length).toBeGreaterThan(10);
    // A router mounted under a prefix hides its full paths: mount routers at `/` (as createApp does) so they can be checked.
    expect(registered.filter((route) => route.prefixed)).toEqual([]);
    const missing = registered.flatMap(({ path, methods }) => {
      const templated = path.replace(/:(\w+)/g, '{$1}');
      return methods.filter((method) => !paths[templated]?.[method.toLowerCase()]).map((method) => `${method} ${templated}`);
    });
    expect(missing).toEqual([]);
    for (const path of ['/relay', '/relay/{route}', '/relay/{route}/{rest}']) {
      expect(Object.keys(paths[path] ?? {})).toEqual(expect.arrayContaining(['get', 'post', 'put', 'patch', 'delete']));
    }
  });

  it('documents no path the app does not serve', async () => {
    t = await startTestRelay();
    const served = new Set(registeredRoutes(t.relay.app).map(({ path }) => path.replace(/:(\w+)/g, '{$1}')));
    const relayPaths = new Set(['/relay', '/relay/{route}', '/relay/{route}/{rest}']);
    const extra = Object.keys(openapiDocument().paths as Paths).filter((path) => !served.has(path) && !relayPaths.has(path));
    expect(extra).toEqual([]);
  });
});
