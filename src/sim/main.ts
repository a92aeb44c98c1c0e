/**
 * Standalone flaky downstream (`npm run downstream`). With `providers-main.ts`,
 * the only simulator files that read the environment, listen for good and
 * handle signals.
 */
import { z } from 'zod';
import { envPort, fail, fromEnv, parseEnv } from './env.js';
import { simProfileSchema } from './profile.js';
import type { SimProfile } from './profile.js';
import { startSimulator } from './simulator.js';

const fields = simProfileSchema.shape;
// The profile's own wording offers `null`, which an env variable cannot spell.
const capacityExpected = 'expected a positive integer (leave unset for unlimited)';
const retryAfterExpected = 'expected whole seconds from 0 to 86400 (leave unset for no Retry-After)';

const envSchema = z.object({
  SIM_PORT: envPort.default(4000),
  SIM_HOST: z.string().default('127.0.0.1'),
  SIM_FAIL_RATE: fromEnv(fields.failRate).optional(),
  SIM_LATENCY_MS: fromEnv(fields.latencyMs).optional(),
  SIM_HANG_RATE: fromEnv(fields.hangRate).optional(),
  SIM_CAPACITY: fromEnv(z.int({ error: capacityExpected }).min(1, { error: capacityExpected })).optional(),
  SIM_RETRY_AFTER_S: fromEnv(
    z.int({ error: retryAfterExpected }).min(0, { error: retryAfterExpected }).max(86_400, { error: retryAfterExpected }),
  ).optional(),
  ADMIN_TOKEN: z.string().optional(),
});

async function main(): Promise<void> {
  const env = parseEnv(envSchema, process.env);

  const profile: Partial<SimProfile> = {};
  if (env.SIM_FAIL_RATE !== undefined) profile.failRate = env.SIM_FAIL_RATE;
  if (env.SIM_LATENCY_MS !== undefined) profile.latencyMs = env.SIM_LATENCY_MS;
  if (env.SIM_HANG_RATE !== undefined) profile.hangRate = env.SIM_HANG_RATE;
  if (env.SIM_CAPACITY !== undefined) profile.capacity = env.SIM_CAPACITY;
  if (env.SIM_RETRY_AFTER_S !== undefined) profile.retryAfterS = env.SIM_RETRY_AFTER_S;

  const simulator = await startSimulator({
    port: env.SIM_PORT,
    host: env.SIM_HOST,
    profile,
    ...(env.ADMIN_TOKEN === undefined ? {} : { adminToken: env.ADMIN_TOKEN }),
  }).catch((error: unknown) => {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    fail(`Simulator could not listen on ${env.SIM_HOST}:${env.SIM_PORT}: ${code || String(error)}`);
  });
  process.stdout.write(`Flaky downstream simulator listening on ${simulator.url}\n`);

  const stop = (): void => {
    void simulator.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

void main();
