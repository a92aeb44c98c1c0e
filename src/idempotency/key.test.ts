import { describe, expect, it } from 'vitest';
import { InvalidIdempotencyKeyError } from '../errors.js';
import { parseIdempotencyKey, requestFingerprint } from './key.js';

describe('Idempotency-Key parsing', () => {
  it('takes a plain token as it is', () => expect(parseIdempotencyKey('order-123')).toBe('order-123'));
  it('reads a structured-field string "abc" as the key abc', () => expect(parseIdempotencyKey('"abc"')).toBe('abc'));
  it('unescapes \\" and \\\\ inside a structured-field string', () => expect(parseIdempotencyKey('"a\\"b\\\\c"')).toBe('a"b\\c'));
  it('has no key when the header is absent', () => expect(parseIdempotencyKey(undefined)).toBeUndefined());
  it('accepts 255 characters', () => expect(parseIdempotencyKey('x'.repeat(255))).toHaveLength(255));
  it.each([
    ['empty', ''],
    ['blank', '   '],
    ['an empty quoted string', '""'],
    ['256 characters', 'x'.repeat(256)],
    ['non-ASCII', 'kéy'],
    ['a control character', 'a\tb'],
    ['a bad escape inside quotes', '"a\\b"'],
  ])('rejects %s', (_name, value) => {
    expect(() => parseIdempotencyKey(value)).toThrow(InvalidIdempotencyKeyError);
  });
  it('rejects a repeated header', () => expect(() => parseIdempotencyKey(['a', 'b'])).toThrow(InvalidIdempotencyKeyError));
});

describe('request fingerprint', () => {
  const body = Buffer.from('{"a":1}');
  it('is the same for the same body and client', () => {
    expect(requestFingerprint(body, 'Bearer x')).toBe(requestFingerprint(Buffer.from('{"a":1}'), 'Bearer x'));
  });
  it('differs when the body bytes differ, even if the JSON is equivalent', () => {
    expect(requestFingerprint(body, undefined)).not.toBe(requestFingerprint(Buffer.from('{ "a": 1 }'), undefined));
  });
  it('differs between clients with different credentials', () => {
    expect(requestFingerprint(body, 'Bearer x')).not.toBe(requestFingerprint(body, 'Bearer y'));
    expect(requestFingerprint(body, 'Bearer x')).not.toBe(requestFingerprint(body, undefined));
  });
  it('does not contain the credential', () => {
    expect(requestFingerprint(body, 'Bearer secret-token')).not.toContain('secret');
  });
});
