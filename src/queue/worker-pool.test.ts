import { describe, expect, it } from 'vitest';
import { ClientClosedError, DeadlineExceededError, QueueFullError } from '../errors.js';
import type { Priority } from '../storage/types.js';
import { WorkerPool, type ShedEvent, type WaitSignal } from './worker-pool.js';

const clock = { now: () => Date.now() };

/** A task the test finishes by hand. */
function gate<T = string>(value: T = 'done' as T) {
  let open!: () => void;
  let started = false;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return {
    task: async () => {
      started = true;
      await opened;
      return value;
    },
    open: () => open(),
    get started() {
      return started;
    },
  };
}

const later = (ms = 60_000) => Date.now() + ms;

describe('WorkerPool', () => {
  it('runs at most `workers` tasks at once and queues the rest in order', async () => {
    const pool = new WorkerPool({ workers: 2, capacity: 10, clock });
    const gates = [gate('a'), gate('b'), gate('c')];
    const results = gates.map((g) => pool.run(g.task, { deadlineAt: later() }));
    await Promise.resolve();
    expect(gates.map((g) => g.started)).toEqual([true, true, false]);
    expect(pool.busy).toBe(2);
    expect(pool.depth).toBe(1);
    gates[0]!.open();
    await results[0];
    await Promise.resolve();
    expect(gates[2]!.started).toBe(true);
    gates[1]!.open();
    gates[2]!.open();
    expect(await Promise.all(results)).toEqual(['a', 'b', 'c']);
    expect(pool.busy).toBe(0);
  });

  it('a task sleeping between attempts lends its worker to queued work and takes one back ahead of the queue', async () => {
    const pool = new WorkerPool({ workers: 1, capacity: 10, clock });
    const events: string[] = [];
    let wake!: () => void;
    const sleeping = pool.run(async (lease) => {
      events.push('a: attempt 1');
      const resume = lease.suspend();
      await new Promise<void>((resolve) => (wake = resolve));
      await resume();
      events.push('a: attempt 2');
      return 'a';
    }, { deadlineAt: later() });
    const b = gate('b');
    const c = gate('c');
    const results = [pool.run(b.task, { deadlineAt: later() }), pool.run(c.task, { deadlineAt: later() })];
    await Promise.resolve();
    // a sleeps: its worker runs b; c waits.
    expect([b.started, c.started]).toEqual([true, false]);
    expect({ busy: pool.busy, backingOff: pool.backingOff, depth: pool.depth }).toEqual({ busy: 1, backingOff: 1, depth: 1 });
    wake();
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(events).toEqual(['a: attempt 1']); // no worker free until b ends
    b.open();
    await expect(sleeping).resolves.toBe('a'); // a went before c, which was queued earlier
    expect(events).toEqual(['a: attempt 1', 'a: attempt 2']);
    await Promise.resolve();
    expect(c.started).toBe(true);
    c.open();
    expect(await Promise.all(results)).toEqual(['b', 'c']);
    expect({ busy: pool.busy, backingOff: pool.backingOff }).toEqual({ busy: 0, backingOff: 0 });
  });

  it('whenIdle waits for a task sleeping between attempts, and a task that ends asleep gives nothing back twice', async () => {
    const pool = new WorkerPool({ workers: 2, capacity: 10, clock });
    let end!: () => void;
    const sleeper = pool.run(async (lease) => {
      lease.suspend();
      await new Promise<void>((resolve) => (end = resolve));
      return 'gave up asleep';
    }, { deadlineAt: later() });
    await Promise.resolve();
    let idle = false;
    void pool.whenIdle().then(() => (idle = true));
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(idle).toBe(false);
    end();
    await expect(sleeper).resolves.toBe('gave up asleep');
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(idle).toBe(true);
    expect({ busy: pool.busy, backingOff: pool.backingOff }).toEqual({ busy: 0, backingOff: 0 });
    const both = [gate('x'), gate('y')];
    const runs = both.map((g) => pool.run(g.task, { deadlineAt: later() }));
    await Promise.resolve();
    expect(both.map((g) => g.started)).toEqual([true, true]);
    both.forEach((g) => g.open());
    await Promise.all(runs);
  });

  it('rejectWaiting refuses every waiting task, which never runs, and leaves running ones alone', async () => {
    const pool = new WorkerPool({ workers: 1, capacity: 10, clock });
    const gates = [gate('running'), gate('w1'), gate('w2')];
    const results = gates.map((g) => pool.run(g.task, { deadlineAt: later() }));
    await Promise.resolve();
    expect(pool.rejectWaiting(() => new Error('circuit open'), 1)).toBe(1);
    expect(pool.depth).toBe(1);
    expect(pool.rejectWaiting(() => new Error('circuit open'))).toBe(1);
    await expect(results[1]).rejects.toThrow('circuit open');
    await expect(results[2]).rejects.toThrow('circuit open');
    expect(pool.depth).toBe(0);
    gates[0]!.open();
    await expect(results[0]).resolves.toBe('running');
    expect(gates[1]!.started || gates[2]!.started).toBe(false);
  });

  it('rejects with QueueFullError and a Retry-After when the queue is full', async () => {
    const pool = new WorkerPool({ workers: 1, capacity: 1, clock, fallbackRetryAfterS: 3 });
    const running = gate();
    const waiting = gate();
    const first = pool.run(running.task, { deadlineAt: later() });
    const second = pool.run(waiting.task, { deadlineAt: later() });
    const third = pool.run(async () => 'never', { deadlineAt: later() });
    await expect(third).rejects.toBeInstanceOf(QueueFullError);
    await expect(third).rejects.toMatchObject({ retryAfterS: 3 });
    running.open();
    waiting.open();
    await Promise.all([first, second]);
  });

  it('a waiting task whose client disconnects leaves the queue and never runs', async () => {
    const pool = new WorkerPool({ workers: 1, capacity: 5, clock });
    const running = gate();
    const first = pool.run(running.task, { deadlineAt: later() });
    const controller = new AbortController();
    let ran = false;
    const second = pool.run(
      async () => {
        ran = true;
      },
      { deadlineAt: later(), signal: controller.signal },
    );
    expect(pool.depth).toBe(1);
    controller.abort();
    await expect(second).rejects.toBeInstanceOf(ClientClosedError);
    expect(pool.depth).toBe(0);
    running.open();
    await first;
    expect(ran).toBe(false);
  });

  it('a waiting task whose deadline passes is rejected without running', async () => {
    const pool = new WorkerPool({ workers: 1, capacity: 5, clock });
    const running = gate();
    const first = pool.run(running.task, { deadlineAt: later() });
    let ran = false;
    const started = Date.now();
    const second = pool.run(
      async () => {
        ran = true;
      },
      { deadlineAt: Date.now() + 50 },
    );
    await expect(second).rejects.toBeInstanceOf(DeadlineExceededError);
    expect(Date.now() - started).toBeLessThan(1000);
    running.open();
    await first;
    expect(ran).toBe(false);
  });

  it('rejects a task whose client already left before admission', async () => {
    const pool = new WorkerPool({ workers: 1, capacity: 5, clock });
    const controller = new AbortController();
    controller.abort();
    await expect(pool.run(async () => 1, { deadlineAt: later(), signal: controller.signal })).rejects.toBeInstanceOf(ClientClosedError);
    expect(pool.busy).toBe(0);
  });

  it('a failing task frees its worker for the next one', async () => {
    const pool = new WorkerPool({ workers: 1, capacity: 5, clock });
    const failing = pool.run(async () => Promise.reject(new Error('boom')), { deadlineAt: later() });
    const next = pool.run(async () => 'next', { deadlineAt: later() });
    await expect(failing).rejects.toThrow('boom');
    await expect(next).resolves.toBe('next');
  });

  it('whenIdle resolves only after queued and running tasks finished', async () => {
    const pool = new WorkerPool({ workers: 1, capacity: 5, clock });
    const a = gate();
    const b = gate();
    const runs = [pool.run(a.task, { deadlineAt: later() }), pool.run(b.task, { deadlineAt: later() })];
    let idle = false;
    const idlePromise = pool.whenIdle().then(() => (idle = true));
    a.open();
    await runs[0];
    await Promise.resolve();
    expect(idle).toBe(false);
    b.open();
    await Promise.all([...runs, idlePromise]);
    expect(idle).toBe(true);
  });

  it('names a bad worker count', () => {
    expect(() => new WorkerPool({ workers: 0, capacity: 1, clock })).toThrow('Expected `workers` to be an integer from 1 and up, got `0`');
  });
});

