import { describe, expect, it } from 'vitest';
import { ClientClosedError, DeadlineExceededError, QueueFullError } from '../errors.js';
import { WorkerPool } from './worker-pool.js';

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
