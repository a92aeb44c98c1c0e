import { SecretKeyRequiredError } from '../errors.js';
import { REDACTED, mapSecretParams, openHeaders, redactHeaders, sealHeaders, SecretHeaderUnavailableError } from './redact.js';
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

  /**
   * A request's path and query to store under record `recordId`: the values of
   * secret query parameters (`api_key`, `token`...) sealed, or dropped without a key.
   */
  sealPath(path: string, recordId: string): { path: string; droppedSecrets: boolean } {
    let droppedSecrets = false;
    const sealed = mapSecretParams(path, (value) => {
      if (this.box === undefined) {
        droppedSecrets = true;
        return encodeURIComponent(REDACTED);
      }
      return this.box.seal(value, recordId);
    });
    return { path: sealed, droppedSecrets };
  }

  /**
   * The stored path of record `recordId`, ready to send.
   * @throws {SecretKeyRequiredError} with `status` when a secret parameter was dropped or does not decrypt.
   */
  openPath(path: string, recordId: string, status: 400 | 422): string {
    return mapSecretParams(path, (value) => {
      if (value === encodeURIComponent(REDACTED)) throw new SecretKeyRequiredError('A secret query parameter of this request was not kept (RELAY_SECRET_KEY was unset).', status);
      if (!SecretBox.isSealed(value)) return value;
      if (this.box === undefined) throw new SecretKeyRequiredError('A secret query parameter is encrypted and RELAY_SECRET_KEY is unset.', status);
      try {
        return this.box.open(value, recordId);
      } catch {
        throw new SecretKeyRequiredError('A secret query parameter does not decrypt (RELAY_SECRET_KEY changed).', status);
      }
    });
  }

  /** Stored (or incoming) headers as `/dlq` and `/jobs` show them: secrets and sealed values as `[redacted]`. */
  display(headers: Record<string, string>, secretNames?: ReadonlySet<string>): Record<string, string> {
    return redactHeaders(headers, secretNames);
  }
}
