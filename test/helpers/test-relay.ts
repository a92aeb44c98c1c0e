import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Server } from 'node:http';
import { Writable } from 'node:stream';
import supertest from 'supertest';
import { loadConfig, type Config } from '../../src/config.js';
import { createLogger } from '../../src/observability/logger.js';
import { createRelayServer } from '../../src/app.js';
import { buildRelay, type Relay, type RelayOverrides } from '../../src/relay.js';
import { startSimulator, type SimProfile, type Simulator } from '../../src/sim/simulator.js';

export interface TestRelay {
  relay: Relay;
  sim: Simulator;
  /** supertest bound to the relay app. */
  http: ReturnType<typeof supertest>;
  /** The relay listening on a real port (for tests that need a socket: disconnects, raw clients). */
  url: string;
  server: Server;
  /** Every log line the relay wrote, parsed. */
  logs: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

/** A quiet, deterministic simulator profile: answers 200 at once unless a test says otherwise. */
export const healthySim: Partial<SimProfile> = { failRate: 0, latencyMs: 0, jitterMs: 0, tailRate: 0, hangRate: 0 };

/**
 * Builds a relay (fresh app, fresh registry, in-memory SQLite unless told
 * otherwise) in front of a real simulator on port 0, and listens on port 0.
 */
export async function startTestRelay(
  options: {
    env?: Record<string, string>;
    sim?: Partial<SimProfile>;
    overrides?: RelayOverrides;
    simulator?: Simulator;
    /** A routes file's content (`{ routes: [...] }`): written to a temporary file and used as ROUTES_FILE. */
    routes?: { routes: unknown[] };
  } = {},
): Promise<TestRelay> {
  const sim = options.simulator ?? (await startSimulator({ profile: { ...healthySim, ...options.sim } }));
  const routesFile = options.routes ? writeRoutesFile(options.routes) : undefined;
  const config: Config = loadConfig({
    SQLITE_PATH: ':memory:',
    LOG_LEVEL: 'info',
    RETRY_BASE_DELAY_MS: '10',
    RETRY_MAX_DELAY_MS: '50',
    ...(routesFile ? { ROUTES_FILE: routesFile } : { DOWNSTREAM_URL: `${sim.url}/` }),
    ...options.env,
  });
  const logs: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  const logger = createLogger({ level: config.logLevel, destination });
  const relay = await buildRelay(config, logger, options.overrides);
  const server = createRelayServer(relay.app).listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  let closed = false;
  return {
    relay,
    sim,
    http: supertest(relay.app),
    url: `http://127.0.0.1:${port}`,
    server,
    logs,
    async close() {
      if (closed) return;
      closed = true;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await relay.close();
      if (!options.simulator) await sim.close();
      if (routesFile) rmSync(dirname(routesFile), { recursive: true, force: true });
    },
  };
}

function writeRoutesFile(routes: { routes: unknown[] }): string {
  const dir = mkdtempSync(join(tmpdir(), 'relay-routes-'));
  const file = join(dir, 'routes.json');
  writeFileSync(file, JSON.stringify(routes));
  return file;
}

/** Polls `check` until it returns true or `timeoutMs` passes (bounded; for counters updated asynchronously). */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 3000, stepMs = 20): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
}

let keySeq = 0;
/** A key no other test uses. */
export function uniqueKey(label = 'k'): string {
  return `${label}-${process.pid}-${Date.now()}-${++keySeq}`;
}
