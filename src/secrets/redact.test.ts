import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  describeSecret,
  isSecretHeader,
  openHeaders,
  REDACTED,
  redactHeaders,
  redactQuery,
  redactUrl,
  sealHeaders,
  SecretHeaderUnavailableError,
} from './redact.js';
import { SecretBox } from './secret-box.js';

const box = () => new SecretBox(randomBytes(32));

function caught(fn: () => unknown): SecretHeaderUnavailableError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(SecretHeaderUnavailableError);
    return error as SecretHeaderUnavailableError;
  }
  throw new Error('expected a throw');
}

describe('isSecretHeader', () => {
  it('knows the credential headers in any case', () => {
    for (const name of ['Authorization', 'proxy-authorization', 'COOKIE', 'Set-Cookie', 'X-Api-Key', 'x-relay-token']) {
      expect(isSecretHeader(name)).toBe(true);
    }
    expect(isSecretHeader('content-type')).toBe(false);
    expect(isSecretHeader('x-request-id')).toBe(false);
  });

  it("adds a route's own names, whatever case either side is in", () => {
    const route = new Set(['X-Partner-Signature', 'x-tenant-key']);
    expect(isSecretHeader('x-partner-signature', route)).toBe(true);
    expect(isSecretHeader('X-TENANT-KEY', route)).toBe(true);
    expect(isSecretHeader('x-partner-id', route)).toBe(false);
  });
});

describe('redactHeaders', () => {
  it('hides secret values, lower-cases names and leaves the input alone', () => {
    const input = { Authorization: 'Bearer sk_1', 'Content-Type': 'application/json', 'X-Partner-Signature': 'sig', Cookie: 'a=b' };
    const shown = redactHeaders(input, new Set(['x-partner-signature']));
    expect(shown).toEqual({ authorization: REDACTED, 'content-type': 'application/json', 'x-partner-signature': REDACTED, cookie: REDACTED });
    expect(input.Authorization).toBe('Bearer sk_1');
  });

  it('hides a sealed value under any name, so stored ciphertext is not shown either', () => {
    const sealed = box().seal('v', 'id');
    expect(redactHeaders({ 'x-custom': sealed })).toEqual({ 'x-custom': REDACTED });
  });

  it('keeps a header named __proto__ as a plain header', () => {
    const shown = redactHeaders(JSON.parse('{"__proto__":"x"}') as Record<string, string>);
    expect(Object.getPrototypeOf(shown)).toBe(Object.prototype);
    expect(Object.keys(shown)).toEqual(['__proto__']);
  });
});

describe('redactQuery', () => {
  it('replaces the value of every secret parameter and keeps every other byte', () => {
    expect(redactQuery('/relay/pay/v1/charges?api_key=abc&amount=10')).toBe('/relay/pay/v1/charges?api_key=[redacted]&amount=10');
    expect(redactQuery('/x?a=%20b+c&token=t0k&z=%E2%9C%93&password=p&')).toBe('/x?a=%20b+c&token=[redacted]&z=%E2%9C%93&password=[redacted]&');
    for (const name of ['api_key', 'apikey', 'token', 'access_token', 'key', 'signature', 'password', 'secret']) {
      expect(redactQuery(`/p?${name}=s3cr3t`)).toBe(`/p?${name}=[redacted]`);
    }
  });

  it('matches names in any case and percent-encoded', () => {
    expect(redactQuery('/p?API_KEY=s1&Token=s2&api%5Fkey=s3&%6Bey=s4')).toBe('/p?API_KEY=[redacted]&Token=[redacted]&api%5Fkey=[redacted]&%6Bey=[redacted]');
  });

  it('leaves names that only contain a secret word, and paths without a query', () => {
    expect(redactQuery('/p?keyboard=1&monkey=2&tokens=3')).toBe('/p?keyboard=1&monkey=2&tokens=3');
    expect(redactQuery('/token/abc')).toBe('/token/abc');
    expect(redactQuery('')).toBe('');
  });

  it('redacts every repetition, a ;-separated one, and one in a fragment', () => {
    expect(redactQuery('/p?token=a&token=b')).toBe('/p?token=[redacted]&token=[redacted]');
    expect(redactQuery('/p?x=1;secret=s')).toBe('/p?x=1;secret=[redacted]');
    expect(redactQuery('/cb#access_token=s&state=1')).toBe('/cb#access_token=[redacted]&state=1');
  });

  it('survives malformed escapes and parameters without a value', () => {
    expect(redactQuery('/p?%zz=1&token&key=&%E0%A4%A=2')).toBe('/p?%zz=1&token&key=[redacted]&%E0%A4%A=2');
  });
});

