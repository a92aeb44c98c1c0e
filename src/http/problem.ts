import type { ErrorRequestHandler, Response } from 'express';
import { BadRequestError, InvalidJsonError, PayloadTooLargeError, RelayError, UnsupportedMediaTypeError } from '../errors.js';
import type { Logger } from '../observability/logger.js';

/** The problem+json document (RFC 9457) for a relay error; also used per item in a batch answer. */
export function problemBody(error: RelayError): Record<string, unknown> {
  return {
    type: `urn:resilient-relay:problem:${error.code.toLowerCase().replaceAll('_', '-')}`,
    title: error.title,
    status: error.status,
    detail: error.message,
    code: error.code,
    ...error.extensions(),
  };
}

/** Writes a relay error as application/problem+json (RFC 9457). */
export function sendProblem(res: Response, error: RelayError): void {
  if (res.headersSent) return;
  // For the request's log line (request-context.ts): the code to grep for, and the DLQ entry to look up.
  res.locals.problemCode = error.code;
  const dlqId = (error as { details?: { dlqId?: unknown } }).details?.dlqId;
  if (typeof dlqId === 'string') res.locals.dlqId = dlqId;
  res.status(error.status).set(error.headers()).type('application/problem+json').send(JSON.stringify(problemBody(error)));
}

/** body-parser's error types -> the relay's closed set. */
function fromBodyParser(error: { type?: unknown; status?: unknown }): RelayError | undefined {
  switch (error.type) {
    case 'entity.too.large':
      return new PayloadTooLargeError('The request body exceeds MAX_BODY_BYTES.');
    case 'entity.parse.failed':
      return new InvalidJsonError('The request body could not be parsed.');
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new UnsupportedMediaTypeError('Unsupported content encoding or charset.');
    case 'request.aborted':
    case 'request.size.invalid':
    case 'stream.encoding.set':
    case 'stream.not.readable':
      return new BadRequestError('The request body could not be read.');
    default:
      return typeof error.status === 'number' && error.status >= 400 && error.status < 500
        ? new BadRequestError('The request could not be read.')
        : undefined;
  }
}

/** The one place errors become HTTP answers. Unknown errors are logged and answered 500 without details. */
export function problemHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    const relayError =
      error instanceof RelayError ? error : fromBodyParser((error ?? {}) as { type?: unknown; status?: unknown });
    if (relayError) {
      sendProblem(res, relayError);
      return;
    }
    logger.error({ err: error, reqId: res.locals.requestId, req: { method: req.method, url: req.originalUrl } }, 'unhandled error');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res
      .status(500)
      .type('application/problem+json')
      .send(JSON.stringify({ type: 'about:blank', title: 'Internal error', status: 500, detail: 'The relay failed unexpectedly; see its logs.' }));
  };
}
