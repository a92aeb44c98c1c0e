/**
 * The `tracing` part (issue 12): what tracing costs the relay, as CPU time per
 * request and throughput, with S1's plumbing (defaults-bench.ts): the relay at
 * its defaults with tracing off, and with OTEL_EXPORTER_OTLP_ENDPOINT set to a
 * collector on loopback that takes every batch and keeps nothing, interleaved
 * (ABABAB), a fresh process per block. Off against a relay built without
 * tracing cannot be run from one tree; LEARNINGS.md gives that measurement.
 * Printed only.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PASS_BLOCK_S, PASS_BLOCKS, PASS_CONNECTIONS, PASS_WARMUP_S, defaultRelayEnv, runInterleaved, spread, type DefaultsPartDeps, type PassBlock } from './defaults-bench.js';

type Side = 'off' | 'on';

export interface TracingOutcome {
  blocks: Array<PassBlock<Side>>;
  /** on / off, per round: drift between rounds cancels out. */
  cpuOnOverOff: { median: number; min: number; max: number };
  throughputOnOverOff: { median: number; min: number; max: number };
  addedP50Ms: { median: number; min: number; max: number };
  collector: { batches: number; spans: number; bytes: number };
  failed: string[];
}

/** Worst case: every block's run, warm-up and process start-ups. */
export const tracingPartMaxS = () => PASS_BLOCKS * 2 * (PASS_BLOCK_S + PASS_WARMUP_S + 20);

/** An OTLP/HTTP endpoint that counts what it is sent and answers as a collector does (200, an empty JSON object). */
async function startNullCollector(): Promise<{ url: string; counts: TracingOutcome['collector']; close(): Promise<void> }> {
  const counts = { batches: 0, spans: 0, bytes: 0 };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      counts.batches++;
      counts.bytes += body.length;
      // OTLP JSON names each span's id "spanId" (a parent's is "parentSpanId", which this does not match).
      counts.spans += body.toString('utf8').split('"spanId"').length - 1;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    counts,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export async function runTracingPart(deps: DefaultsPartDeps): Promise<TracingOutcome> {
  const collector = await startNullCollector();
  try {
    const blocks = await runInterleaved(deps, 'tracing', ['off', 'on'] as const, (side, downstreamUrl) => {
      const env = defaultRelayEnv(deps.workDir, downstreamUrl);
      return deps.start('bench/serve-relay.ts', { BENCH_RELAY_ENV: JSON.stringify(side === 'on' ? { ...env, OTEL_EXPORTER_OTLP_ENDPOINT: collector.url } : env) });
    });
    const cpu: number[] = [];
    const throughput: number[] = [];
    const added: number[] = [];
    for (let i = 0; i + 1 < blocks.length; i += 2) {
      const off = blocks[i]!;
      const on = blocks[i + 1]!;
      cpu.push(on.cpuUsPerRequest / off.cpuUsPerRequest);
      throughput.push(on.numbers.rps / off.numbers.rps);
      added.push(on.numbers.p50Ms - off.numbers.p50Ms);
    }
    const failed = blocks.filter((b) => b.numbers.non2xx > 0 || b.numbers.errors > 0).map((b) => `${b.side}: ${b.numbers.non2xx} non-2xx, ${b.numbers.errors} errors`);
    if (collector.counts.spans === 0) failed.push('tracing on, but the collector received no span');
    return { blocks, cpuOnOverOff: spread(cpu), throughputOnOverOff: spread(throughput), addedP50Ms: spread(added), collector: { ...collector.counts }, failed };
  } finally {
    await collector.close();
  }
}

export function tracingReport(outcome: TracingOutcome): string {
  const lines = [
    `Tracing off vs on (OTLP/HTTP to a loopback collector that keeps nothing), the relay at its defaults otherwise: S1, closed loop, ${PASS_CONNECTIONS} connections, ${PASS_BLOCK_S} s per block after ${PASS_WARMUP_S} s, ABABAB, each a fresh process`,
    'block  side    req/s     p50 ms   p99 ms  non-2xx  cpu us/req',
  ];
  outcome.blocks.forEach((b, i) => {
    lines.push(`${String(Math.floor(i / 2) + 1).padStart(5)}  ${b.side.padEnd(6)} ${b.numbers.rps.toFixed(0).padStart(6)}   ${b.numbers.p50Ms.toFixed(2).padStart(6)}   ${b.numbers.p99Ms.toFixed(2).padStart(6)}  ${String(b.numbers.non2xx).padStart(7)}  ${b.cpuUsPerRequest.toFixed(0).padStart(10)}`);
  });
  const f = (s: { median: number; min: number; max: number }, digits: number) => `median ${s.median.toFixed(digits)} (spread ${s.min.toFixed(digits)}-${s.max.toFixed(digits)})`;
  const c = outcome.collector;
  lines.push(
    `on / off CPU per request: ${f(outcome.cpuOnOverOff, 3)}`,
    `on / off throughput: ${f(outcome.throughputOnOverOff, 3)}`,
    `p50 added by tracing on: ${f(outcome.addedP50Ms, 2)} ms`,
    `collector: ${c.batches} batches, ${c.spans} spans, ${(c.bytes / 1e6).toFixed(1)} MB (the batch processor drops spans beyond its queue of 2048 under this load)`,
    ...(outcome.failed.length > 0 ? [`FAILED: ${outcome.failed.join('; ')}`] : []),
  );
  return lines.join('\n');
}
