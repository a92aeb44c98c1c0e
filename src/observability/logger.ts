import { pino, type DestinationStream, type Logger } from 'pino';

/**
 * The relay's logger. Authorization headers and the admin token are redacted
 * as a second line of defence; the request serializer already leaves headers out.
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
        ],
        censor: '[redacted]',
      },
    },
    options.destination,
  );
}

export type { Logger };
