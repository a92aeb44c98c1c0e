/**
 * The bench's downstream: the simulator with every failure mode off and no added
 * latency, in its own process. Prints `{"port":N}` when listening.
 */
import { startSimulator } from '../src/sim/simulator.js';

const simulator = await startSimulator({
  profile: { failRate: 0, latencyMs: 0, jitterMs: 0, tailRate: 0, hangRate: 0, capacity: null },
});
process.stdout.write(`${JSON.stringify({ port: Number(new URL(simulator.url).port) })}\n`);

const stop = () => void simulator.close().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
