import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/observability/logger.js';
import { createRelayServer } from '../../src/app.js';
import { buildRelay, type Relay } from '../../src/relay.js';
import { startSimulator, type SimProfile, type Simulator } from '../../src/sim/simulator.js';
import { releaseBurst, type BurstResult } from './burst.js';
import { startSampler } from './sampler.js';
import { countAnswers, type CounterSample } from './series.js';

export interface RunResult {
  burst: BurstResult;
  samples: CounterSample[];
  /** The downstream's final counters. */
  downstream: { received: number; answered: number; errors: number; byStatus: Record<string, number>; peakInFlight: number };
  /** GET /stats of the relay after the run (relay run only). */
  relayStats?: unknown;
  /** The relay's circuit breaker transitions, in ms since the release (relay run only). */
  breakerChanges?: BreakerChange[];
  /** The relay's AIMD limit changes, in ms since the release (relay run only). */
  aimdChanges?: AimdChange[];
}

export interface AimdChange {
  atMs: number;
  from: number;
  to: number;
  reason: string;
}

export interface BreakerChange {
  atMs: number;
  upstream: string;
  from: string;
  to: string;
  reason: string;
}

export interface RunOptions {
  profile: Partial<SimProfile>;
  requests: number;
  /** The whole run (burst and drain) is aborted past this. */
  timeoutMs: number;
  sampleEveryMs: number;
}

// The relay's default DOWNSTREAM_TIMEOUT_MS, so both clients give one attempt the same time;
// far above the slowest overloaded answer (latency x 11 plus jitter).
const ATTEMPT_TIMEOUT_MS = 5_000;
// Keeps sampling a little after the drain, so the chart shows the downstream going quiet.
const QUIET_TAIL_MS = 300;
// The default backlog (511) would drop SYNs of a 2,000-connection burst and add 1 s retransmits to the picture.
const LISTEN_BACKLOG = 4096;

function clientPool(origin: string, connections: number, attemptTimeoutMs: number): Pool {
  return new Pool(origin, { connections, pipelining: 1, headersTimeout: attemptTimeoutMs, bodyTimeout: attemptTimeoutMs });
}

function readCounters(sim: Simulator): Omit<CounterSample, 'atMs'> {
  const c = sim.counters();
  return { received: c.received, ...countAnswers(c.answered), inFlight: c.inFlight };
}

function finalCounters(sim: Simulator): RunResult['downstream'] {
  const c = sim.counters();
  return { received: c.received, ...countAnswers(c.answered), byStatus: c.answered, peakInFlight: c.peakInFlight };
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/** The post-mortem's client: every pending request at once, straight at the downstream, retrying the moment it fails. */
export async function runNaive(options: RunOptions & { maxAttempts: number }): Promise<RunResult> {
  const sim = await startSimulator({ port: 0, profile: options.profile });
  const pool = clientPool(sim.url, options.requests, ATTEMPT_TIMEOUT_MS);
  const limit = AbortSignal.timeout(options.timeoutMs);
  try {
    const sampler = startSampler(() => readCounters(sim), { everyMs: options.sampleEveryMs });
    const burst = await releaseBurst({ dispatcher: pool, path: '/', requests: options.requests, maxAttempts: options.maxAttempts, signal: limit });
    await sleep(QUIET_TAIL_MS);
    const samples = sampler.stop();
    return { burst, samples, downstream: finalCounters(sim) };
  } finally {
    await pool.destroy();
    await sim.close();
  }
}

/** The same burst sent once each to the relay, which queues, paces and retries in front of a fresh downstream. */
export async function runRelay(options: RunOptions & { relayEnv: (downstreamUrl: string) => Record<string, string> }): Promise<RunResult> {
  const sim = await startSimulator({ port: 0, profile: options.profile });
  let relay: Relay | undefined;
  let server: Server | undefined;
  let pool: Pool | undefined;
  try {
    const config = loadConfig(options.relayEnv(`${sim.url}/`));
    // stderr, so a warning the relay logs cannot break the table on stdout.
    const logger = createLogger({ level: config.logLevel, destination: process.stderr });
    relay = await buildRelay(config, logger, {});
    const { events } = relay;
    const { aimd } = relay.main;
    server = createRelayServer(relay.app);
    await new Promise<void>((resolve, reject) => {
      server!.once('error', reject);
      server!.listen({ port: 0, host: '127.0.0.1', backlog: LISTEN_BACKLOG }, () => resolve());
    });
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // The relay answers within REQUEST_DEADLINE_MS (queue wait included): the client waits for that answer.
    pool = clientPool(origin, options.requests, config.requestDeadlineMs + ATTEMPT_TIMEOUT_MS);
    const limit = AbortSignal.timeout(options.timeoutMs);
    const breakerChanges: BreakerChange[] = [];
    const releasedAt = performance.now();
    const aimdChanges: AimdChange[] = [];
    const sinceRelease = () => Math.round(performance.now() - releasedAt);
    events.on('breaker', (change) => breakerChanges.push({ atMs: sinceRelease(), ...change }));
    events.on('aimd', (change) => aimdChanges.push({ atMs: sinceRelease(), ...change }));
    const sampler = startSampler(() => ({ ...readCounters(sim), relayLimit: aimd.limit }), { everyMs: options.sampleEveryMs });
    const burst = await releaseBurst({ dispatcher: pool, path: '/relay', requests: options.requests, maxAttempts: 1, signal: limit });
    await sleep(QUIET_TAIL_MS);
    const samples = sampler.stop();
    const relayStats = await readStats(pool);
    return { burst, samples, downstream: finalCounters(sim), relayStats, breakerChanges, aimdChanges };
  } finally {
    await pool?.destroy();
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server!.close(() => resolve()));
    }
    await relay?.close();
    await sim.close();
  }
}

async function readStats(pool: Pool): Promise<unknown> {
  try {
    const res = await pool.request({ method: 'GET', path: '/stats', signal: AbortSignal.timeout(3_000) });
    return await res.body.json();
  } catch (error) {
    return { error: (error as { code?: string }).code ?? String(error) };
  }
}
