import { InvalidCursorError } from './types.js';

/**
 * DLQ cursors: the `seq` of the last entry on a page, base64url-encoded so that
 * clients treat it as opaque. The next page is `seq > cursor` (keyset), so an
 * entry removed between pages does not invalidate a cursor pointing at it. Every
 * backend uses this one format, so a cursor means the same thing on either.
 */
export function encodeCursor(seq: number): string {
  return Buffer.from(String(seq), 'utf8').toString('base64url');
}

/** @throws InvalidCursorError when `cursor` is not one {@link encodeCursor} made. */
export function decodeCursor(cursor: string): number {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  // Node's base64 decoder skips characters it does not know, so only a round trip
  // proves the string is ours.
  if (!/^(0|[1-9][0-9]{0,15})$/.test(text) || encodeCursor(Number(text)) !== cursor) {
    throw new InvalidCursorError(cursor);
  }
  const seq = Number(text);
  if (!Number.isSafeInteger(seq)) throw new InvalidCursorError(cursor);
  return seq;
}
