import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SecretBox, SecretUnreadableError } from './secret-box.js';

const key = () => randomBytes(32);

function expectUnreadable(open: () => unknown): void {
  let caught: unknown;
  try {
    open();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(SecretUnreadableError);
  expect((caught as SecretUnreadableError).code).toBe('SECRET_UNREADABLE');
}

describe('SecretBox', () => {
  it('opens what it sealed, for the same associated data', () => {
    const box = new SecretBox(key());
    for (const plain of ['Bearer sk_live_123', '', 'ünïcödé ✓ 🔑', 'x'.repeat(8192)]) {
      const sealed = box.seal(plain, 'dlq-1');
      expect(SecretBox.isSealed(sealed)).toBe(true);
      expect(sealed).toMatch(/^enc:v1:[A-Za-z0-9_-]+$/);
      expect(sealed).not.toContain(plain || '\0');
      expect(box.open(sealed, 'dlq-1')).toBe(plain);
    }
  });

  it('lays out nonce, ciphertext and tag as 12 + n + 16 bytes', () => {
    const sealed = new SecretBox(key()).seal('abcd', 'id');
    expect(Buffer.from(sealed.slice('enc:v1:'.length), 'base64url')).toHaveLength(12 + 4 + 16);
  });

  it('uses a new nonce for every seal, so equal secrets do not look equal', () => {
    const box = new SecretBox(key());
    const sealed = Array.from({ length: 50 }, () => box.seal('same secret', 'id'));
    expect(new Set(sealed).size).toBe(50);
    expect(new Set(sealed.map((s) => s.slice(7, 23))).size).toBe(50);
  });

  it('refuses a value sealed under another key (the key changed)', () => {
    const sealed = new SecretBox(key()).seal('Bearer abc', 'id');
    expectUnreadable(() => new SecretBox(key()).open(sealed, 'id'));
  });

  it('refuses a value moved to another record (other associated data)', () => {
    const box = new SecretBox(key());
    expectUnreadable(() => box.open(box.seal('Bearer abc', 'job-1'), 'job-2'));
  });

  it('refuses a value with any byte changed', () => {
    const box = new SecretBox(key());
    const sealed = box.seal('Bearer abc', 'id');
    const bytes = Buffer.from(sealed.slice(7), 'base64url');
    for (let i = 0; i < bytes.length; i++) {
      const tampered = Buffer.from(bytes);
      tampered[i]! ^= 0x01;
      expectUnreadable(() => box.open(`enc:v1:${tampered.toString('base64url')}`, 'id'));
    }
  });

  it('refuses plain, truncated and empty values', () => {
    const box = new SecretBox(key());
    expectUnreadable(() => box.open('Bearer abc', 'id'));
    expectUnreadable(() => box.open('enc:v1:', 'id'));
    expectUnreadable(() => box.open(`enc:v1:${randomBytes(20).toString('base64url')}`, 'id'));
  });

  it('needs a 32-byte key, naming the length it got', () => {
    expect(() => new SecretBox(randomBytes(16))).toThrow(/32-byte key, got 16 bytes/);
    expect(() => new SecretBox(Buffer.alloc(0))).toThrow(RangeError);
    expect(() => SecretBox.fromBase64(randomBytes(31).toString('base64'))).toThrow(/got 31 bytes/);
    const k = key();
    const sealed = new SecretBox(k).seal('v', 'id');
    expect(SecretBox.fromBase64(k.toString('base64')).open(sealed, 'id')).toBe('v');
  });

  it('copies its key, so a caller wiping its buffer does not change the box', () => {
    const k = key();
    const box = new SecretBox(k);
    const sealed = box.seal('v', 'id');
    k.fill(0);
    expect(box.open(sealed, 'id')).toBe('v');
  });

  it('says whether a value has the sealed form', () => {
    expect(SecretBox.isSealed('enc:v1:abc')).toBe(true);
    expect(SecretBox.isSealed('Bearer enc:v1:abc')).toBe(false);
    expect(SecretBox.isSealed('')).toBe(false);
  });
});
