import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';

function capture(format?: 'json' | 'pretty') {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString('utf8'));
      callback();
    },
  });
  return { logger: createLogger({ level: 'info', format, destination }), text: () => chunks.join('') };
}

/** Pretty lines pass through a stream transform: let it run. */
const flushed = () => new Promise((resolve) => setImmediate(resolve));

const SECRETS = ['s3cret-auth', 's3cret-proxy', 's3cret-cookie', 's3cret-set-cookie', 's3cret-api-key', 's3cret-relay-token', 's3cret-key-b64'];
const headers = {
  authorization: 'Bearer s3cret-auth',
  'proxy-authorization': 'Basic s3cret-proxy',
  cookie: 'sid=s3cret-cookie',
  'set-cookie': ['sid=s3cret-set-cookie; HttpOnly'],
  'x-api-key': 's3cret-api-key',
  'x-relay-token': 's3cret-relay-token',
  'content-type': 'application/json',
};

describe('createLogger', () => {
  it('never writes the command ioredis attaches to an error (AUTH carries the Redis password)', () => {
    const { logger, text } = capture();
    const err = Object.assign(new Error('WRONGPASS invalid username-password pair'), { command: { name: 'auth', args: ['s3cret-redis-pass'] } });
    logger.warn({ err }, 'redis connection trouble');
    logger.warn({ err, context: 'jobs.lease' }, 'store operation failed');
    logger.warn({ detail: { cause: err } }, 'nested');
    logger.warn(err);
    expect(text()).toContain('WRONGPASS');
    expect(text()).not.toContain('s3cret-redis-pass');
    expect(JSON.parse(text().split('\n')[0]!).err).toMatchObject({ type: 'Error', message: expect.stringContaining('WRONGPASS'), command: '[redacted]' });
  });

  it('redacts an admin token and an Authorization header wherever they are logged', () => {
    const { logger, text } = capture();
    logger.info({ config: { adminToken: 'tok-123' }, req: { headers: { authorization: 'Bearer tok-123' } } }, 'started');
    expect(text()).not.toContain('tok-123');
  });

  it('writes no secret header value, at the top level, under req and res, or deeper, in any case', () => {
    const { logger, text } = capture();
    logger.info({ headers }, 'top');
    logger.info({ req: { headers }, res: { headers } }, 'req and res');
    logger.info({ entry: { request: { headers } } }, 'deeper');
    logger.info({ forwarded: { Authorization: 'Bearer s3cret-auth', 'X-Api-Key': 's3cret-api-key', Cookie: 'sid=s3cret-cookie' } }, 'cased');
    logger.info({ items: [{ headers }, { headers }] }, 'in an array');
    const out = text();
    for (const secret of SECRETS) expect(out).not.toContain(secret);
    expect(out).toContain('application/json');
    expect(JSON.parse(out.split('\n')[0]!).headers).toMatchObject({ authorization: '[redacted]', 'set-cookie': '[redacted]' });
  });

  it('writes no RELAY_SECRET_KEY, whatever the field holding it is called', () => {
    const { logger, text } = capture();
    logger.info({ secretKey: 's3cret-key-b64', relaySecretKey: 's3cret-key-b64' }, 'top');
    logger.info({ config: { secretKey: 's3cret-key-b64', relaySecretKey: 's3cret-key-b64' } }, 'config');
    logger.info({ settings: { secretKey: 's3cret-key-b64' } }, 'elsewhere');
    expect(text()).not.toContain('s3cret-key-b64');
  });

  it('writes URLs without user-info or secret query parameters', () => {
    const { logger, text } = capture();
    logger.info({ req: { url: '/relay/pay?api_key=s3cret-q&amount=5' } }, 'request');
    logger.info({ target: 'https://user:s3cret-pw@api.test/v1', redisUrl: 'redis://:s3cret-redis@cache:6379' }, 'routes');
    logger.info({ endpoint: new URL('https://api.test/?token=s3cret-t') }, 'url object');
    const out = text();
    for (const secret of ['s3cret-q', 's3cret-pw', 's3cret-redis', 's3cret-t']) expect(out).not.toContain(secret);
    expect(out).toContain('/relay/pay?api_key=[redacted]&amount=5');
  });

  it("redacts a child logger's bindings too", () => {
    const { logger, text } = capture();
    logger.child({ headers: { authorization: 'Bearer s3cret-auth' } }).info('from a child');
    expect(text()).toContain('from a child');
    expect(text()).not.toContain('s3cret-auth');
  });

  it("leaves the caller's object as it was", () => {
    const { logger } = capture();
    const fields = { req: { headers: { authorization: 'Bearer s3cret-auth' } } };
    logger.info(fields, 'logged');
    expect(fields.req.headers.authorization).toBe('Bearer s3cret-auth');
  });

  it('writes JSON lines with a level label and an ISO time', () => {
    const { logger, text } = capture('json');
    logger.warn({ n: 1 }, 'hello');
    const line = JSON.parse(text()) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 'warn', msg: 'hello', n: 1, service: 'resilient-relay' });
    expect(line.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('writes readable text, not JSON, in pretty format, with secrets redacted', async () => {
    const { logger, text } = capture('pretty');
    logger.info({ req: { headers } }, 'relay listening');
    logger.error({ err: new Error('boom') }, 'it broke');
    await flushed();
    const out = text();
    expect(out).toMatch(/^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] INFO: relay listening\n/);
    expect(out).toMatch(/ERROR: it broke/);
    expect(out).toContain('Error: boom');
    expect(() => JSON.parse(out.split('\n')[0]!)).toThrow();
    expect(out).not.toMatch(/\u001b\[/);
    for (const secret of SECRETS) expect(out).not.toContain(secret);
  });

  it('writes nothing below its level', () => {
    const { logger, text } = capture();
    logger.debug({ headers }, 'quiet');
    expect(text()).toBe('');
  });
});
