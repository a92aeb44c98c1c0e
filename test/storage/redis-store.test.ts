import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { SCRIPT_NAMES, defineScripts, loadScript } from '../../src/storage/redis/scripts.js';
import { JOB_GROUP, PRIORITIES, redisKeys } from '../../src/storage/redis/keys.js';
import { openRedisStore, type RedisStoreOptions } from '../../src/storage/redis/redis-store.js';
import { LEGACY_TARGET } from '../../src/domain.js';
import { InvalidCursorError, type RelayStore } from '../../src/storage/types.js';
import { buryEntry, newDlqEntry, newJob, sampleResponse, sleep } from '../contract/contract-helpers.js';
import { storeContractTests } from '../contract/store-contract.js';
import { deleteKeysWithPrefix, probeClient, redisForTests, redisUrl, startRedisProxy, unusedPort } from '../helpers/redis.js';

const available = await redisForTests();

// Every store in this file lives under this run's prefix, each under its own below it.
const runPrefix = `relay-test:${randomUUID()}:`;
const freshPrefix = (): string => `${runPrefix}${randomUUID()}:`;
afterAll(async () => {
  if (available) await deleteKeysWithPrefix(runPrefix);
});

/** How soon a call must fail against a Redis that is gone or silent: far below the test timeout, so a hang shows as such. */
const FAST_FAILURE_MS = 2_000;

