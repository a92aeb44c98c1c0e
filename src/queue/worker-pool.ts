import type { Clock } from '../clock.js';
import { ClientClosedError, DeadlineExceededError, QueueFullError } from '../errors.js';
import type { Priority } from '../storage/types.js';
import { DrainRateEstimator } from './drain-rate.js';
import { PriorityQueue, type PriorityEntry } from './priority-queue.js';

/** Why a request was refused a place in the queue, or lost the one it had. */
export type ShedReason = 'queue_full' | 'low_priority_fill' | 'evicted';

export interface ShedEvent {
  /** The priority of the request that was refused or evicted. */
  priority: Priority;
  reason: ShedReason;
}

export interface WorkerPoolOptions {
  /** Tasks running at once, at most. @default 5 */
  workers: number;
  /** Tasks waiting for a worker, all priorities together; beyond it, QueueFullError (429). @default 100 */
  capacity: number;
  clock: Clock;
  /** Retry-After for a 429 before any drain rate is known. @default 1 */
  fallbackRetryAfterS?: number;
  /**
   * A `low` request that would have to wait is refused once this fraction of
   * `capacity` is taken, so the rest of the queue stays free for normal and high work.
   * @default 0.5
   */
  lowPriorityMaxFill?: number;
  /**
   * The adaptive (AIMD) concurrency limit, read whenever a task could start; the
   * pool runs at most min(workers, limit()) tasks. Call `poke()` when it rises.
   * @default () => workers
   */
  limit?: () => number;
  /** Called for every request refused at admission or evicted from the queue (not for deadlines or disconnects). */
  onShed?: (event: ShedEvent) => void;
}

/**
 * What the pool needs of a cancellation signal: an AbortSignal is one. It is
 * only listened to while the task waits in the queue, which lets a caller hand
 * in something cheaper than an AbortController per task (see relay-router.ts).
 */
export interface WaitSignal {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options: { once: true }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

export interface RunContext {
  signal?: WaitSignal;
  /** Epoch ms; a task still waiting then is rejected with DeadlineExceededError. */
  deadlineAt: number;
  /** Higher classes are served first and shed last. @default 'normal' */
  priority?: Priority;
}

/** What a running task may do with its worker. */
export interface WorkerLease {
  /**
   * Lends the worker back while the task waits without calling a downstream (a
   * retry's backoff), so the limit counts calls, not sleeps. Call what it
   * returns to take a worker again: it resolves once one is free, ahead of
   * queued work (the task was admitted already). A task that ends while
   * suspended needs no resume.
   */
  suspend(): () => Promise<void>;
}

interface Waiting {
  start: () => void;
  /** Rejects the waiting task with `error` and takes it out of the queue. */
  evict: (error: QueueFullError) => void;
  /** Rejects the waiting task with `error` once it has already left the queue. */
  abandon: (error: Error) => void;
}

const QUEUE_DEADLINE_MESSAGE = 'The request deadline passed while it waited in the queue; the downstream was not called.';

/**
 * A bulkhead: at most min(`workers`, `limit()`) tasks in flight, at most
 * `capacity` waiting, served by priority. A waiting task whose client
 * disconnects, whose deadline passes, or that is evicted for higher-priority
 * work leaves the queue and never runs (so the downstream is never called for it).
 */
export class WorkerPool {
  private readonly queue: PriorityQueue<Waiting>;
  private readonly drainRate: DrainRateEstimator;
  private readonly lowPriorityMaxFill: number;
  private running = 0;
  /** Tasks that lent their worker back (see WorkerLease.suspend). */
  private suspended = 0;
  /** Suspended tasks waiting to take a worker again, served before the queue. */
  private resumers: Array<() => void> = [];
  private idleWaiters: Array<() => void> = [];
  /** Set while paused (see `pause`): what a task held past its deadline is rejected with. */
  private heldError: (() => Error) | undefined;

