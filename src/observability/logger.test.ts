import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';

function capture() {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString('utf8'));
      callback();
    },
  });
  return { logger: createLogger({ level: 'info', destination }), text: () => chunks.join('') };
}

describe('createLogger', () => {
  it('never writes the command ioredis attaches to an error (AUTH carries the Redis password)', () => {
    const { logger, text } = capture();
    const err = Object.assign(new Error('WRONGPASS invalid username-password pair'), { command: { name: 'auth', args: ['s3cret-redis-pass'] } });
    logger.warn({ err }, 'redis connection trouble');
    logger.warn({ err, context: 'jobs.lease' }, 'store operation failed');
    expect(text()).toContain('WRONGPASS');
    expect(text()).not.toContain('s3cret-redis-pass');
  });

  it('redacts an admin token and an Authorization header wherever they are logged', () => {
    const { logger, text } = capture();
    logger.info({ config: { adminToken: 'tok-123' }, req: { headers: { authorization: 'Bearer tok-123' } } }, 'started');
    expect(text()).not.toContain('tok-123');
  });
});