describe.skipIf(!available)('RedisStore', () => {
  let lastPrefix = '';
  storeContractTests(
    'RedisStore',
    () => {
      lastPrefix = freshPrefix();
      return openRedisStore({ url: redisUrl, prefix: lastPrefix });
    },
    { reopen: () => openRedisStore({ url: redisUrl, prefix: lastPrefix }) },
  );

  describe('RedisStore specifics', () => {
    /** Opens a store (under a fresh prefix unless given one) and closes it after `body`, whatever happens. */
    async function withStore<T>(body: (store: RelayStore, prefix: string) => Promise<T>, prefix = freshPrefix()): Promise<T> {
      const store = await openRedisStore({ url: redisUrl, prefix });
      try {
        return await body(store, prefix);
      } finally {
        await store.close();
      }
    }

    async function withProbe<T>(body: (probe: ReturnType<typeof probeClient>) => Promise<T>): Promise<T> {
      const probe = probeClient();
      try {
        await probe.connect();
        return await body(probe);
      } finally {
        probe.disconnect();
      }
    }

    it('an idempotency record expires in Redis itself: ttl from the reservation, then from the completion', async () => {
      await withStore(async (store, prefix) => {
        const keys = redisKeys(prefix);
        const now = Date.now();
        const reserved = await store.idempotency.reserve('k', 'fp', { now, leaseMs: 1_000, ttlMs: 60_000 });
        if (reserved.kind !== 'reserved') throw new Error('expected a reservation');
        await withProbe(async (probe) => {
          const reservedTtl = await probe.pttl(keys.idempotency('k'));
          expect(reservedTtl).toBeGreaterThan(55_000);
          expect(reservedTtl).toBeLessThanOrEqual(60_000);

          await store.idempotency.complete('k', reserved.token, sampleResponse(), { now, ttlMs: 5_000 });
          const completedTtl = await probe.pttl(keys.idempotency('k'));
          expect(completedTtl).toBeGreaterThan(0);
          expect(completedTtl).toBeLessThanOrEqual(5_000);

          await store.idempotency.reserve('short', 'fp', { now: Date.now(), leaseMs: 10, ttlMs: 50 });
          await sleep(120);
          expect(await probe.exists(keys.idempotency('short'))).toBe(0);
        });
        // Nothing left to purge by hand.
        expect(await store.idempotency.purgeExpired(Date.now() + 3_600_000)).toBe(0);
      });
    });

    it('stores under different prefixes do not see each other’s keys, entries or jobs', async () => {
      await withStore(async (a) => {
        await withStore(async (b) => {
          const now = Date.now();
          await a.idempotency.reserve('shared-key', 'fp-a', { now, leaseMs: 60_000, ttlMs: 60_000 });
          await a.dlq.add(newDlqEntry(now));
          await a.jobs.enqueue(newJob(now));

          const lease = { now, leaseMs: 60_000, ttlMs: 60_000 };
          expect((await b.idempotency.reserve('shared-key', 'fp-b', lease)).kind).toBe('reserved');
          expect(await b.dlq.size()).toBe(0);
          expect(await b.jobs.lease({ now, leaseMs: 60_000, limit: 10 })).toEqual([]);
          expect(await b.jobs.counts()).toEqual({ queued: 0, in_flight: 0, delivered: 0, dead: 0 });
        });
      });
    });

    it('another relay instance takes over the job of one that died, once the lease has run out', async () => {
      const prefix = freshPrefix();
      const dying = await openRedisStore({ url: redisUrl, prefix });
      await withStore(async (survivor) => {
        const job = newJob(Date.now());
        await dying.jobs.enqueue(job);
        const [stale] = await dying.jobs.lease({ now: Date.now(), leaseMs: 100, limit: 1 });
        if (stale === undefined) throw new Error('expected the dying instance to lease the job');
        await dying.close();

        // Its lease still runs: the job is not handed out twice.
        expect(await survivor.jobs.lease({ now: Date.now(), leaseMs: 60_000, limit: 10 })).toEqual([]);
        await sleep(200);
        const [taken] = await survivor.jobs.lease({ now: Date.now(), leaseMs: 60_000, limit: 10 });
        if (taken === undefined) throw new Error('expected the survivor to take the job over');
        expect(taken.job.id).toBe(job.id);
        expect(taken.token).not.toBe(stale.token);

        const update = { attempts: [], response: sampleResponse(), now: Date.now() };
        expect(await survivor.jobs.complete(job.id, stale.token, update)).toBe(false);
        expect(await survivor.jobs.complete(job.id, taken.token, update)).toBe(true);
      }, prefix);
    });

    it("a dead worker's job whose stream entry is gone is queued afresh with its interrupted attempt, recorded once", async () => {
      await withStore(async (store, prefix) => {
        const job = newJob(Date.now());
        await store.jobs.enqueue(job);
        await store.jobs.lease({ now: Date.now(), leaseMs: 40, limit: 1 });
        const keys = redisKeys(prefix);
        await withProbe(async (probe) => {
          // A trimmed stream: the entry goes, its group and pending entry stay.
          const entryId = await probe.hget(keys.job(job.id), 'stream');
          await probe.xdel(keys.jobStream(job.priority), entryId ?? '');
        });
        await sleep(80);

        expect(await store.jobs.lease({ now: Date.now(), leaseMs: 60_000, limit: 1 })).toEqual([]);
        const requeued = await store.jobs.get(job.id);
        expect(requeued?.state).toBe('queued');
        const [taken] = await store.jobs.lease({ now: Date.now(), leaseMs: 60_000, limit: 1 });
        expect(taken?.job.attempts.map((a) => [a.outcome, a.sent])).toEqual([['interrupted', 'unknown']]);
      });
    });

    it('two instances leasing at once never get the same job', async () => {
      await withStore((a, prefix) => withStore(async (b) => {
        const now = Date.now();
        const ids = new Set<string>();
        for (let i = 0; i < 10; i++) {
          const job = newJob(now + i, { priority: PRIORITIES[i % 3] });
          await a.jobs.enqueue(job);
          ids.add(job.id);
        }
        const batches = await Promise.all(
          [a, b, a, b, a, b].map((s) => s.jobs.lease({ now: now + 100, leaseMs: 60_000, limit: 2 })),
        );
        const leased = batches.flat().map((l) => l.job.id);
        expect(leased).toHaveLength(10);
        expect(new Set(leased)).toEqual(ids);
      }, prefix));
    });

    it('finished, rescheduled and buried jobs leave no stream entries or pending entries behind', async () => {
      await withStore(async (store, prefix) => {
        const keys = redisKeys(prefix);
        const now = Date.now();
        const jobs = [newJob(now), newJob(now), newJob(now)];
        for (const job of jobs) await store.jobs.enqueue(job);
        const leases = await store.jobs.lease({ now, leaseMs: 60_000, limit: 3 });
        const stream = keys.jobStream('normal');
        await withProbe(async (probe) => {
          expect(await probe.xlen(stream)).toBe(3);
          expect((await probe.xpending(stream, JOB_GROUP))[0]).toBe(3);

          const [delivered, rescheduled, buried] = leases;
          if (delivered === undefined || rescheduled === undefined || buried === undefined) throw new Error('expected 3 leases');
          await store.jobs.complete(delivered.job.id, delivered.token, { attempts: [], response: sampleResponse(), now });
          await store.jobs.reschedule(rescheduled.job.id, rescheduled.token, {
            attempts: [],
            lastError: '503',
            availableAt: now + 60_000,
            now,
          });
          const dlq = buryEntry(buried.job, now);
          await store.jobs.bury(buried.job.id, buried.token, { attempts: [], response: null, dlq });

          expect(await probe.xlen(stream)).toBe(0);
          expect((await probe.xpending(stream, JOB_GROUP))[0]).toBe(0);
          // The rescheduled job waits in the sorted set until it is due.
          expect(await probe.zscore(keys.jobsWaiting, rescheduled.job.id)).toBe(String(now + 60_000));
        });
      });
    });

    it('a job and a DLQ entry stored before routes existed read as the legacy target, and bury and redrive carry it', async () => {
      await withStore(async (store, prefix) => {
        const keys = redisKeys(prefix);
        const now = Date.now();
        const job = newJob(now);
        await store.jobs.enqueue(job);
        const entry = await store.dlq.add(newDlqEntry(now));
        await withProbe(async (probe) => {
          await probe.hdel(keys.job(job.id), 'request');
          await probe.hdel(keys.dlqEntry(entry.id), 'request');
        });
        expect((await store.jobs.get(job.id))?.request).toEqual(LEGACY_TARGET);
        expect((await store.dlq.get(entry.id))?.request).toEqual(LEGACY_TARGET);

        const [lease] = await store.jobs.lease({ now, leaseMs: 60_000, limit: 1 });
        if (lease === undefined) throw new Error('expected a lease');
        const dlq = buryEntry(lease.job, now + 1);
        const buried = await store.jobs.bury(job.id, lease.token, { attempts: [], response: null, dlq });
        expect(buried?.request).toEqual(LEGACY_TARGET);
        const redriven = await store.dlq.redrive(entry.id, { now: now + 2, newJobId: randomUUID(), newJobKey: randomUUID() });
        expect(redriven?.request).toEqual(LEGACY_TARGET);
      });
    });

    it('a job and a DLQ entry stored before key scopes are scoped by their key', async () => {
      await withStore(async (store, prefix) => {
        const keys = redisKeys(prefix);
        const now = Date.now();
        // Before scopes a job was mapped by its idempotency key, which is what its scope reads as.
        const job = newJob(now, { keyScope: 'old-key', idempotencyKey: 'old-key' });
        await store.jobs.enqueue(job);
        const entry = await store.dlq.add(newDlqEntry(now, { keyScope: 'ignored', idempotencyKey: 'old-key' }));
        await withProbe(async (probe) => {
          await probe.hdel(keys.job(job.id), 'scope');
          await probe.hdel(keys.dlqEntry(entry.id), 'scope');
        });
        expect((await store.jobs.get(job.id))?.keyScope).toBe('old-key');
        expect((await store.dlq.get(entry.id))?.keyScope).toBe('old-key');
        expect((await store.dlq.list({ limit: 1 })).items[0]?.keyScope).toBe('old-key');
        const lease = { now, leaseMs: 1_000, ttlMs: 60_000 };
        expect(await store.idempotency.reserve('old-key', job.fingerprint, lease)).toMatchObject({ kind: 'job', jobId: job.id });
        expect(await store.dlq.redrive(entry.id, { now, newJobId: 'unused', newJobKey: 'unused' })).toMatchObject({ id: job.id });
      });
    });

    it('purging a job frees its key scope', async () => {
      await withStore(async (store, prefix) => {
        const now = Date.now();
        const job = newJob(now);
        await store.jobs.enqueue(job);
        const [lease] = await store.jobs.lease({ now, leaseMs: 60_000, limit: 1 });
        await store.jobs.complete(job.id, lease?.token ?? '', { attempts: [], response: sampleResponse(), now });
        expect(await store.jobs.purgeFinishedBefore(now + 1)).toBe(1);
        await withProbe(async (probe) => expect(await probe.exists(redisKeys(prefix).jobByKey(job.keyScope))).toBe(0));
      });
    });

    it('ping writes a short-lived probe key', async () => {
      await withStore(async (store, prefix) => {
        await store.ping();
        await withProbe(async (probe) => {
          const ttl = await probe.pttl(redisKeys(prefix).probe);
          expect(ttl).toBeGreaterThan(0);
          expect(ttl).toBeLessThanOrEqual(10_000);
        });
      });
    });

    it('ping fails on a Redis that answers but refuses writes (a read-only ACL user)', async () => {
      const user = `relay-test-ro-${randomUUID()}`;
      const password = randomUUID();
      await withProbe((probe) => probe.call('ACL', 'SETUSER', user, 'on', `>${password}`, '~*', '+@read', '+@connection', '+@scripting'));
      try {
        const url = new URL(redisUrl);
        url.username = user;
        url.password = password;
        const store = await openRedisStore({ url: url.toString(), prefix: freshPrefix() });
        try {
          await expect(store.dlq.size()).resolves.toBe(0);
          await expect(store.ping()).rejects.toThrow(/NOPERM/);
        } finally {
          await store.close();
        }
      } finally {
        await withProbe((probe) => probe.call('ACL', 'DELUSER', user));
      }
    });

    it('scripts still run after Redis forgot them (SCRIPT FLUSH, a restart)', async () => {
      await withStore(async (store) => {
        await withProbe((probe) => probe.script('FLUSH'));
        const now = Date.now();
        expect((await store.idempotency.reserve('after-flush', 'fp', { now, leaseMs: 1_000, ttlMs: 60_000 })).kind).toBe(
          'reserved',
        );
        expect((await store.jobs.enqueue(newJob(now))).kind).toBe('created');
      });
    });

    it('a cursor with junk appended is rejected, not silently decoded', async () => {
      await withStore(async (store) => {
        for (let i = 0; i < 3; i++) await store.dlq.add(newDlqEntry(Date.now() + i));
        const { nextCursor } = await store.dlq.list({ limit: 1 });
        expect(nextCursor).not.toBeNull();
        for (const tampered of [`${nextCursor}!`, `${nextCursor}==`, ` ${nextCursor}`]) {
          await expect(store.dlq.list({ limit: 1, cursor: tampered })).rejects.toBeInstanceOf(InvalidCursorError);
        }
      });
    });

    it('a filtered listing stops after its scan budget with a short page and a cursor that continues', async () => {
      await withStore(async (store, prefix) => {
        const now = Date.now();
        const ids: string[] = [];
        for (const reason of ['transient', 'transient', 'transient', 'permanent', 'permanent'] as const) {
          ids.push((await store.dlq.add(newDlqEntry(now, { reason }))).id);
        }
        const keys = redisKeys(prefix);
        // The script itself, with a budget of 3 entries per call instead of the store's 1,000.
        const probe = probeClient();
        try {
          await probe.connect();
          const run = defineScripts(probe);
          const page = async (after: string) =>
            (await run('dlq-list', [keys.dlqOrder], [prefix, after, 10, 'permanent', '', '', 3])) as Buffer[][];
          const [first, ...firstItems] = await page('0');
          expect(firstItems).toHaveLength(0);
          // Three transient entries examined, none matched: an empty page, but not the last one.
          expect(String(first)).toBe('3');
          const [second, ...secondItems] = await page(String(first));
          expect(secondItems.map((hash) => readField(hash, 'id'))).toEqual([ids[3], ids[4]]);
          expect(String(second)).toBe('');
        } finally {
          probe.disconnect();
        }
      });
    });
  });

  describe('when Redis misbehaves', () => {
    it('a store opened before its Redis is up starts working once Redis is there, without a restart', async () => {
      const proxy = await startRedisProxy();
      await proxy.close();
      const store = await openRedisStore({ url: proxy.url, prefix: freshPrefix() });
      try {
        await expect(store.ping()).rejects.toThrow();
        await proxy.reopen();
        expect(await eventually(() => store.ping(), 5_000)).toBe(true);
        expect((await store.jobs.enqueue(newJob(Date.now()))).kind).toBe('created');
      } finally {
        await store.close();
        await proxy.close();
      }
    });

    it('a Redis that stops answering fails calls after commandTimeoutMs, and they work again once it answers', async () => {
      const proxy = await startRedisProxy();
      const store = await openRedisStore({ url: proxy.url, prefix: freshPrefix(), commandTimeoutMs: 300 });
      try {
        await store.ping();
        proxy.stall();
        const started = performance.now();
        await expect(store.ping()).rejects.toThrow(/timed out/i);
        await expect(store.jobs.counts()).rejects.toThrow();
        expect(performance.now() - started).toBeLessThan(FAST_FAILURE_MS);

        proxy.resume();
        await expect(store.ping()).resolves.toBeUndefined();
        expect((await store.idempotency.reserve('k', 'fp', { now: Date.now(), leaseMs: 1_000, ttlMs: 60_000 })).kind).toBe(
          'reserved',
        );
      } finally {
        await store.close();
        await proxy.close();
      }
    });

    it('while Redis is gone calls fail at once, and the store reconnects by itself when it is back', async () => {
      const proxy = await startRedisProxy();
      const errors: unknown[] = [];
      const store = await openRedisStore({
        url: proxy.url,
        prefix: freshPrefix(),
        onError: (error) => errors.push(error),
      });
      try {
        await store.ping();
        await proxy.close();

        const started = performance.now();
        await expect(store.ping()).rejects.toThrow();
        await expect(store.dlq.size()).rejects.toThrow();
        await expect(store.jobs.lease({ now: Date.now(), leaseMs: 1_000, limit: 1 })).rejects.toThrow();
        expect(performance.now() - started).toBeLessThan(FAST_FAILURE_MS);

        // Reconnect attempts fail while it is away, and are reported rather than thrown at the process.
        expect(await eventually(async () => expect(errors.length).toBeGreaterThan(0), 3_000)).toBe(true);

        await proxy.reopen();
        // Reconnect backoff is capped at 2 s; allow two rounds of it.
        expect(await eventually(() => store.ping(), 5_000)).toBe(true);
        expect(await store.dlq.size()).toBe(0);
      } finally {
        await store.close();
        await proxy.close();
      }
    });
  });
});

