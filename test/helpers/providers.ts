import { afterEach } from 'vitest';
import { startProviderSimulator } from '../../src/sim/providers.js';
import type { ProviderSimulator, ProviderSimulatorOptions } from '../../src/sim/providers.js';

/**
 * Returns a starter of provider simulators that are all closed after each
 * test of the calling file or `describe`. Call it at describe level.
 */
export function useProviderSimulators(): (options: ProviderSimulatorOptions) => Promise<ProviderSimulator> {
  const started: ProviderSimulator[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((sim) => sim.close()));
  });
  return async (options) => {
    const sim = await startProviderSimulator(options);
    started.push(sim);
    return sim;
  };
}

/** `Authorization: Basic ...` for the sms simulator. */
export function basicAuth(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}
