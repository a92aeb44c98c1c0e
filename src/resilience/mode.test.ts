import { describe, expect, it } from 'vitest';
import { protectionMode, type ProtectionMode } from './mode.js';

describe('protectionMode', () => {
  it('defaults to enforce', () => {
    expect(protectionMode(undefined)).toBe('enforce');
  });

  it('passes every known mode through', () => {
    for (const mode of ['enforce', 'shadow', 'canary', 'off'] as const) expect(protectionMode(mode)).toBe(mode);
  });

  it('refuses an unknown mode, naming it', () => {
    // Cast: a value from untyped config reaching a policy is exactly the case being checked.
    expect(() => protectionMode('audit' as ProtectionMode)).toThrow('Expected `mode` to be one of enforce, shadow, canary, off, got `audit`');
  });
});
