import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SecretKeyRequiredError } from '../errors.js';
import { HeaderVault } from './header-vault.js';

const secretNames = new Set(['authorization']);

describe('HeaderVault', () => {
  it('stores secrets sealed under RELAY_SECRET_KEY and gives them back', () => {
    const vault = HeaderVault.fromBase64Key(randomBytes(32).toString('base64'));
    expect(vault.canStoreSecrets).toBe(true);
    const { headers, droppedSecrets } = vault.seal({ authorization: 'Bearer sk_1', accept: '*/*' }, secretNames, 'job-1');
    expect(droppedSecrets).toBe(false);
    expect(vault.display(headers)).toEqual({ authorization: '[redacted]', accept: '*/*' });
    expect(vault.open(headers, 'job-1', 422)).toEqual({ authorization: 'Bearer sk_1', accept: '*/*' });
  });

  it('answers SECRET_KEY_REQUIRED with the status asked for when a secret cannot be read back', () => {
    const withoutKey = HeaderVault.fromBase64Key(undefined);
    expect(withoutKey.canStoreSecrets).toBe(false);
    const { headers, droppedSecrets } = withoutKey.seal({ authorization: 'Bearer sk_1' }, secretNames, 'dlq-1');
    expect(droppedSecrets).toBe(true);
    for (const status of [400, 422] as const) {
      const error = (() => {
        try {
          withoutKey.open(headers, 'dlq-1', status);
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(SecretKeyRequiredError);
      expect(error).toMatchObject({ code: 'SECRET_KEY_REQUIRED', status });
      expect((error as Error).message).not.toContain('sk_1');
    }
  });

  it('refuses what another key sealed (RELAY_SECRET_KEY changed) with 422', () => {
    const sealed = HeaderVault.fromBase64Key(randomBytes(32).toString('base64')).seal({ authorization: 'Bearer sk_1' }, secretNames, 'job-1');
    const rotated = HeaderVault.fromBase64Key(randomBytes(32).toString('base64'));
    expect(() => rotated.open(sealed.headers, 'job-1', 422)).toThrow(SecretKeyRequiredError);
  });
});
