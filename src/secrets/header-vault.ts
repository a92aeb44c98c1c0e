import { SecretKeyRequiredError } from '../errors.js';
import { openHeaders, redactHeaders, sealHeaders, SecretHeaderUnavailableError } from './redact.js';
import { SecretBox } from './secret-box.js';

/**
 * Where stored requests' secret headers go in and out: sealed under
 * `RELAY_SECRET_KEY` (bound to the record's id), or dropped when there is no
 * key. One per relay, built from the config.
 */
export class HeaderVault {
  constructor(private readonly box: SecretBox | undefined) {}

  /** A vault for `RELAY_SECRET_KEY` (base64 of 32 bytes); unset: secrets are dropped, never stored in clear. */
  static fromBase64Key(key: string | undefined): HeaderVault {
    return new HeaderVault(key === undefined ? undefined : SecretBox.fromBase64(key));
  }

  /** Whether secret headers can be stored at all. */
  get canStoreSecrets(): boolean {
    return this.box !== undefined;
  }

  /** Headers to store under record `recordId`; `droppedSecrets` says a secret was left out (no key). */
  seal(
    headers: Record<string, string>,
    secretNames: ReadonlySet<string>,
    recordId: string,
  ): { headers: Record<string, string>; droppedSecrets: boolean } {
    return sealHeaders(headers, secretNames, this.box, recordId);
  }

  /**
   * The stored headers of record `recordId`, ready to send.
   * @throws {SecretKeyRequiredError} with `status` when a secret was dropped or does not decrypt.
   */
  open(headers: Record<string, string>, recordId: string, status: 400 | 422): Record<string, string> {
    try {
      return openHeaders(headers, this.box, recordId);
    } catch (error) {
      if (error instanceof SecretHeaderUnavailableError) throw new SecretKeyRequiredError(error.message, status);
      throw error;
    }
  }

  /** Stored (or incoming) headers as `/dlq` and `/jobs` show them: secrets and sealed values as `[redacted]`. */
  display(headers: Record<string, string>, secretNames?: ReadonlySet<string>): Record<string, string> {
    return redactHeaders(headers, secretNames);
  }
}
