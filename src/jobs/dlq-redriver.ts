import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { Clock } from '../clock.js';
import type { RelayEvents } from '../relay-events.js';
import { deliveryOf } from '../resilience/classify.js';
import type { DlqFilter, DlqReason, DlqSummary, RelayStore } from '../storage/types.js';

export interface RedriveFilter {
  reason?: DlqReason;
  /** Only entries untouched for at least this long. */
  olderThanMs?: number;
}

export interface RedriveTask {
  id: string;
  /** `auto` for the automatic redrive of transient entries, `manual` for POST /dlq/redrive. */
  origin: 'auto' | 'manual';
  state: 'running' | 'completed' | 'failed' | 'cancelled';
  filter: RedriveFilter;
  ratePerSecond: number;
  /** Most entries this task moves. */
  limit: number;
  moved: number;
  /** Matched, but gone (moved or deleted by someone else) when this task got to them. */
  skipped: number;
  startedAt: string;
  finishedAt: string | null;
  error: string | null;
}

export interface DlqRedriverOptions {
  store: RelayStore;
  events: RelayEvents;
  clock: Clock;
  /** A moved job is queued: look for work. */
  onMoved: () => void;
  /** Default pace of a move task, entries per second (SQS's message move task is paced the same way). @default 10 */
  ratePerSecond: number;
  /** Automatic redrive of transient entries: at most this many redrives per request; 0 turns it off. @default 3 */
  autoMaxRedrives: number;
  /** An entry is redriven automatically only after it sat this long untouched. @default 300000 */
  autoCooldownMs: number;
  onError: (error: unknown, context: string) => void;
}

const PAGE_SIZE = 50;
const KEPT_TASKS = 20;
const AUTO_BATCH = 100;

/**
 * Moves DLQ entries back to the job queue at a bounded rate, so a redrive after
 * an outage does not become the next storm. One atomic store call per entry
 * (`dlq.redrive`), so two relay instances redriving at once move each entry once.
 */
export class DlqRedriver {
  private readonly tasks = new Map<string, RedriveTask>();
  private readonly stop = new AbortController();
  private readonly running = new Set<Promise<void>>();
  private autoTimer: NodeJS.Timeout | undefined;
  private autoTask: RedriveTask | undefined;

  constructor(private readonly options: DlqRedriverOptions) {}

  /** Starts a move task in the background and returns it (its fields update as it runs). */
  start(filter: RedriveFilter, options: { limit: number; ratePerSecond?: number; origin?: 'auto' | 'manual' }): RedriveTask {
    const task: RedriveTask = {
      id: randomUUID(),
      origin: options.origin ?? 'manual',
      state: 'running',
      filter,
      ratePerSecond: options.ratePerSecond ?? this.options.ratePerSecond,
      limit: options.limit,
      moved: 0,
      skipped: 0,
      startedAt: new Date(this.options.clock.now()).toISOString(),
      finishedAt: null,
      error: null,
    };
    this.remember(task);
    const run = this.run(task, this.toStoreFilter(filter, task.origin));
    this.running.add(run);
    void run.finally(() => this.running.delete(run));
    return task;
  }

  get(id: string): RedriveTask | undefined {
    return this.tasks.get(id);
  }

  list(): RedriveTask[] {
    return [...this.tasks.values()].reverse();
  }

  /** Checks for transient entries past their cool-down every `intervalMs` (off when autoMaxRedrives is 0). */
  startAuto(intervalMs: number): void {
    if (this.options.autoMaxRedrives === 0 || this.autoTimer) return;
    this.autoTimer = setInterval(() => {
      if (this.autoTask?.state === 'running') return;
      this.autoTask = this.start({ reason: 'transient', olderThanMs: this.options.autoCooldownMs }, { limit: AUTO_BATCH, origin: 'auto' });
    }, intervalMs);
    this.autoTimer.unref();
  }

  /** Stops every task (they end `cancelled`) and the automatic redrive; idempotent. */
  async close(): Promise<void> {
    clearInterval(this.autoTimer);
    this.stop.abort();
    await Promise.allSettled([...this.running]);
  }

