import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const PREFIX = 'enc:v1:';
const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** A sealed value that does not open: another key, altered bytes, or other associated data. */
export class SecretUnreadableError extends Error {
  readonly code = 'SECRET_UNREADABLE';
  override readonly name = 'SecretUnreadableError';
}

/**
 * Seals short secrets (header values) with AES-256-GCM under one key.
 *
 * Sealed form: `enc:v1:<base64url(nonce | ciphertext | tag)>`, a random
 * 12-byte nonce per value. The associated data (a record's id) binds a value
 * to its record, so a sealed value copied into another record does not open.
 */
export class SecretBox {
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (!Buffer.isBuffer(key) || key.length !== KEY_BYTES) {
      throw new RangeError(`Expected a ${KEY_BYTES}-byte key, got ${Buffer.isBuffer(key) ? `${key.length} bytes` : typeof key}`);
    }
    this.#key = Buffer.from(key);
  }

  /** A box for `RELAY_SECRET_KEY`: base64 of exactly 32 bytes. */
  static fromBase64(encoded: string): SecretBox {
    return new SecretBox(Buffer.from(encoded, 'base64'));
  }

  /** Whether a value has the sealed form (says nothing of whether it opens). */
  static isSealed(value: string): boolean {
    return value.startsWith(PREFIX);
  }

  seal(plain: string, associatedData: string): string {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(associatedData, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return PREFIX + Buffer.concat([nonce, ciphertext, cipher.getAuthTag()]).toString('base64url');
  }

  /** @throws {SecretUnreadableError} when the value is not sealed, or not by this key for this associated data. */
  open(sealed: string, associatedData: string): string {
    if (!SecretBox.isSealed(sealed)) throw new SecretUnreadableError('The value is not sealed.');
    const bytes = Buffer.from(sealed.slice(PREFIX.length), 'base64url');
    if (bytes.length < NONCE_BYTES + TAG_BYTES) throw new SecretUnreadableError('The sealed value is truncated.');
    const decipher = createDecipheriv('aes-256-gcm', this.#key, bytes.subarray(0, NONCE_BYTES), { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(associatedData, 'utf8'));
    decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(bytes.subarray(NONCE_BYTES, bytes.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch (cause) {
      throw new SecretUnreadableError('The sealed value does not open: the key changed, or the value or its record was altered.', { cause });
    }
  }
}
