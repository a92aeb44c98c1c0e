import type { Clock } from '../clock.js';
import { ClientClosedError, DeadlineExceededError, QueueFullError } from '../errors.js';
import { BoundedQueue, type QueueNode } from './bounded-queue.js';
import { DrainRateEstimator } from './drain-rate.js';

export interface WorkerPoolOptions {
  /** Tasks running at once. @default 5 */
  workers: number;
  /** Tasks waiting for a worker; beyond it, QueueFullError (429). @default 100 */
  capacity: number;
  clock: Clock;
  /** Retry-After for a 429 before any drain rate is known. @default 1 */
  fallbackRetryAfterS?: number;
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

interface Waiting {
  start: () => void;
}

/**
 * A bulkhead: at most `workers` tasks in flight, at most `capacity` waiting.
 * A waiting task whose client disconnects, or whose deadline passes, leaves the
 * queue and never runs (so the downstream is never called for it).
 */
export class WorkerPool {
  private readonly queue: BoundedQueue<Waiting>;
  private readonly drainRate: DrainRateEstimator;
  private running = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly options: WorkerPoolOptions) {
    if (!Number.isInteger(options.workers) || options.workers < 1) {
      throw new TypeError(`Expected \`workers\` to be an integer from 1 and up, got \`${options.workers}\``);
    }
    this.queue = new BoundedQueue(options.capacity);
    this.drainRate = new DrainRateEstimator(options.clock);
  }

  get depth(): number {
    return this.queue.size;
  }
  get busy(): number {
    return this.running;
  }
  get workers(): number {
    return this.options.workers;
  }
  get capacity(): number {
    return this.queue.capacity;
  }

  /**
   * Runs `task` when a worker is free. Rejects with QueueFullError when the
   * queue is full, ClientClosedError when `signal` aborts while waiting, and
   * DeadlineExceededError when `deadlineAt` passes while waiting.
   */
  run<T>(task: () => Promise<T>, context: { signal?: WaitSignal; deadlineAt: number }): Promise<T> {
    if (context.signal?.aborted) return Promise.reject(new ClientClosedError('client closed before admission'));
    if (this.running < this.options.workers && this.queue.size === 0) return this.execute(task);

    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const cleanup = () => {
        clearTimeout(timer);
        context.signal?.removeEventListener('abort', onAbort);
      };
      const leave = (error: Error) => {
        if (!node || !this.queue.remove(node)) return;
        cleanup();
        reject(error);
        this.notifyIfIdle();
      };
      const onAbort = () => leave(new ClientClosedError('client closed while queued'));
      const node: QueueNode<Waiting> | null = this.queue.push({
        start: () => {
          cleanup();
          // The queue timer may not have fired yet when the loop lags: the deadline still wins.
          if (this.options.clock.now() >= context.deadlineAt) {
            reject(new DeadlineExceededError('The request deadline passed while it waited in the queue; the downstream was not called.'));
            this.queue.shift()?.start();
            this.notifyIfIdle();
            return;
          }
          this.execute(task).then(resolve, reject);
        },
      });
      if (!node) {
        const retryAfterS = this.drainRate.retryAfterSeconds(this.queue.size, this.options.fallbackRetryAfterS ?? 1);
        reject(new QueueFullError(retryAfterS));
        return;
      }
      context.signal?.addEventListener('abort', onAbort, { once: true });
      const waitMs = context.deadlineAt - this.options.clock.now();
      timer = setTimeout(() => leave(new DeadlineExceededError('The request deadline passed while it waited in the queue; the downstream was not called.')), Math.max(0, waitMs));
    });
  }

  /** Resolves when nothing waits and nothing runs. */
  whenIdle(): Promise<void> {
    if (this.running === 0 && this.queue.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async execute<T>(task: () => Promise<T>): Promise<T> {
    this.running++;
    try {
      return await task();
    } finally {
      this.running--;
      this.drainRate.recordCompletion();
      this.queue.shift()?.start();
      this.notifyIfIdle();
    }
  }

  private notifyIfIdle(): void {
    if (this.running > 0 || this.queue.size > 0 || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