describe('RedisStore without a Redis', () => {
  it('opens, rejects ping and every kind of call quickly, and closes, when nothing listens at the URL', async () => {
    const port = await unusedPort();
    const errors: unknown[] = [];
    const started = performance.now();
    const store = await openRedisStore({
      url: `redis://127.0.0.1:${port}`,
      prefix: freshPrefix(),
      onError: (error) => errors.push(error),
    });
    try {
      const now = Date.now();
      await expect(store.ping()).rejects.toThrow();
      await expect(store.idempotency.reserve('k', 'fp', { now, leaseMs: 1_000, ttlMs: 60_000 })).rejects.toThrow();
      await expect(store.dlq.list({ limit: 10 })).rejects.toThrow();
      await expect(store.jobs.enqueue(newJob(now))).rejects.toThrow();
      expect(performance.now() - started).toBeLessThan(FAST_FAILURE_MS);
      expect(errors.some((e) => (e as NodeJS.ErrnoException).code === 'ECONNREFUSED')).toBe(true);
    } finally {
      await store.close();
      await store.close();
    }
    await expect(store.ping()).rejects.toThrow();
    // Closed means closed: no reconnect attempts (and their errors) afterwards.
    const reported = errors.length;
    await sleep(300);
    expect(errors.length).toBe(reported);
  });

  it('a server that accepts connections but never answers cannot make open or calls hang', async () => {
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const sockets = trackSockets(silent);
    const started = performance.now();
    const store = await openRedisStore({
      url: `redis://127.0.0.1:${(silent.address() as AddressInfo).port}`,
      prefix: freshPrefix(),
      connectTimeoutMs: 300,
      commandTimeoutMs: 300,
    });
    try {
      await expect(store.ping()).rejects.toThrow();
      await expect(store.dlq.size()).rejects.toThrow();
      expect(performance.now() - started).toBeLessThan(FAST_FAILURE_MS);
    } finally {
      await store.close();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it.each([
    [{ url: 'http://127.0.0.1:6379' }, /redis:\/\/ or rediss:\/\/ URL, got protocol `http:`/],
    [{ url: 'not a url' }, /got a string that is not a URL/],
    [{ url: 'redis://127.0.0.1:6379', prefix: '' }, /`prefix` to be a non-empty string/],
    [{ url: 'redis://127.0.0.1:6379', commandTimeoutMs: 0 }, /`commandTimeoutMs` to be a number of milliseconds above 0, got `0`/],
  ])('refuses %j with a message naming the bad value', async (options, message) => {
    await expect(openRedisStore(options)).rejects.toThrow(message);
  });

  it('a URL with a password does not leak it into the error', async () => {
    const error: unknown = await openRedisStore({ url: 'https://user:s3cret@example.test' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RangeError);
    expect(String(error)).not.toContain('s3cret');
  });
});

describe('Redis Lua scripts', () => {
  it.each(SCRIPT_NAMES)('%s is its own file with a header naming its KEYS, ARGV and output', (name) => {
    const source = readFileSync(new URL(`../../src/storage/redis/lua/${name}.lua`, import.meta.url), 'utf8');
    const header = /^--\[\[([\s\S]*?)\]\]/.exec(source)?.[1] ?? '';
    expect(header).toMatch(/Input:/);
    expect(header).toMatch(/KEYS/);
    expect(header).toMatch(/ARGV\[1\]/);
    expect(header).toMatch(/Output:/);
  });

  it.each(SCRIPT_NAMES)('%s loads with its includes resolved', (name) => {
    const source = loadScript(name);
    expect(source).not.toMatch(/@include/);
    // Every include is pasted once, however many other includes also need it.
    expect(source.match(/local function jobKey\(/g)?.length ?? 0).toBeLessThanOrEqual(1);
  });
});

function readField(hash: Buffer[], field: string): string | undefined {
  for (let i = 0; i + 1 < hash.length; i += 2) if (hash[i]?.toString() === field) return hash[i + 1]?.toString();
  return undefined;
}

function trackSockets(server: Server): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  return sockets;
}

/** Resolves true once `attempt` resolves, polling every 100 ms for at most `withinMs`. */
async function eventually(attempt: () => Promise<unknown>, withinMs: number): Promise<boolean> {
  const deadline = performance.now() + withinMs;
  while (performance.now() < deadline) {
    try {
      await attempt();
      return true;
    } catch {
      await sleep(100);
    }
  }
  return false;
}
