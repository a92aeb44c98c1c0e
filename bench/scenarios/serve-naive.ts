/**
 * The naive retrying passthrough in its own process, for the storm scenarios.
 * Env: BENCH_DOWNSTREAM_URL, BENCH_ATTEMPT_TIMEOUT_MS, BENCH_MAX_ATTEMPTS (4),
 * BENCH_CONNECTIONS (1024). Prints `{"port":N}` when listening.
 */
import type { AddressInfo } from 'node:net';
import { createNaiveBaseline } from './naive-baseline.js';

const downstreamUrl = process.env.BENCH_DOWNSTREAM_URL;
const attemptTimeoutMs = Number(process.env.BENCH_ATTEMPT_TIMEOUT_MS);
const maxAttempts = Number(process.env.BENCH_MAX_ATTEMPTS ?? '4');
const connections = Number(process.env.BENCH_CONNECTIONS ?? '1024');
const positive = (n: number) => Number.isInteger(n) && n >= 1;
if (!downstreamUrl || !positive(attemptTimeoutMs) || !positive(maxAttempts) || !positive(connections)) {
  process.stderr.write(
    `serve-naive: need BENCH_DOWNSTREAM_URL and whole numbers >= 1 for BENCH_ATTEMPT_TIMEOUT_MS, BENCH_MAX_ATTEMPTS, BENCH_CONNECTIONS, got ${JSON.stringify({ downstreamUrl, attemptTimeoutMs, maxAttempts, connections })}\n`,
  );
  process.exit(1);
}

const naive = createNaiveBaseline({ downstreamUrl, attemptTimeoutMs, maxAttempts, connections });
const server = naive.app.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});

const stop = () => {
  server.close();
  server.closeAllConnections();
  void naive.close().finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
