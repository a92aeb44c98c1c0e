import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../src/clock.js';
import { Fleet } from '../src/fleet/fleet.js';
import { FleetRateLimiter } from '../src/fleet/fleet-rate-limiter.js';
import { createLogger } from '../src/observability/logger.js';
import { deleteKeysWithPrefix, redisForTests, startRedisProxy, type RedisProxy } from './helpers/redis.js';
import { eventually } from './helpers/test-relay.js';

// Issue 14: after a loss of Redis the instances rejoin the fleet together, and the calls a local share
// promised are charged to the fleet's bucket. Real Redis behind TCP proxies (one per "network path").
const redisReady = await redisForTests();

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const logger = createLogger({ level: 'silent' });

async function proxy(): Promise<RedisProxy> {
  const p = await startRedisProxy();
  cleanups.push(() => p.close());
  return p;
}

function freshPrefix(): string {
  const prefix = `relay-test:fleet-rejoin:${randomUUID()}:`;
  cleanups.push(() => deleteKeysWithPrefix(prefix));
  return prefix;
}

async function fleetOn(url: string, prefix: string): Promise<Fleet> {
  const fleet = new Fleet({ url, prefix, logger });
  cleanups.push(() => fleet.close());
  await fleet.start();
  return fleet;
}

describe.skipIf(!redisReady)('rejoining the fleet after Redis was lost (issue 14)', () => {
  it(
    'instances that get Redis back at different times switch to the shared state at one moment, each on its share until then',
    async () => {
      const prefix = freshPrefix();
      const [early, late] = [await proxy(), await proxy()];
      const fleets = [await fleetOn(early.url, prefix), await fleetOn(early.url, prefix), await fleetOn(late.url, prefix)];
      await eventually(async () => fleets.every((f) => f.snapshot().instances === 3 && f.shared), 5_000, 20);
      const sharedAt: Array<number | null> = [null, null, null];
      fleets.forEach((fleet, i) => fleet.onModeChange((shared) => (sharedAt[i] = shared ? performance.now() : null)));

      await Promise.all([early.close(), late.close()]);
      await eventually(async () => fleets.every((f) => f.snapshot().redis === 'lost'), 3_000, 20);
      await early.reopen();
      // Two instances have Redis back; the third's path returns 700 ms later.
      await eventually(async () => fleets[0]!.snapshot().redis === 'ok' && fleets[1]!.snapshot().redis === 'ok', 3_000, 10);
      await new Promise((resolve) => setTimeout(resolve, 700));
      // Redis answers them, but they wait for the third: sharing the fleet's whole rate now would add it to the third's share.
      expect(fleets.map((f) => f.snapshot().mode)).toEqual(['local', 'local', 'local']);
      expect(fleets[0]!.snapshot().instances).toBe(3);
      await late.reopen();
      await eventually(async () => fleets.every((f) => f.shared), 3_000, 10);

      const times = sharedAt.map((t) => t!);
      expect(Math.max(...times) - Math.min(...times)).toBeLessThan(60);
    },
    30_000,
  );

  it(
    'the calls a local share promised ahead are charged to the fleet on rejoining: the first shared slot comes after them',
    async () => {
      const prefix = freshPrefix();
      const path = await proxy();
      const fleet = await fleetOn(path.url, prefix);
      const knobs = { mode: 'enforce' as const, canaryPercent: 0, ratePerSecond: 10, burst: 1, warmupMs: 0, warmupStartRatePerSecond: 10 };
      const limiter = new FleetRateLimiter({ clock: systemClock, fleet, knobs, key: `${prefix}rate:primary` });
      await path.close();
      await eventually(async () => !fleet.shared, 3_000, 20);

      // Alone on its share (1/1 of 10/s): 20 callers, the last promised ~1.9 s from now.
      const promisedAt: number[] = [];
      for (let i = 0; i < 20; i++) {
        const wait = limiter.reserve(5_000);
        expect(typeof wait).toBe('number');
        promisedAt.push(Date.now() + (wait as number));
      }
      await path.reopen();
      await eventually(async () => fleet.shared, 3_000, 10);
      const lastPromised = Math.max(...promisedAt);
      expect(lastPromised).toBeGreaterThan(Date.now() + 200);

      const wait = await limiter.reserve(5_000);
      expect(wait).not.toBeNull();
      // The fleet's next slot is due with the last promised call (charged in whole slots, so up to one
      // interval after it), not at once beside all of them (without the charge: ~1.5 s earlier).
      expect(Date.now() + wait!).toBeGreaterThanOrEqual(lastPromised - 10);
    },
    30_000,
  );
});
