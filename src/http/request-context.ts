import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { Logger } from '../observability/logger.js';
import { redactQuery } from '../secrets/redact.js';

const CLIENT_REQUEST_ID = /^[\w.:@-]{1,128}$/;
/** Probes and scrapes would drown the request log. */
const QUIET_PATHS = new Set(['/health', '/ready', '/metrics']);

/**
 * A request id for every request (the client's X-Request-Id when it is sane,
 * else a UUID), echoed back, forwarded downstream, and on the one log line
 * written when the answer is finished.
 *
 * Not pino-http: it builds a child logger per request even when no line is
 * written, which profiled at ~17% of the relay's CPU. This writes the line
 * (and builds its fields) only when the level is enabled. Headers are never
 * logged, so Authorization and tokens cannot leak from here, and the URL's
 * secret query parameters (`?api_key=...`) are redacted.
 */
export function requestContext(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const incoming = req.headers['x-request-id'];
    // The relay's own id picks canary sides: the client's X-Request-Id must not let it choose one.
    const relayId = randomUUID();
    const id = typeof incoming === 'string' && CLIENT_REQUEST_ID.test(incoming) ? incoming : relayId;
    res.locals.requestId = id;
    res.locals.relayRequestId = relayId;
    res.setHeader('X-Request-Id', id);
    if (QUIET_PATHS.has(req.path)) return next();
    const startedAt = performance.now();
    let logged = false;
    const done = () => {
      if (logged) return;
      logged = true;
      const finished = res.writableFinished;
      const level = !finished || res.statusCode >= 500 ? 'warn' : 'info';
      if (!logger.isLevelEnabled(level)) return;
      // Set by sendProblem when the relay answered with a problem; dlqId when the request was dead-lettered.
      const { problemCode, dlqId } = res.locals as { problemCode?: string; dlqId?: string };
      const line: Record<string, unknown> = {
        reqId: id,
        req: { method: req.method, url: redactQuery(req.originalUrl), remoteAddress: req.socket.remoteAddress },
        res: { statusCode: finished ? res.statusCode : 499 },
        responseTimeMs: Math.round((performance.now() - startedAt) * 100) / 100,
      };
      if (problemCode !== undefined) line.code = problemCode;
      if (dlqId !== undefined) line.dlqId = dlqId;
      logger[level](line, finished ? 'request completed' : 'client closed the connection before the answer');
    };
    // on() rather than once(): `logged` already makes it run once, and once()
    // wraps each listener in a new closure on every request.
    res.on('finish', done);
    res.on('close', done);
    next();
  };
}
