/**
 * The relay in its own process for an experiment: configured from
 * EXPERIMENT_RELAY_ENV (a JSON object of relay variables, never the inherited
 * environment), its random source seeded from EXPERIMENT_SEED, and its memory
 * (RSS, V8 heap used) sampled every 100 ms into EXPERIMENT_MEM_FILE, so the
 * runner can read the relay's own footprint. Prints `{"port":N}` when listening.
 */
import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/observability/logger.js';
import { createRelayServer } from '../../src/app.js';
import { buildRelay } from '../../src/relay.js';
import { seededRandom } from './seeded-random.js';

const SAMPLE_EVERY_MS = 100;
const WRITE_EVERY_SAMPLES = 3;
// A 2-minute run at 10 samples a second; past it the oldest are dropped.
const MAX_SAMPLES = 1_200;

const config = loadConfig(JSON.parse(process.env.EXPERIMENT_RELAY_ENV ?? '{}') as Record<string, string>);
const logger = createLogger({ level: config.logLevel });
const relay = await buildRelay(config, logger, { random: seededRandom(Number(process.env.EXPERIMENT_SEED ?? '1')) });

const memFile = process.env.EXPERIMENT_MEM_FILE;
const samples: { atMs: number; rssBytes: number; heapUsedBytes: number }[] = [];
const writeSamples = (): void => {
  if (memFile) writeFileSync(memFile, JSON.stringify(samples));
};
const sample = (): void => {
  const { rss, heapUsed } = process.memoryUsage();
  samples.push({ atMs: Date.now(), rssBytes: rss, heapUsedBytes: heapUsed });
  if (samples.length > MAX_SAMPLES) samples.shift();
  if (samples.length % WRITE_EVERY_SAMPLES === 1) writeSamples();
};
sample();
const sampler = setInterval(sample, SAMPLE_EVERY_MS);

const server = createRelayServer(relay.app).listen(config.port, config.host, () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  clearInterval(sampler);
  sample();
  writeSamples();
  relay.beginShutdown();
  server.close();
  server.closeIdleConnections();
  void relay.close().finally(() => {
    server.closeAllConnections();
    logger.flush();
    process.exit(0);
  });
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
