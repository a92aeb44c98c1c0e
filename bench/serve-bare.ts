/**
 * The bare Express + undici passthrough in its own process.
 * Env: BENCH_DOWNSTREAM_URL, BENCH_CONNECTIONS. Prints `{"port":N}` when listening.
 */
import type { AddressInfo } from 'node:net';
import { createBarePassthrough } from './bare-passthrough.js';

const downstreamUrl = process.env.BENCH_DOWNSTREAM_URL;
const connections = Number(process.env.BENCH_CONNECTIONS ?? '64');
if (!downstreamUrl || !Number.isInteger(connections) || connections < 1) {
  process.stderr.write(`serve-bare: need BENCH_DOWNSTREAM_URL and an integer BENCH_CONNECTIONS >= 1, got ${JSON.stringify({ downstreamUrl, connections })}\n`);
  process.exit(1);
}

const bare = createBarePassthrough({ downstreamUrl, connections });
const server = bare.app.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});

const stop = () => {
  server.close();
  server.closeAllConnections();
  void bare.close().finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