  constructor(private readonly options: WorkerPoolOptions) {
    if (!Number.isInteger(options.workers) || options.workers < 1) {
      throw new TypeError(`Expected \`workers\` to be an integer from 1 and up, got \`${options.workers}\``);
    }
    const lowFill = options.lowPriorityMaxFill ?? 0.5;
    if (typeof lowFill !== 'number' || !(lowFill >= 0 && lowFill <= 1)) {
      throw new TypeError(`Expected \`lowPriorityMaxFill\` to be a number from 0 to 1, got \`${lowFill}\``);
    }
    this.lowPriorityMaxFill = lowFill;
    this.queue = new PriorityQueue(options.capacity);
    this.drainRate = new DrainRateEstimator(options.clock);
  }

  get depth(): number {
    return this.queue.size;
  }
  get depthByPriority(): Record<Priority, number> {
    return { high: this.queue.sizeOf('high'), normal: this.queue.sizeOf('normal'), low: this.queue.sizeOf('low') };
  }
  get busy(): number {
    return this.running;
  }
  /** Admitted tasks waiting between attempts with their worker lent back. */
  get backingOff(): number {
    return this.suspended;
  }
  get workers(): number {
    return this.options.workers;
  }
  get capacity(): number {
    return this.queue.capacity;
  }

  /** Whether waiting tasks are held (see `pause`). */
  get paused(): boolean {
    return this.heldError !== undefined;
  }

  /**
   * Holds the queue: no waiting task starts until `resume()`, and new tasks
   * wait (up to `capacity`, as ever). Tasks already running, or between
   * attempts, go on: holding one mid-request would outlive its deadline. A task
   * whose deadline passes while held is rejected with `heldError()` instead of
   * DeadlineExceededError.
   */
  pause(heldError: () => Error): void {
    this.heldError = heldError;
  }

  /** Lets held tasks start again, up to the concurrency limit. */
  resume(): void {
    this.heldError = undefined;
    this.drain();
  }

  /** Tasks that may run at once right now: min(workers, limit()), never below 1. */
  get concurrencyLimit(): number {
    const workers = this.options.workers;
    if (!this.options.limit) return workers;
    const limit = Math.floor(this.options.limit());
    // A limit of 0 (or NaN) would leave queued work waiting for a completion that never comes.
    if (!(limit >= 1)) return 1;
    return Math.min(workers, limit);
  }

