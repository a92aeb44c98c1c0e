/**
 * The bench's downstream, the simulator in its own process. Its profile comes
 * from BENCH_SIM_PROFILE (a JSON partial profile, validated by the simulator);
 * unset, every failure mode is off and there is no added latency (the
 * throughput phases). Prints `{"port":N}` when listening.
 */
import { startSimulator, type SimProfile } from '../src/sim/simulator.js';

const passthroughProfile: Partial<SimProfile> = { failRate: 0, latencyMs: 0, jitterMs: 0, tailRate: 0, hangRate: 0, capacity: null };
const raw = process.env.BENCH_SIM_PROFILE;
const profile = raw ? (JSON.parse(raw) as Partial<SimProfile>) : passthroughProfile;

const simulator = await startSimulator({ profile });
process.stdout.write(`${JSON.stringify({ port: Number(new URL(simulator.url).port) })}\n`);

const stop = () => void simulator.close().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