describe('redactUrl', () => {
  it('hides user-info and secret parameters of a URL', () => {
    expect(redactUrl('redis://:hunter2@cache.internal:6379/0')).toBe('redis://[redacted]@cache.internal:6379/0');
    expect(redactUrl('https://user:pw@api.test/v1?key=k&x=1')).toBe('https://[redacted]@api.test/v1?key=[redacted]&x=1');
    expect(redactUrl('https://api.test/v1?x=1')).toBe('https://api.test/v1?x=1');
  });

  it('hides a password that itself holds @ or an unescaped /', () => {
    expect(redactUrl('https://u:p@ss@api.test/')).toBe('https://[redacted]@api.test/');
    const out = redactUrl('redis://u:pa/ss@cache:6379');
    expect(out).not.toContain('pa/ss');
    expect(out).toBe('redis://[redacted]@cache:6379');
  });

  it('keeps an @ that is in the path or query of a URL without user-info', () => {
    expect(redactUrl('https://api.test/users/a@b.test?email=c@d.test')).toBe('https://api.test/users/a@b.test?email=c@d.test');
  });

  it('never throws, whatever it is given', () => {
    expect(redactUrl('not a url at all')).toBe('not a url at all');
    expect(redactUrl('http://us er:p w@exa mple/?token=t')).toBe('http://[redacted]@exa mple/?token=[redacted]');
    expect(redactUrl('//:secret@')).toBe('//[redacted]@');
    expect(redactUrl('')).toBe('');
  });
});

describe('describeSecret', () => {
  it('gives the length and nothing of the text', () => {
    expect(describeSecret('s3cr3t')).toBe('[redacted, 6 chars]');
    expect(describeSecret('')).toBe('[redacted, 0 chars]');
    expect(describeSecret('🔑🔑')).toBe('[redacted, 2 chars]');
  });
});

describe('sealHeaders and openHeaders', () => {
  const secretNames = new Set(['authorization', 'x-partner-signature']);

  it('seals only the secret values and gives them back for the same record', () => {
    const b = box();
    const headers = { authorization: 'Bearer sk_1', 'x-partner-signature': 'sig', 'content-type': 'text/plain', cookie: 'sid=1' };
    const stored = sealHeaders(headers, secretNames, b, 'dlq-7');
    expect(stored.droppedSecrets).toBe(false);
    expect(stored.headers['content-type']).toBe('text/plain');
    for (const name of ['authorization', 'x-partner-signature', 'cookie']) expect(SecretBox.isSealed(stored.headers[name]!)).toBe(true);
    expect(JSON.stringify(stored.headers)).not.toMatch(/sk_1|sig"|sid=1/);
    expect(openHeaders(stored.headers, b, 'dlq-7')).toEqual(headers);
  });

  it('drops secrets without a box and says so; the other headers stay', () => {
    const stored = sealHeaders({ authorization: 'Bearer sk_1', accept: '*/*' }, secretNames, undefined, 'id');
    expect(stored).toEqual({ headers: { authorization: REDACTED, accept: '*/*' }, droppedSecrets: true });
  });

  it('needs no box for headers without secrets', () => {
    const stored = sealHeaders({ accept: '*/*' }, secretNames, undefined, 'id');
    expect(stored.droppedSecrets).toBe(false);
    expect(openHeaders(stored.headers, undefined, 'id')).toEqual({ accept: '*/*' });
  });

  it('refuses to give back a dropped secret, naming the header and not its value', () => {
    const stored = sealHeaders({ authorization: 'Bearer sk_1' }, secretNames, undefined, 'id');
    const error = caught(() => openHeaders(stored.headers, box(), 'id'));
    expect(error).toMatchObject({ code: 'SECRET_KEY_REQUIRED', header: 'authorization', problem: 'not-stored' });
    expect(error.message).not.toContain('sk_1');
  });

  it('refuses a sealed secret when the key is gone, changed, or the record is another', () => {
    const stored = sealHeaders({ authorization: 'Bearer sk_1' }, secretNames, box(), 'job-1').headers;
    expect(caught(() => openHeaders(stored, undefined, 'job-1')).problem).toBe('no-key');
    expect(caught(() => openHeaders(stored, box(), 'job-1')).problem).toBe('unreadable');
    const b = box();
    const own = sealHeaders({ authorization: 'Bearer sk_1' }, secretNames, b, 'job-1').headers;
    expect(caught(() => openHeaders(own, b, 'job-2')).problem).toBe('unreadable');
  });

  it('gives back a plain value that only looks sealed or redacted, exactly as the client sent it', () => {
    const b = box();
    const headers = { 'x-note': REDACTED, 'x-echo': 'enc:v1:not-really' };
    const stored = sealHeaders(headers, secretNames, b, 'id');
    expect(openHeaders(stored.headers, b, 'id')).toEqual(headers);
  });
});
