import { afterEach } from 'vitest';
import { startSimulator, type SimProfile, type Simulator } from '../../src/sim/simulator.js';
import { killStartedRelayProcesses } from './relay-process.js';
import { removeDb, tempDbPath } from './temp-db.js';
import { healthySim } from './test-relay.js';

export interface ProcessTestScope {
  /** Runs `cleanup` after the current test, after every other cleanup registered later. */
  defer(cleanup: () => Promise<unknown> | void): void;
  /** A fresh SQLite path, removed (with its WAL files) after the test. */
  tempDb(): string;
  /**
   * A simulator in the test process (so it outlives every relay the test kills),
   * healthy unless `profile` says otherwise; closed after the test.
   */
  simulator(profile?: Partial<SimProfile>): Promise<Simulator>;
}

/**
 * Per-test resources for test files that spawn relay processes. Call once at the
 * top level of the file: it registers the `afterEach` that releases them.
 *
 * @param dbLabel prefix of the temp database file names, so a leftover file names its test file.
 */
export function useProcessTestScope(dbLabel: string): ProcessTestScope {
  const cleanups: Array<() => Promise<unknown> | void> = [];
  afterEach(async () => {
    // Children first: a live relay would keep writing to the file being removed.
    await killStartedRelayProcesses();
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  const defer: ProcessTestScope['defer'] = (cleanup) => {
    cleanups.push(cleanup);
  };
  return {
    defer,
    tempDb() {
      const path = tempDbPath(dbLabel);
      defer(() => removeDb(path));
      return path;
    },
    async simulator(profile = {}) {
      const sim = await startSimulator({ profile: { ...healthySim, ...profile } });
      defer(() => sim.close());
      return sim;
    },
  };
}
