import type { AddressInfo } from 'node:net';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger } from './observability/logger.js';
import { buildRelay } from './relay.js';

/** The process: env -> config -> relay -> listen -> signals. The only file that reads process.env. */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`resilient-relay: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  const logger = createLogger({ level: config.logLevel });
  const relay = await buildRelay(config, logger);
  const server = relay.app.listen(config.port, config.host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  logger.info(
    { port, host: config.host, downstream: relay.downstreamUrl, embeddedSimulator: Boolean(relay.simulator), store: config.store },
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

main().catch((error: unknown) => {
  process.stderr.write(`resilient-relay: failed to start: ${(error as Error).message}\n`);
  process.exit(1);
});
