import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor } from './cursor.js';
import { InvalidCursorError } from './types.js';

describe('DLQ cursor', () => {
  it('gives back the seq it was made from', () => {
    for (const seq of [0, 1, 42, Number.MAX_SAFE_INTEGER]) expect(decodeCursor(encodeCursor(seq))).toBe(seq);
  });

  it('keeps the wire format both backends have always handed out (base64url of the decimal seq)', () => {
    expect(encodeCursor(42)).toBe('NDI');
    expect(decodeCursor('NDI')).toBe(42);
  });

  it('rejects a cursor with junk that the base64 decoder would skip', () => {
    const cursor = encodeCursor(7);
    for (const tampered of [`${cursor}!`, `${cursor}==`, ` ${cursor}`]) {
      expect(() => decodeCursor(tampered)).toThrow(InvalidCursorError);
    }
  });

  it('rejects text that is not a seq: empty, negative, leading zeros, beyond a safe integer', () => {
    const made = (text: string) => Buffer.from(text, 'utf8').toString('base64url');
    for (const text of ['', '-1', '007', '1.5', 'abc', '9007199254740993']) {
      expect(() => decodeCursor(made(text)), text).toThrow(InvalidCursorError);
    }
  });
});
