import { describe, expect, it } from 'vitest';
import { scrubSecrets } from './scrub.js';

describe('scrubSecrets', () => {
  it('returns the very same value when it holds no secret (nothing allocated on the common path)', () => {
    const line = { reqId: 'r1', req: { method: 'POST', url: '/relay?x=1', remoteAddress: '127.0.0.1' }, res: { statusCode: 200 }, tags: ['a', 1, null] };
    expect(scrubSecrets(line)).toBe(line);
    for (const plain of [null, undefined, 1, 'text', true]) expect(scrubSecrets(plain)).toBe(plain);
  });

  it('copies only the branches it redacts', () => {
    const line = { req: { headers: { authorization: 'Bearer a', accept: '*/*' } }, res: { statusCode: 200 } };
    const out = scrubSecrets(line) as typeof line;
    expect(out).toEqual({ req: { headers: { authorization: '[redacted]', accept: '*/*' } }, res: { statusCode: 200 } });
    expect(out.res).toBe(line.res);
    expect(line.req.headers.authorization).toBe('Bearer a');
  });

  it('redacts secret fields of any type, and keeps null and undefined ones as they are', () => {
    expect(scrubSecrets({ cookie: ['a=1', 'b=2'], password: 42, adminToken: null, secretKey: undefined })).toEqual({
      cookie: '[redacted]',
      password: '[redacted]',
      adminToken: null,
      secretKey: undefined,
    });
  });

  it('turns nested errors into data through the given serializer, scrubbed as well', () => {
    const error = Object.assign(new Error('request failed'), { config: { headers: { Authorization: 'Bearer a' } } });
    const out = scrubSecrets({ detail: { error } }, { serializeError: (e) => ({ ...e, message: e.message }) });
    expect(out).toEqual({ detail: { error: { message: 'request failed', config: { headers: { Authorization: '[redacted]' } } } } });
  });

  it('ends on a cycle and keeps a __proto__ field a plain field', () => {
    const cyclic: Record<string, unknown> = { name: 'loop' };
    cyclic.self = cyclic;
    expect(() => scrubSecrets(cyclic)).not.toThrow();
    const tricky = JSON.parse('{"__proto__":{"authorization":"Bearer a"}}') as Record<string, unknown>;
    const out = scrubSecrets(tricky) as Record<string, unknown>;
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(JSON.stringify(out)).toBe('{"__proto__":{"authorization":"[redacted]"}}');
  });

  it('leaves buffers, dates and objects with their own toJSON alone', () => {
    const value = { body: Buffer.from('token=abc'), at: new Date(0), custom: { toJSON: () => 'x', authorization: 'y' } };
    expect(scrubSecrets(value)).toBe(value);
  });
});
