import { pino, type DestinationStream, type Logger } from 'pino';

/**
 * The relay's logger. Authorization headers, the admin token and the command
 * ioredis attaches to its errors are redacted as a second line of defence; the
 * request serializer already leaves headers out.
 */
export function createLogger(options: { level: string; destination?: DestinationStream }): Logger {
  return pino(
    {
      level: options.level,
      base: { service: 'resilient-relay' },
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          'headers.authorization',
          'authorization',
          'adminToken',
          'config.adminToken',
          '*.adminToken',
          // ioredis puts the failed command on its errors: AUTH's password, a Lua script's job body.
          'err.command',
          '*.err.command',
        ],
        censor: '[redacted]',
      },
    },
    options.destination,
  );
}

export type { Logger };
