import { existsSync } from 'node:fs';
import { createServer, type ServerOptions } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger } from './observability/logger.js';
import { buildRelay } from './relay.js';
import { redactUrl } from './secrets/redact.js';

/** The process: env -> config -> relay -> listen -> signals. The only file that reads process.env. */
async function main(): Promise<void> {
  let config: Config;
  try {
    loadEnvFile(process.env.ENV_FILE ?? '.env', process.env.ENV_FILE !== undefined);
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      for (const line of error.lines) process.stderr.write(`resilient-relay: ${line}\n`);
      process.exit(1);
    }
    throw error;
  }
  const logger = createLogger({ level: config.logLevel, format: config.logFormat });
  const relay = await buildRelay(config, logger);
  const server = createServer(serverOptions(config.server), relay.app).listen(config.port, config.host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  logger.info(
    {
      port,
      host: config.host,
      routes: relay.routes.names,
      downstream: redactUrl(relay.downstreamUrl),
      embeddedSimulator: Boolean(relay.simulator),
      store: config.store,
    },
    `relay listening on http://${config.host}:${port}`,
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: draining queued and in-flight requests');
    relay.beginShutdown();
    // Stop accepting connections; keep the open ones so in-flight answers can be written.
    server.close();
    server.closeIdleConnections();
    relay
      .close()
      .then(() => {
        server.closeAllConnections();
        logger.info('shutdown complete');
        logger.flush();
        process.exit(0);
      })
      .catch((error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/**
 * Limits on what a client may hold: a slowloris trickling its headers or body
 * is cut (408) once its timeout passes. node counts `requestTimeout` until the
 * request has arrived, not while the relay waits on the downstream
 * (test/server-timeouts.test.ts), so it need not exceed REQUEST_DEADLINE_MS.
 * node checks both only every `connectionsCheckingInterval` (30 s by default):
 * once a second enforces them within a second of their value.
 */
function serverOptions(limits: Config['server']): ServerOptions {
  return {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.min(1_000, limits.headersTimeoutMs),
  };
}

/**
 * Variables from ENV_FILE (default `.env`) that the environment does not set
 * already: the environment wins. A missing default `.env` is fine; a missing
 * file named on purpose is an error.
 */
function loadEnvFile(path: string, required: boolean): void {
  if (!existsSync(path)) {
    if (required) throw new ConfigError(`Invalid ENV_FILE=${JSON.stringify(path)}: the file does not exist`);
    return;
  }
  try {
    process.loadEnvFile(path);
  } catch (error) {
    throw new ConfigError(`Invalid ENV_FILE=${JSON.stringify(path)}: ${(error as Error).message.split('\n')[0]}`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`resilient-relay: failed to start: ${(error as Error).message}\n`);
  process.exit(1);
});