  /**
   * Runs `task` when a worker is free. Rejects with QueueFullError when there is
   * no room for its priority (or it is evicted later for higher-priority work),
   * ClientClosedError when `signal` aborts while waiting, and
   * DeadlineExceededError when `deadlineAt` passes while waiting.
   */
  run<T>(task: (lease: WorkerLease) => Promise<T>, context: RunContext): Promise<T> {
    if (context.signal?.aborted) return Promise.reject(new ClientClosedError('client closed before admission'));
    if (!this.heldError && this.queue.size === 0 && this.resumers.length === 0 && this.running < this.concurrencyLimit) return this.execute(task);

    const priority = context.priority ?? 'normal';
    const refusal = this.admit(priority);
    if (refusal) {
      const error = this.queueFull();
      this.options.onShed?.({ priority, reason: refusal });
      return Promise.reject(error);
    }

    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const cleanup = () => {
        clearTimeout(timer);
        context.signal?.removeEventListener('abort', onAbort);
      };
      const leave = (error: Error) => {
        if (!entry || !this.queue.remove(entry)) return;
        cleanup();
        reject(error);
        this.notifyIfIdle();
      };
      const onAbort = () => leave(new ClientClosedError('client closed while queued'));
      const entry: PriorityEntry<Waiting> | null = this.queue.push(
        {
          start: () => {
            cleanup();
            // The queue timer may not have fired yet when the loop lags: the deadline still wins.
            if (this.options.clock.now() >= context.deadlineAt) {
              reject(new DeadlineExceededError(QUEUE_DEADLINE_MESSAGE));
              return;
            }
            this.execute(task).then(resolve, reject);
          },
          evict: leave,
          abandon: (error: Error) => {
            cleanup();
            reject(error);
          },
        },
        priority,
      );
      if (!entry) {
        // Unreachable while admit() makes room first; kept so a full queue can never lose a task silently.
        reject(this.queueFull());
        return;
      }
      context.signal?.addEventListener('abort', onAbort, { once: true });
      const waitMs = context.deadlineAt - this.options.clock.now();
      timer = setTimeout(() => leave(this.heldError?.() ?? new DeadlineExceededError(QUEUE_DEADLINE_MESSAGE)), Math.max(0, waitMs));
      // The limit may have risen without a poke(): an arrival is a chance to catch up.
      if (this.running < this.concurrencyLimit) this.drain();
    });
  }

  /** Starts queued tasks up to the current concurrency limit; call when `limit()` rises. */
  poke(): void {
    this.drain();
  }

  /**
   * Refuses every task still waiting, which then never runs (every downstream's
   * breaker just opened: they would only be refused one by one as workers free
   * up). At most `max` at a time, so a caller can yield between batches. Returns how many were refused.
   */
  rejectWaiting(makeError: () => Error, max = Number.POSITIVE_INFINITY): number {
    let refused = 0;
    for (let waiting = refused < max ? this.queue.shift() : undefined; waiting; waiting = refused < max ? this.queue.shift() : undefined) {
      waiting.abandon(makeError());
      refused++;
    }
    this.notifyIfIdle();
    return refused;
  }

  /** Resolves when nothing waits and nothing runs (nor sleeps between attempts). */
  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Makes room for a request of `priority` that must wait, evicting the newest
   * lower-priority entry when the queue is full; returns why it is refused, or
   * null when it may be queued.
   */
  private admit(priority: Priority): ShedReason | null {
    if (this.queue.isFull) {
      const victim = this.queue.newestBelow(priority);
      if (!victim) return 'queue_full';
      victim.node.value.evict(this.queueFull());
      this.options.onShed?.({ priority: victim.priority, reason: 'evicted' });
      return null;
    }
    if (priority === 'low' && this.queue.size >= this.lowPriorityMaxFill * this.queue.capacity) return 'low_priority_fill';
    return null;
  }

  private queueFull(): QueueFullError {
    return new QueueFullError(this.drainRate.retryAfterSeconds(this.queue.size, this.options.fallbackRetryAfterS ?? 1));
  }

  private async execute<T>(task: (lease: WorkerLease) => Promise<T>): Promise<T> {
    this.running++;
    let holding = true;
    const lease: WorkerLease = {
      suspend: () => {
        if (!holding) throw new Error('WorkerLease.suspend() called while already suspended');
        holding = false;
        this.running--;
        this.suspended++;
        this.drain();
        let resumed = false;
        return () =>
          new Promise<void>((resolve) => {
            if (resumed) throw new Error('the resume of WorkerLease.suspend() was called twice');
            resumed = true;
            const take = () => {
              this.suspended--;
              this.running++;
              holding = true;
              resolve();
            };
            if (this.resumers.length === 0 && this.running < this.concurrencyLimit) take();
            else this.resumers.push(take);
          });
      },
    };
    try {
      return await task(lease);
    } finally {
      if (holding) this.running--;
      else this.suspended--;
      this.drainRate.recordCompletion();
      this.drain();
    }
  }

  private drain(): void {
    while (this.running < this.concurrencyLimit) {
      const resume = this.resumers.shift();
      if (resume) {
        resume();
        continue;
      }
      if (this.heldError) break;
      const next = this.queue.shift();
      if (!next) break;
      // start() either runs the task (running goes up at once) or rejects it for its deadline.
      next.start();
    }
    this.notifyIfIdle();
  }

  private isIdle(): boolean {
    return this.running === 0 && this.suspended === 0 && this.queue.size === 0;
  }

  private notifyIfIdle(): void {
    if (!this.isIdle() || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
