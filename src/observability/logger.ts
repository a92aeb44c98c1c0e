import { destination, pino, stdSerializers, type DestinationStream, type Logger, type LoggerOptions as PinoOptions } from 'pino';
import pretty from 'pino-pretty';
import { REDACTED } from '../secrets/redact.js';
import { scrubSecrets } from '../secrets/scrub.js';

export interface LoggerOptions {
  /** A pino level name (`LOG_LEVEL`). */
  level: string;
  /**
   * `json`: one line per event, `level` as a label, `time` in ISO 8601;
   * `pretty`: readable text for a terminal (`LOG_FORMAT`).
   * @default 'json'
   */
  format?: 'json' | 'pretty';
  /** Where lines go. @default standard output, buffered (see `bufferedStdout`) */
  destination?: DestinationStream;
}

/** pino's error serializer, less the command ioredis attaches to its errors (AUTH's password, a Lua script's job body). */
function serializeError(error: unknown): unknown {
  const data = stdSerializers.err(error as Error) as unknown;
  if (data !== null && typeof data === 'object' && 'command' in data) (data as { command: unknown }).command = REDACTED;
  return data;
}

const scrubOptions = { serializeError: (error: Error) => serializeError(error) };
const scrub = (object: Record<string, unknown>) => scrubSecrets(object, scrubOptions) as Record<string, unknown>;

/**
 * The relay's logger. Secrets are left out of log calls in the first place;
 * as a second line of defence every logged object is scrubbed of secret
 * fields, URL user-info and secret query parameters at any depth.
 *
 * A scrub rather than pino's `redact` paths: fast-redact has no recursive
 * wildcard, and the `*.headers.…` paths it would take cost ~20 µs per line
 * (4x the line itself); the scrub allocates nothing unless it finds a secret.
 */
export function createLogger(options: LoggerOptions): Logger {
  const settings: PinoOptions = {
    level: options.level,
    base: { service: 'resilient-relay' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: {
      level: (label: string) => ({ level: label }),
      log: scrub,
    },
    // The scrub has already made every Error data (pino's own serializer would call that data an `Object`).
    serializers: { err: (error: unknown) => (error instanceof Error ? scrubSecrets(error, scrubOptions) : error) },
  };
  const logger = options.format === 'pretty' ? pino(settings, prettyStream(options.destination)) : pino(settings, options.destination ?? bufferedStdout());
  // pino gives children's bindings no formatter; a child (and each of its children, which inherit this) scrubs them here.
  const child = logger.child;
  logger.child = function scrubbedChild(this: Logger, bindings, childOptions) {
    return child.call(this, scrub(bindings), childOptions);
  } as typeof child;
  return logger;
}

/** Lines wait at most this long in the buffer: `tail -f` still reads them as they happen. */
const FLUSH_EVERY_MS = 100;
/** A write once this much is buffered. */
const BUFFER_BYTES = 4096;

/**
 * Standard output through a 4 KB buffer written asynchronously, flushed every
 * 100 ms and synchronously at exit. The one access line per request, written
 * synchronously (pino's default), was one write(2) per request: it profiled at
 * about a third of the relay's CPU per request under load. The cost: a kill -9
 * loses at most the last 100 ms of lines.
 */
function bufferedStdout(): DestinationStream {
  // A reader that stops reading (a stuck pipe) must not grow the buffer without bound: beyond 16 MiB lines are dropped.
  const stream = destination({ dest: 1, sync: false, minLength: BUFFER_BYTES, maxLength: 16 * 1024 * 1024 });
  const flush = () => {
    // Not while sonic-boom is still opening fd 1 or writing: its flush throws then.
    try {
      stream.flush();
    } catch {
      // the next tick tries again
    }
  };
  setInterval(flush, FLUSH_EVERY_MS).unref();
  process.once('exit', () => {
    try {
      stream.flushSync();
    } catch {
      // nothing more can be done at exit
    }
  });
  return stream;
}

/** In-process rather than a worker transport: it works under test runners and needs no extra thread. */
function prettyStream(destination: DestinationStream | undefined): DestinationStream {
  return pretty({
    // Colours only at a terminal that takes them; never into a file or a test's stream.
    colorize: destination === undefined ? pretty.isColorSupported : false,
    // ISO 8601 in UTC, as the JSON lines have it: one time format to grep and compare across both.
    translateTime: "UTC:yyyy-mm-dd'T'HH:MM:ss.l'Z'",
    ignore: 'pid,hostname,service',
    ...(destination === undefined ? {} : { destination }),
  });
}

export type { Logger };