  private toStoreFilter(filter: RedriveFilter, origin: 'auto' | 'manual'): () => DlqFilter {
    // Fixed when the task starts: an entry that a redriven job puts back in the DLQ during the task is
    // newer than this, so the task does not move it again (and again) as it pages on.
    const updatedBefore = this.options.clock.now() - (filter.olderThanMs ?? 0);
    return () => {
      const storeFilter: DlqFilter = { updatedBefore };
      if (filter.reason) storeFilter.reason = filter.reason;
      // The cap applies to the automatic redrive only: an operator may always move an entry by hand.
      if (origin === 'auto') storeFilter.redrivesBelow = this.options.autoMaxRedrives;
      return storeFilter;
    };
  }

  private async run(task: RedriveTask, filter: () => DlqFilter): Promise<void> {
    const { store, clock, events } = this.options;
    const spacingMs = 1000 / task.ratePerSecond;
    let cursor: string | undefined;
    try {
      outer: while (task.moved < task.limit) {
        const page = await store.dlq.list({ limit: Math.min(PAGE_SIZE, task.limit - task.moved), filter: filter(), ...(cursor ? { cursor } : {}) });
        for (const entry of page.items) {
          if (this.stop.signal.aborted) break outer;
          const startedAt = clock.now();
          if (!(await this.stillWanted(entry, task.origin))) {
            task.skipped++;
            continue;
          }
          // A synchronous entry's job takes the entry's id: its sealed headers name that id as their associated data.
          const jobId = entry.jobId === null ? entry.id : randomUUID();
          const job = await store.dlq.redrive(entry.id, { now: clock.now(), newJobId: jobId, newJobKey: `relay-job-${jobId}` });
          if (job) {
            task.moved++;
            events.emit('job', { action: 'redriven' });
            this.options.onMoved();
          } else {
            task.skipped++;
          }
          if (task.moved >= task.limit) break outer;
          const waitMs = spacingMs - (clock.now() - startedAt);
          if (waitMs > 0) await delay(waitMs, undefined, { signal: this.stop.signal });
        }
        if (page.nextCursor === null) break;
        cursor = page.nextCursor;
      }
      task.state = this.stop.signal.aborted ? 'cancelled' : 'completed';
    } catch (error) {
      if (this.stop.signal.aborted) task.state = 'cancelled';
      else {
        task.state = 'failed';
        task.error = (error as Error).message;
        this.options.onError(error, 'dlq.redrive');
      }
    } finally {
      task.finishedAt = new Date(clock.now()).toISOString();
    }
  }

  /**
   * A synchronous request's client was answered 502/504 and owns its retry (the
   * contract tells it to resend): an automatic redrive would deliver it behind
   * the client's back, so only async jobs are redriven automatically. By hand,
   * a keyed entry whose key has since been answered (the client resent it) is
   * obsolete and is deleted instead of being sent again.
   */
  private async stillWanted(entry: DlqSummary, origin: 'auto' | 'manual'): Promise<boolean> {
    if (entry.jobId !== null) return true;
    if (origin === 'auto') return false;
    // A keyless request that may have been processed is never sent again by a filter: only a forced replay may.
    if (entry.idempotencyKey === null && deliveryOf(entry.attempts) === 'unknown') return false;
    if (entry.keyScope === null || entry.fingerprint === null) return true;
    const { store, clock } = this.options;
    const now = clock.now();
    const held = await store.idempotency.reserve(entry.keyScope, entry.fingerprint, { now, leaseMs: 1_000, ttlMs: 1_000 });
    switch (held.kind) {
      case 'reserved':
        // Only looking: give the key back at once; the job made from the entry takes the key over atomically.
        await store.idempotency.release(entry.keyScope, held.token);
        return true;
      case 'completed':
        await store.dlq.remove(entry.id);
        this.options.events.emit('dlq', { action: 'deleted' });
        return false;
      case 'job':
      case 'in_flight':
      case 'mismatch':
      case 'outcome_unknown':
        return false;
    }
  }

  private remember(task: RedriveTask): void {
    this.tasks.set(task.id, task);
    for (const id of this.tasks.keys()) {
      if (this.tasks.size <= KEPT_TASKS) break;
      if (this.tasks.get(id)?.state !== 'running') this.tasks.delete(id);
    }
  }
}
