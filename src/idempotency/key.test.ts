import { describe, expect, it } from 'vitest';
import { InvalidIdempotencyKeyError } from '../errors.js';
import { keyScope, parseIdempotencyKey, requestFingerprint } from './key.js';

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
  const request = { method: 'POST', route: 'default', path: '/v1', contentType: 'application/json', body: Buffer.from('{"a":1}') };
  it('is the same for the same method, route, path, content type and body bytes', () => {
    expect(requestFingerprint(request)).toBe(requestFingerprint({ ...request, body: Buffer.from('{"a":1}') }));
  });
  it('differs when the body bytes differ, even if the JSON is equivalent', () => {
    expect(requestFingerprint(request)).not.toBe(requestFingerprint({ ...request, body: Buffer.from('{ "a": 1 }') }));
  });
  it('differs by method, path and content type', () => {
    expect(requestFingerprint(request)).not.toBe(requestFingerprint({ ...request, method: 'PUT' }));
    expect(requestFingerprint(request)).not.toBe(requestFingerprint({ ...request, path: '/v2' }));
    expect(requestFingerprint(request)).not.toBe(requestFingerprint({ ...request, contentType: 'text/plain' }));
  });
});

describe('key scope', () => {
  const secret = Buffer.alloc(32, 1);
  it('differs between clients with different credentials, and between routes', () => {
    expect(keyScope('default', secret, 'Bearer x', 'k')).not.toBe(keyScope('default', secret, 'Bearer y', 'k'));
    expect(keyScope('default', secret, 'Bearer x', 'k')).not.toBe(keyScope('default', secret, undefined, 'k'));
    expect(keyScope('a', secret, 'Bearer x', 'k')).not.toBe(keyScope('b', secret, 'Bearer x', 'k'));
  });
  it('does not contain the credential, and depends on the relay key (an HMAC, not a plain hash)', () => {
    expect(keyScope('default', secret, 'Bearer secret-token', 'k')).not.toContain('secret');
    expect(keyScope('default', secret, 'Bearer x', 'k')).not.toBe(keyScope('default', Buffer.alloc(32, 2), 'Bearer x', 'k'));
  });
});
