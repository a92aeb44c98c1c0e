/**
 * The real relay in its own process, for the bench. Its configuration comes from
 * BENCH_RELAY_ENV (a JSON object of relay variables) rather than the inherited
 * environment, so a stray export cannot change a measurement. With
 * BENCH_LOG_FILE, logs go to that file (synchronously, like pino's default
 * stdout) instead of stdout. OTEL_* variables in BENCH_RELAY_ENV turn tracing
 * on as main.ts does. Prints `{"port":N}` when listening.
 */
import type { AddressInfo } from 'node:net';
import { destination } from 'pino';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/observability/logger.js';
import { startTracing } from '../src/observability/tracing.js';
import { createRelayServer } from '../src/app.js';
import { buildRelay } from '../src/relay.js';

const relayEnv = JSON.parse(process.env.BENCH_RELAY_ENV ?? '{}') as Record<string, string>;
const config = loadConfig(relayEnv);
const logFile = process.env.BENCH_LOG_FILE;
const logger = createLogger({
  level: config.logLevel,
  ...(logFile ? { destination: destination({ dest: logFile, sync: true }) } : {}),
});
// Undefined, having loaded nothing, without OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT: the relay as it runs by default.
const tracing = await startTracing(relayEnv);
const relay = await buildRelay(config, logger, { tracing });
const server = createRelayServer(relay.app).listen(config.port, config.host, () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  relay.beginShutdown();
  server.close();
  server.closeIdleConnections();
  // process.exit (not a signal death) so that --cpu-prof writes its profile.
  void relay.close().finally(() => {
    server.closeAllConnections();
    logger.flush();
    process.exit(0);
  });
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