/** A clock that stands still: these tests are about order, not time. */
const frozen = { now: () => 1_000 };
const deadlineAt = 1_000 + 60_000;
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A pool whose one worker is held busy until `release()`, plus a log of started task names and shed events. */
function busyPool(options: { capacity: number; lowPriorityMaxFill?: number }) {
  const shed: ShedEvent[] = [];
  const pool = new WorkerPool({ workers: 1, clock: frozen, onShed: (event) => shed.push(event), ...options });
  const blocker = gate();
  const blocked = pool.run(blocker.task, { deadlineAt });
  const started: string[] = [];
  const enqueue = (name: string, priority: Priority, signal?: WaitSignal) =>
    pool.run(
      async () => {
        started.push(name);
        return name;
      },
      { deadlineAt, priority, ...(signal ? { signal } : {}) },
    );
  const release = async () => {
    blocker.open();
    await blocked;
    await settle();
  };
  return { pool, shed, started, enqueue, release };
}

describe('WorkerPool priorities', () => {
  it('a freed worker goes to the highest priority waiting', async () => {
    const { pool, started, enqueue, release } = busyPool({ capacity: 10 });
    const runs = [enqueue('low', 'low'), enqueue('normal', 'normal'), enqueue('high', 'high')];
    expect(pool.depthByPriority).toEqual({ high: 1, normal: 1, low: 1 });
    await release();
    await Promise.all(runs);
    expect(started).toEqual(['high', 'normal', 'low']);
  });

  it('keeps arrival order within a class', async () => {
    const { started, enqueue, release } = busyPool({ capacity: 10 });
    const runs = [enqueue('n1', 'normal'), enqueue('h1', 'high'), enqueue('n2', 'normal'), enqueue('h2', 'high'), enqueue('n3', 'normal')];
    await release();
    await Promise.all(runs);
    expect(started).toEqual(['h1', 'h2', 'n1', 'n2', 'n3']);
  });

  it('a request without a priority waits as normal work', async () => {
    const { pool, started, release } = busyPool({ capacity: 10 });
    const high = pool.run(async () => started.push('high'), { deadlineAt, priority: 'high' });
    const plain = pool.run(async () => started.push('plain'), { deadlineAt });
    expect(pool.depthByPriority).toEqual({ high: 1, normal: 1, low: 0 });
    await release();
    await Promise.all([high, plain]);
    expect(started).toEqual(['high', 'plain']);
  });

  it('refuses low work once the queue is half full while normal work is still admitted', async () => {
    const { pool, shed, started, enqueue, release } = busyPool({ capacity: 4 });
    const admitted = [enqueue('low-1', 'low'), enqueue('low-2', 'low')];
    const refused = enqueue('low-3', 'low');
    await expect(refused).rejects.toBeInstanceOf(QueueFullError);
    await expect(refused).rejects.toMatchObject({ status: 429 });
    admitted.push(enqueue('normal-1', 'normal'));
    expect(pool.depthByPriority).toEqual({ high: 0, normal: 1, low: 2 });
    expect(shed).toEqual([{ priority: 'low', reason: 'low_priority_fill' }]);
    await release();
    await Promise.all(admitted);
    expect(started).toEqual(['normal-1', 'low-1', 'low-2']);
  });

  it('a high arrival at a full queue evicts the newest low, which gets a 429 and never runs', async () => {
    const { pool, shed, started, enqueue, release } = busyPool({ capacity: 4 });
    const oldLow = enqueue('low-old', 'low');
    const newLow = enqueue('low-new', 'low');
    const normals = [enqueue('normal-1', 'normal'), enqueue('normal-2', 'normal')];
    const high = enqueue('high', 'high');
    await expect(newLow).rejects.toBeInstanceOf(QueueFullError);
    await expect(newLow).rejects.toMatchObject({ status: 429 });
    expect(pool.depth).toBe(4);
    expect(pool.depthByPriority).toEqual({ high: 1, normal: 2, low: 1 });
    expect(shed).toEqual([{ priority: 'low', reason: 'evicted' }]);
    await release();
    await Promise.all([oldLow, high, ...normals]);
    expect(started).toEqual(['high', 'normal-1', 'normal-2', 'low-old']);
  });

  it('a high arrival evicts the newest normal when no low waits', async () => {
    const { shed, started, enqueue, release } = busyPool({ capacity: 2 });
    const first = enqueue('normal-1', 'normal');
    const second = enqueue('normal-2', 'normal');
    const high = enqueue('high', 'high');
    await expect(second).rejects.toBeInstanceOf(QueueFullError);
    expect(shed).toEqual([{ priority: 'normal', reason: 'evicted' }]);
    await release();
    await Promise.all([first, high]);
    expect(started).toEqual(['high', 'normal-1']);
  });

  it('a normal arrival at a full queue evicts a low but never another normal', async () => {
    const { pool, shed, started, enqueue, release } = busyPool({ capacity: 3 });
    const low = enqueue('low', 'low');
    const normals = [enqueue('normal-1', 'normal'), enqueue('normal-2', 'normal')];
    normals.push(enqueue('normal-3', 'normal'));
    await expect(low).rejects.toBeInstanceOf(QueueFullError);
    const refused = enqueue('normal-4', 'normal');
    await expect(refused).rejects.toBeInstanceOf(QueueFullError);
    expect(pool.depthByPriority).toEqual({ high: 0, normal: 3, low: 0 });
    expect(shed).toEqual([
      { priority: 'low', reason: 'evicted' },
      { priority: 'normal', reason: 'queue_full' },
    ]);
    await release();
    await Promise.all(normals);
    expect(started).toEqual(['normal-1', 'normal-2', 'normal-3']);
  });

  it('a low arrival at a full queue gets a 429 and evicts nothing', async () => {
    const { pool, shed, enqueue, release } = busyPool({ capacity: 2, lowPriorityMaxFill: 1 });
    const lows = [enqueue('low-1', 'low'), enqueue('low-2', 'low')];
    const refused = enqueue('low-3', 'low');
    await expect(refused).rejects.toMatchObject({ status: 429, retryAfterS: 1 });
    expect(pool.depth).toBe(2);
    expect(shed).toEqual([{ priority: 'low', reason: 'queue_full' }]);
    await release();
    await expect(Promise.all(lows)).resolves.toEqual(['low-1', 'low-2']);
  });

  it('an evicted task stops listening for its client disconnect', async () => {
    const { enqueue, release } = busyPool({ capacity: 1 });
    let listeners = 0;
    const signal: WaitSignal = {
      aborted: false,
      addEventListener: () => void listeners++,
      removeEventListener: () => void listeners--,
    };
    const victim = enqueue('low', 'low', signal);
    expect(listeners).toBe(1);
    const high = enqueue('high', 'high');
    await expect(victim).rejects.toBeInstanceOf(QueueFullError);
    expect(listeners).toBe(0);
    await release();
    await expect(high).resolves.toBe('high');
  });

  it('does not report a disconnect or a passed deadline as shedding', async () => {
    const { shed, release, pool } = busyPool({ capacity: 5 });
    const controller = new AbortController();
    const disconnected = pool.run(async () => 'never', { deadlineAt, signal: controller.signal, priority: 'low' });
    const expired = pool.run(async () => 'never', { deadlineAt: frozen.now(), priority: 'high' });
    controller.abort();
    await expect(disconnected).rejects.toBeInstanceOf(ClientClosedError);
    await expect(expired).rejects.toBeInstanceOf(DeadlineExceededError);
    expect(shed).toEqual([]);
    await release();
  });

  it('whenIdle resolves after an eviction once the rest has run', async () => {
    const { pool, enqueue, release } = busyPool({ capacity: 1 });
    const victim = enqueue('low', 'low');
    const high = enqueue('high', 'high');
    await expect(victim).rejects.toBeInstanceOf(QueueFullError);
    const idle = pool.whenIdle();
    await release();
    await high;
    await expect(idle).resolves.toBeUndefined();
    expect(pool.depth).toBe(0);
  });

  it('names a bad lowPriorityMaxFill', () => {
    expect(() => new WorkerPool({ workers: 1, capacity: 1, clock, lowPriorityMaxFill: 1.5 })).toThrow(
      'Expected `lowPriorityMaxFill` to be a number from 0 to 1, got `1.5`',
    );
  });
});

