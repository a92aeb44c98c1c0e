import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { createAccessCheck, isLoopback } from './access.js';

function fakeRequest(remoteAddress: string, authorization?: string): IncomingMessage {
  // Only the two fields the check reads; a real IncomingMessage needs a socket.
  return { socket: { remoteAddress }, headers: authorization ? { authorization } : {} } as unknown as IncomingMessage;
}

describe('control access', () => {
  it('treats 127.0.0.0/8, ::1 and IPv4-mapped loopback as loopback', () => {
    expect(['127.0.0.1', '127.3.4.5', '::1', '::ffff:127.0.0.1'].every(isLoopback)).toBe(true);
    expect(['10.0.0.1', '::ffff:10.0.0.1', '128.0.0.1', '::2'].some(isLoopback)).toBe(false);
    expect(isLoopback(undefined)).toBe(false);
  });

  it('without a token, allows loopback and forbids everyone else', () => {
    const check = createAccessCheck(undefined);
    expect(check(fakeRequest('127.0.0.1'))).toBe('allow');
    expect(check(fakeRequest('192.168.1.20'))).toBe('forbidden');
  });

  it('with a token, requires it from loopback clients too', () => {
    const check = createAccessCheck('tok');
    expect(check(fakeRequest('127.0.0.1'))).toBe('unauthorized');
    expect(check(fakeRequest('127.0.0.1', 'Bearer tok2'))).toBe('unauthorized');
    expect(check(fakeRequest('10.0.0.1', 'bearer tok'))).toBe('allow');
  });
});
