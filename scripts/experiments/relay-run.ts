import { performance } from 'node:perf_hooks';
import { startSimulator, type SimCounters, type SimProfile } from '../../src/sim/simulator.js';
import { runOpenLoop, type Shot } from './load.js';
import { startRelayChild, type MemorySample } from './relay-child.js';
import { seededRandom } from './seeded-random.js';

export interface RelayRunOptions {
  /** Relay variables for this variant (DOWNSTREAM_URL is set here). */
  env: Record<string, string>;
  sim: Partial<SimProfile>;
  ratePerS: number;
  count: number;
  clientTimeoutMs: number;
  connections: number;
  seed: number;
  /** A unique Idempotency-Key per request, so the relay may retry a POST after a timeout. */
  keyed?: boolean;
  /** Requests sent at 50 req/s before the measured load (JIT, sockets, SQLite pages), then the downstream's counters are reset. @default 0 */
  warmupCount?: number;
}

export interface RelayRun {
  shots: Shot[];
  elapsedMs: number;
  /** The relay's memory readings; `atMs` made relative to the load's start. */
  memory: MemorySample[];
  /** Memory before the first request. */
  idle: MemorySample | undefined;
  downstream: SimCounters;
  /** The downstream's in-flight count every 100 ms (x in seconds from the load's start). */
  downstreamInFlight: { x: number; y: number }[];
}

const SAMPLE_EVERY_MS = 100;

/**
 * One variant: a fresh seeded simulator in this process, a fresh relay in its
 * own process (so its memory and CPU are its own), open-loop load from here.
 */
export async function runThroughRelay(options: RelayRunOptions): Promise<RelayRun> {
  const sim = await startSimulator({ profile: options.sim, random: seededRandom(options.seed) });
  let relay: Awaited<ReturnType<typeof startRelayChild>> | undefined;
  let sampler: NodeJS.Timeout | undefined;
  try {
    relay = await startRelayChild({ DOWNSTREAM_URL: `${sim.url}/`, ...options.env }, options.seed);
    if (options.warmupCount) {
      const runId = `warmup-${process.pid}-${Date.now()}`;
      await runOpenLoop({
        url: `${relay.url}/relay`,
        ratePerS: 50,
        count: options.warmupCount,
        timeoutMs: options.clientTimeoutMs,
        connections: 32,
        ...(options.keyed ? { headers: (i: number) => ({ 'idempotency-key': `${runId}-${i}` }) } : {}),
      });
      sim.reset();
    }
    // Let a memory reading land before the load.
    await new Promise((resolve) => setTimeout(resolve, 150));
    const idle = relay.memory().at(-1);
    const startEpochMs = Date.now();
    const t0 = performance.now();
    const downstreamInFlight: { x: number; y: number }[] = [];
    sampler = setInterval(() => downstreamInFlight.push({ x: (performance.now() - t0) / 1000, y: sim.counters().inFlight }), SAMPLE_EVERY_MS);
    const runId = `${process.pid}-${Date.now()}`;
    const { shots, elapsedMs } = await runOpenLoop({
      url: `${relay.url}/relay`,
      ratePerS: options.ratePerS,
      count: options.count,
      timeoutMs: options.clientTimeoutMs,
      connections: options.connections,
      ...(options.keyed ? { headers: (i: number) => ({ 'idempotency-key': `exp-${runId}-${i}` }) } : {}),
    });
    clearInterval(sampler);
    const downstream = sim.counters();
    const memory = (await relay.stop()).filter((m) => m.atMs >= startEpochMs).map((m) => ({ ...m, atMs: m.atMs - startEpochMs }));
    return { shots, elapsedMs, memory, idle, downstream, downstreamInFlight };
  } finally {
    clearInterval(sampler);
    await relay?.stop();
    await sim.close();
  }
}
