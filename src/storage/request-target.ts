import { LEGACY_TARGET, type RequestTarget } from '../domain.js';

/**
 * The request target as both backends store it: JSON text. A record written
 * before routes existed has none and reads as {@link LEGACY_TARGET}, which is
 * also what a caller that does not name one gets.
 */
export function encodeRequestTarget(target: RequestTarget | undefined): string {
  const { route, method, path } = target ?? LEGACY_TARGET;
  return JSON.stringify({ route, method, path });
}

export function decodeRequestTarget(text: string | null | undefined): RequestTarget {
  if (text === null || text === undefined || text === '') return { ...LEGACY_TARGET };
  const { route, method, path } = JSON.parse(text) as RequestTarget;
  return { route, method, path };
}
