import { setMaxListeners } from 'node:events';

/**
 * An AbortController whose signal every attempt in flight (or waiting for a
 * rate-limit token) listens to, each listener removed when its attempt ends:
 * under load there are legitimately more than Node's default of 10, and the
 * MaxListenersExceededWarning would be noise, not a leak.
 */
export function abortControllerForMany(): AbortController {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  return controller;
}
