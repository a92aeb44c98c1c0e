import type { RequestHandler } from 'express';
import { MethodNotAllowedError, NotFoundError } from '../errors.js';

/** 405 with an Allow header, for a known path called with the wrong method. */
export function methodNotAllowed(allow: string[]): RequestHandler {
  return (_req, _res, next) => next(new MethodNotAllowedError(allow));
}

export const notFound: RequestHandler = (req, _res, next) =>
  next(new NotFoundError(`No route for ${req.method} ${req.path}.`));