describe('WorkerPool adaptive concurrency', () => {
  it('holds tasks in the queue while the limit is below workers and starts them on poke after it rises', async () => {
    let limit = 1;
    const pool = new WorkerPool({ workers: 4, capacity: 10, clock: frozen, limit: () => limit });
    const gates = [gate('a'), gate('b'), gate('c')];
    const runs = gates.map((g) => pool.run(g.task, { deadlineAt }));
    await settle();
    expect(gates.map((g) => g.started)).toEqual([true, false, false]);
    expect(pool.concurrencyLimit).toBe(1);
    expect(pool.depth).toBe(2);

    limit = 3;
    await settle();
    expect(gates.map((g) => g.started)).toEqual([true, false, false]);
    pool.poke();
    await settle();
    expect(gates.map((g) => g.started)).toEqual([true, true, true]);
    expect(pool.busy).toBe(3);
    expect(pool.depth).toBe(0);

    for (const g of gates) g.open();
    expect(await Promise.all(runs)).toEqual(['a', 'b', 'c']);
  });

  it('never runs more than `workers` however high the limit goes', async () => {
    const pool = new WorkerPool({ workers: 2, capacity: 10, clock: frozen, limit: () => 50 });
    const gates = [gate('a'), gate('b'), gate('c')];
    const runs = gates.map((g) => pool.run(g.task, { deadlineAt }));
    await settle();
    expect(pool.concurrencyLimit).toBe(2);
    expect(gates.map((g) => g.started)).toEqual([true, true, false]);
    for (const g of gates) g.open();
    expect(await Promise.all(runs)).toEqual(['a', 'b', 'c']);
  });

  it('after the limit drops, running tasks finish and no new one starts until below it', async () => {
    let limit = 2;
    const pool = new WorkerPool({ workers: 2, capacity: 10, clock: frozen, limit: () => limit });
    const gates = [gate('a'), gate('b'), gate('c')];
    const runs = gates.map((g) => pool.run(g.task, { deadlineAt }));
    await settle();
    expect(pool.busy).toBe(2);
    limit = 1;
    gates[0]!.open();
    await runs[0];
    await settle();
    expect(gates[2]!.started).toBe(false);
    gates[1]!.open();
    await runs[1];
    await settle();
    expect(gates[2]!.started).toBe(true);
    gates[2]!.open();
    await expect(runs[2]).resolves.toBe('c');
  });

  it('a limit below 1 still lets one task run, so queued work is never stranded', async () => {
    const pool = new WorkerPool({ workers: 2, capacity: 10, clock: frozen, limit: () => 0 });
    expect(pool.concurrencyLimit).toBe(1);
    await expect(pool.run(async () => 'ran', { deadlineAt })).resolves.toBe('ran');
  });
});
