import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AccessVerdict } from './access.js';
import type { SimCounters } from './counters.js';
import { parseJson, readBody, sendJson, sendProblem } from './http-io.js';
import type { SimProfile } from './profile.js';
import type { ScriptedResponse } from './script.js';
import { SimValidationError } from './validation.js';

/** Path prefix of the control endpoints; simulated calls never live under it. */
export const CONTROL_PREFIX = '/__sim/';

/** The part of the simulator the control endpoints drive. */
export interface SimControls {
  profile(): SimProfile;
  setProfile(patch: Partial<SimProfile>): SimProfile;
  script(responses: ScriptedResponse[]): void;
  counters(): SimCounters;
  reset(): void;
}

type Route = (body: unknown) => { status: number; body?: unknown };

/** Routes a request under `/__sim/` after checking access. */
export function handleControl(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  controls: SimControls,
  checkAccess: (req: IncomingMessage) => AccessVerdict,
): void {
  const verdict = checkAccess(req);
  if (verdict !== 'allow') {
    req.resume();
    if (verdict === 'unauthorized') {
      sendProblem(res, 401, 'Unauthorized', 'send Authorization: Bearer <admin token>', {}, {
        'www-authenticate': 'Bearer realm="sim-admin"',
      });
    } else {
      sendProblem(res, 403, 'Forbidden', 'control endpoints answer loopback clients only when no admin token is set');
    }
    return;
  }

  const routes = routesFor(controls)[path.slice(CONTROL_PREFIX.length)];
  if (routes === undefined) {
    req.resume();
    sendProblem(res, 404, 'Not found', `no control endpoint at ${path}`);
    return;
  }
  const route = routes[req.method ?? ''];
  if (route === undefined) {
    req.resume();
    sendProblem(res, 405, 'Method not allowed', `${path} accepts ${Object.keys(routes).join(', ')}`, {}, {
      allow: Object.keys(routes).join(', '),
    });
    return;
  }

  readBody(req, (raw) => {
    if (raw === null) return sendProblem(res, 413, 'Payload too large', 'control bodies are small JSON documents');
    const body = parseJson(raw);
    if (raw.length > 0 && body === undefined) {
      return sendProblem(res, 400, 'Invalid JSON', 'the request body is not valid JSON');
    }
    try {
      const result = route(body);
      sendJson(res, result.status, result.body);
    } catch (error) {
      if (!(error instanceof SimValidationError)) throw error;
      sendProblem(res, 400, 'Invalid simulator setting', error.message, { field: error.field });
    }
  });
}

function routesFor(controls: SimControls): Record<string, Record<string, Route>> {
  return {
    profile: {
      GET: () => ({ status: 200, body: controls.profile() }),
      // The patch is validated by setProfile; the cast only hands it over.
      PUT: (body) => ({ status: 200, body: controls.setProfile(body as Partial<SimProfile>) }),
    },
    script: {
      POST: (body) => {
        controls.script(body as ScriptedResponse[]);
        return { status: 200, body: { scripted: (body as unknown[]).length } };
      },
    },
    stats: { GET: () => ({ status: 200, body: controls.counters() }) },
    reset: {
      POST: () => {
        controls.reset();
        return { status: 204 };
      },
    },
  };
}
