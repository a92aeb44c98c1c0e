import { existsSync, readFileSync } from 'node:fs';
import type { ServerOptions } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseEnv } from 'node:util';
import { createRelayServer } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { probeTcp } from './downstream/probe.js';
import { registeredRoutes } from './http/registered-routes.js';
import { createLogger, type Logger } from './observability/logger.js';
import { startTracing, type Tracing } from './observability/tracing.js';
import { describeLimits, nextSteps, reachableBaseUrl } from './observability/startup-summary.js';
import { buildRelay } from './relay.js';
import type { RouteSpec } from './routes/route-spec.js';
import { redactUrl } from './secrets/redact.js';

/** The process: env -> config -> relay -> listen -> signals. The only file that reads process.env. */
async function main(): Promise<void> {
  let config: Config;
  let tracing: Tracing | undefined;
  let reportExportError: (message: string) => void = () => {};
  // What ENV_FILE may set, on a reload too: never a variable the process was started with.
  const inherited: ReadonlySet<string> = new Set(Object.keys(process.env));
  const envFile = process.env.ENV_FILE ?? '.env';
  try {
    loadEnvFile(process.env.ENV_FILE ?? '.env', process.env.ENV_FILE !== undefined);
    config = loadConfig(process.env);
    // Undefined (nothing loaded) unless OTEL_EXPORTER_OTLP_ENDPOINT or ..._TRACES_ENDPOINT is set.
    // The logger is made below, with the config; an export fails only once spans flow.
    tracing = await startTracing(process.env, { onExportError: (message) => reportExportError(message) });
  } catch (error) {
    if (error instanceof ConfigError) {
      for (const line of error.lines) process.stderr.write(`resilient-relay: ${line}\n`);
      process.exit(1);
    }
    throw error;
  }
  const logger = createLogger({ level: config.logLevel, format: config.logFormat });
  reportExportError = (message) => logger.warn({ tracesUrl: tracing ? redactUrl(tracing.url) : undefined }, `tracing: spans could not be exported: ${message}`);
  const relay = await buildRelay(config, logger, { tracing, loadRoutes: () => rereadRoutes(envFile, inherited) });
  if (tracing) logger.info({ tracesUrl: redactUrl(tracing.url) }, `tracing: spans go to ${redactUrl(tracing.url)} (OTLP/HTTP)`);
  const server = createRelayServer(relay.app, serverOptions(config.server)).listen(config.port, config.host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  const baseUrl = reachableBaseUrl(config.host, port);
  logger.info(
    {
      port,
      host: config.host,
      routes: relay.routes.names,
      downstream: redactUrl(relay.downstreamUrl),
      embeddedSimulator: Boolean(relay.simulator),
      store: config.store,
      limits: Object.fromEntries(config.routes.map((route) => [route.name, describeLimits(route)])),
      tryNext: nextSteps(baseUrl, config.routes, registeredRoutes(relay.app)),
    },
    `relay listening on ${baseUrl}`,
  );
  void warnUnreachableDownstreams(config.routes, logger);

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
  // A refused file is logged by the reload itself; the routes loaded before stay.
  process.on('SIGHUP', () => {
    relay.control.reload('SIGHUP').catch((error: unknown) => {
      if ((error as { code?: unknown }).code !== 'ROUTES_INVALID') logger.error({ err: error }, 'reload on SIGHUP failed');
    });
  });
}

/** A start-up probe waits at most this long for each downstream. */
const PROBE_TIMEOUT_MS = 1_500;

/**
 * One warn line per route whose downstream (or a fallback URL) does not take a
 * TCP connection at start: a wrong DOWNSTREAM_URL shows at once, not at the
 * first 502. Runs after listening, never delays start-up, and sends no request
 * (nothing reaches a breaker or a provider's counters). The embedded simulator
 * (no target) is in-process and not probed.
 */
async function warnUnreachableDownstreams(routes: Config['routes'], logger: Logger): Promise<void> {
  await Promise.all(
    routes.map(async (route) => {
      const urls = [...(route.target === undefined ? [] : [route.target]), ...route.fallbackUrls];
      const reasons = await Promise.all(urls.map((url) => probeTcp(url, PROBE_TIMEOUT_MS)));
      const unreachable = urls.flatMap((url, i) => (reasons[i] === null ? [] : [{ url: redactUrl(url), reason: reasons[i] }]));
      if (unreachable.length === 0) return;
      const list = unreachable.map(({ url, reason }) => `${url} (${reason})`).join(', ');
      logger.warn({ route: route.name, unreachable }, `route ${route.name}: downstream not answering at start: ${list}; its requests fail until it does`);
    }),
  ).catch((error: unknown) => logger.warn({ err: error }, 'start-up downstream probe failed'));
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

/**
 * The routes as POST /admin/reload and SIGHUP read them: ENV_FILE again (its
 * values replace the ones it set before; a variable the process was started
 * with still wins), then ROUTES_FILE. Throws ConfigError, like start-up.
 */
function rereadRoutes(envFile: string, inherited: ReadonlySet<string>): RouteSpec[] {
  if (existsSync(envFile)) {
    let variables: Record<string, string>;
    try {
      variables = parseEnv(readFileSync(envFile, 'utf8')) as Record<string, string>;
    } catch (error) {
      throw new ConfigError(`Invalid ENV_FILE=${JSON.stringify(envFile)}: ${(error as Error).message.split('\n')[0]}`);
    }
    for (const [name, value] of Object.entries(variables)) if (!inherited.has(name)) process.env[name] = value;
  }
  return loadConfig(process.env).routes;
}

main().catch((error: unknown) => {
  process.stderr.write(`resilient-relay: failed to start: ${(error as Error).message}\n`);
  process.exit(1);
});
