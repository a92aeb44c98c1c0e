import { setTimeout as sleep } from 'node:timers/promises';
import { abortControllerForMany } from '../abort.js';
import type { Clock, Random } from '../clock.js';
import type { AttemptRecord } from '../domain.js';
import type { Tracing } from '../observability/tracing.js';
import type { RelayEvents } from '../relay-events.js';
import { runAttempt } from '../resilience/attempt.js';
import { headerValue } from '../resilience/retry.js';
import type { RoutePipeline, RouteTable } from '../routes/route-pipeline.js';
import type { HeaderVault } from '../secrets/header-vault.js';
import { toStored } from '../stored-answer.js';
import type { DlqCause, Job, JobLease, RelayStore, StoredResponse } from '../storage/types.js';
import { nextJobAttemptAt, storeJobFinish, type JobFinish } from './job-outcome.js';

export interface JobRunnerOptions {
  store: RelayStore;
  routes: RouteTable;
  vault: HeaderVault;
  events: RelayEvents;
  clock: Clock;
  random: Random;
  /** Attempts in total before a job goes to the DLQ. @default 8 */
  maxAttempts: number;
  /** Full-jitter backoff between a job's attempts: longer than a synchronous request's. @default 1000 / 60000 */
  baseDelayMs: number;
  maxDelayMs: number;
  /** How long a worker holds a job; a dead worker's jobs are taken over after it. @default 30000 */
  leaseMs: number;
  /** How often to look for due jobs when nothing wakes the runner. @default 250 */
  pollMs: number;
  /**
   * At most this share of a route's concurrency limit goes to jobs (redrives
   * included); synchronous callers keep the rest (JOB_MAX_SHARE, the bulkhead).
   * At least one job per route always runs. @default 0.5
   */
  maxShare?: number;
  onError: (error: unknown, context: string) => void;
  /** OpenTelemetry tracing: a root span per job attempt, linked to the request that accepted the job. @default undefined (off) */
  tracing?: Tracing | undefined;
}

/** An attempt must end (and its outcome be stored) this long before its lease does. */
const LEASE_MARGIN_MS = 1_000;
const DEFAULT_MAX_SHARE = 0.5;
/** A job the pool could not take (queue full, shutting down) is offered again after this. */
const REQUEUE_DELAY_MS = 200;
/** A job of a paused route is offered again after this (resuming the route wakes the runner sooner). */
const PAUSED_RECHECK_MS = 1_000;

type Finish =
  | { kind: 'delivered'; record: AttemptRecord; response: StoredResponse }
  | { kind: 'retry'; record: AttemptRecord | null; availableAt: number; lastError: string }
  /** `record` null: no new attempt (the job had used its attempts before this lease). */
  | { kind: 'dead'; record: AttemptRecord | null; response: StoredResponse | null; lastError: string; status: number; permanent: boolean; cause: DlqCause };

/**
 * Delivers async jobs at least once. It leases due jobs from the store while
 * the worker pool has room, makes ONE attempt per lease through the same
 * downstreams (breaker, rate limit with warm-up, AIMD through the pool) as a
 * synchronous request, and stores the outcome: delivered, back to the queue
 * with a backoff (the schedule survives restarts because it is in the store),
 * or dead in the DLQ. A worker that dies mid-attempt leaves its lease to
 * expire; another worker (or this one after a restart) takes the job over. The
 * downstream always gets the job's Idempotency-Key, so a redelivery can be
 * recognised: at-least-once delivery plus the key is effectively once.
 */
export class JobRunner {
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private wakeRequested = false;
  private stopped = true;
  private readonly hardStop = abortControllerForMany();
  private readonly inFlight = new Set<Promise<void>>();
  private currentTick: Promise<void> = Promise.resolve();
  /** Jobs of each route from lease to stored outcome (waiting for the backlog pacer included). */
  private readonly jobsByRoute = new Map<string, number>();

  constructor(private readonly options: JobRunnerOptions) {}

  /** Jobs leased by this runner and not finished yet. */
  get active(): number {
    return this.inFlight.size;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(0);
  }

  /** Look for work now (a job was accepted, or a worker freed up). */
  wake(): void {
    if (this.stopped) return;
    if (this.ticking) {
      this.wakeRequested = true;
      return;
    }
    this.schedule(0);
  }

  /**
   * Stop leasing; jobs already leased go on (the pool drains them). Resolves once
   * a lease call in progress has returned and its jobs are handed to the pool, so
   * that shutdown drains them rather than closing the store under them.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.currentTick;
  }

  /** Abort attempts still running (shutdown grace is over); their jobs go back to the queue. */
  abortInFlight(): void {
    this.hardStop.abort();
  }

  /** Resolves when every leased job has stored its outcome. */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.currentTick = this.tick();
    }, delayMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.stopped || this.ticking) return;
    this.ticking = true;
    this.wakeRequested = false;
    let full = false;
    try {
      // Jobs fill idle capacity only: synchronous callers waiting in the queue go first.
      // Within each route's job share (a backlog never takes the synchronous callers' part of the pool).
      let free = 0;
      for (const route of this.options.routes.all()) {
        if (route.pool.paused) continue;
        const room = route.pool.concurrencyLimit - route.pool.busy - route.pool.depth;
        free += Math.max(0, Math.min(room, this.jobShare(route) - (this.jobsByRoute.get(route.name) ?? 0)));
      }
      if (free > 0) {
        const leases = await this.options.store.jobs.lease({ now: this.options.clock.now(), leaseMs: this.options.leaseMs, limit: free });
        for (const lease of leases) this.track(this.deliver(lease));
        full = leases.length === free;
      }
    } catch (error) {
      this.options.onError(error, 'jobs.lease');
    } finally {
      this.ticking = false;
    }
    if (this.stopped) return;
    this.schedule(full || this.wakeRequested ? 0 : this.options.pollMs);
  }

  private track(delivery: Promise<void>): void {
    this.inFlight.add(delivery);
    void delivery.finally(() => {
      this.inFlight.delete(delivery);
      this.wake();
    });
  }

  private async deliver(lease: JobLease): Promise<void> {
    const { clock } = this.options;
    const route = this.options.routes.get(lease.job.request.route);
    if (!route) {
      const record: AttemptRecord = { at: new Date(clock.now()).toISOString(), outcome: 'aborted', durationMs: 0, error: 'route gone', sent: 'no' };
      await this.store(lease, { kind: 'dead', record, response: null, lastError: `ROUTE_GONE: the route ${JSON.stringify(lease.job.request.route)} no longer exists`, status: 409, permanent: true, cause: 'non_retryable' });
      return;
    }
    if (route.pool.paused) {
      // Not an attempt: held by an operator (POST /admin/routes/{name}/pause) until resumed.
      await this.store(lease, { kind: 'retry', record: null, availableAt: clock.now() + PAUSED_RECHECK_MS, lastError: lease.job.lastError ?? 'the route is paused' });
      return;
    }
    // A lease is not per route: one leased for a route already at its share waits for the next lease.
    const running = this.jobsByRoute.get(route.name) ?? 0;
    if (running >= this.jobShare(route)) {
      await this.store(lease, { kind: 'retry', record: null, availableAt: clock.now() + REQUEUE_DELAY_MS, lastError: lease.job.lastError ?? 'waiting for the job share of the route' });
      return;
    }
    this.jobsByRoute.set(route.name, running + 1);
    try {
      await this.deliverWithinShare(route, lease);
    } finally {
      const left = (this.jobsByRoute.get(route.name) ?? 1) - 1;
      if (left > 0) this.jobsByRoute.set(route.name, left);
      else this.jobsByRoute.delete(route.name);
    }
  }

  /** Whether the route's jobs run at their share: more would run under a higher limit (AIMD counts that limit as used). */
  atShare(routeName: string): boolean {
    // Asked on every relayed call (AIMD's use): a route with no job running answers without the lookup.
    const running = this.jobsByRoute.get(routeName);
    if (running === undefined) return false;
    const route = this.options.routes.get(routeName);
    return route !== undefined && running >= this.jobShare(route);
  }

  /** The most jobs of `route` at once: its share of the route's concurrency limit, at least one. */
  private jobShare(route: RoutePipeline): number {
    return Math.max(1, Math.floor((this.options.maxShare ?? DEFAULT_MAX_SHARE) * route.pool.concurrencyLimit));
  }

  private async deliverWithinShare(route: RoutePipeline, lease: JobLease): Promise<void> {
    const { clock } = this.options;
    const deadlineAt = clock.now() + this.options.leaseMs - LEASE_MARGIN_MS;
    const pacer = route.backlogPacer;
    if (pacer?.warmingUp) {
      const waitMs = pacer.reserve(Math.max(0, deadlineAt - clock.now() - LEASE_MARGIN_MS));
      try {
        if (waitMs === null) throw new Error('backlog pacing: no token before the lease ends');
        if (waitMs > 0) await sleep(waitMs, undefined, { signal: this.hardStop.signal });
      } catch {
        // Not an attempt: the job goes back, due at once, for the next lease.
        await this.store(lease, { kind: 'retry', record: null, availableAt: clock.now(), lastError: lease.job.lastError ?? 'waiting for the warm-up' });
        return;
      }
    }
    try {
      // The outcome is stored inside the pool task, so a drained pool means stored outcomes.
      await route.pool.run(() => this.attemptAndStore(route, lease, deadlineAt), { deadlineAt, priority: lease.job.priority });
    } catch (error) {
      // The pool refused it (full with synchronous work, or its deadline passed while queued): not an attempt.
      await this.store(lease, { kind: 'retry', record: null, availableAt: clock.now() + REQUEUE_DELAY_MS, lastError: lease.job.lastError ?? 'waiting for a worker' });
      if (!isPoolRefusal(error)) this.options.onError(error, 'jobs.deliver');
    }
  }

  private async attemptAndStore(route: RoutePipeline, lease: JobLease, deadlineAt: number): Promise<void> {
    await this.store(lease, await this.attempt(route, lease.job, deadlineAt));
  }

  private async attempt(route: RoutePipeline, job: Job, deadlineAt: number): Promise<Finish> {
    const { clock } = this.options;
    const attemptNumber = job.attempts.length + 1;
    // Each redrive from the DLQ buys another full round of attempts; the history keeps every one.
    const attemptLimit = this.options.maxAttempts * (job.redrives + 1);
    if (job.attempts.length >= attemptLimit) {
      // Its last attempt was cut off by a worker that died (recorded as interrupted): no attempt beyond the limit.
      const lastError = job.lastError ?? 'the last attempt was interrupted';
      return { kind: 'dead', record: null, response: null, lastError, status: 502, permanent: false, cause: 'attempts_exhausted' };
    }
    let headers: Record<string, string>;
    let path: string;
    try {
      headers = this.options.vault.open(job.headers, job.id, 422);
      path = this.options.vault.openPath(job.request.path, job.id, 422);
    } catch (error) {
      // Never a send without the credentials the client gave: an operator must see it.
      const record: AttemptRecord = { at: new Date(clock.now()).toISOString(), outcome: 'aborted', durationMs: 0, error: (error as Error).message, sent: 'no' };
      return { kind: 'dead', record, response: null, lastError: 'SECRET_KEY_REQUIRED: the stored credentials cannot be read (RELAY_SECRET_KEY unset or changed)', status: 422, permanent: true, cause: 'non_retryable' };
    }
    // The job's key always goes along (a job redriven from a keyless synchronous entry has none stored).
    headers[route.keyHeader] ??= job.idempotencyKey;
    const { method } = job.request;
    const forward = { method, path, headers, body: method === 'GET' || method === 'HEAD' ? null : job.body };
    const watcher = this.options.tracing?.startJobAttempt({ route: route.name, jobId: job.id, attemptNumber, traceparent: headers.traceparent });
    const result = await runAttempt(
      () =>
        route.downstreams.send(forward, {
          timeoutMs: Math.min(route.spec.timeoutMs, deadlineAt - clock.now()),
          deadlineAt,
          signal: this.hardStop.signal,
          watcher,
          // Its own id: every attempt of a job, after a restart or a redrive too, is on one canary side.
          canaryId: job.id,
        }),
      { method, keyed: true },
      clock,
    );
    watcher?.end(result);
    switch (result.kind) {
      case 'refused':
        // Nothing was sent (breaker open, rate limited): wait for the next probe without spending an attempt.
        return { kind: 'retry', record: null, availableAt: clock.now() + result.refusal.retryAfterMs, lastError: result.refusal.message };
      case 'aborted':
        return { kind: 'retry', record: null, availableAt: clock.now(), lastError: 'the relay stopped during the attempt' };
      case 'answered': {
        this.emitAttempt(route.name, result.record);
        const stored = toStored(result.response);
        if (result.response.status < 400) return { kind: 'delivered', record: result.record, response: stored };
        // Nobody is waiting for an async answer: a refusal by the downstream must be seen by an operator.
        const status = result.response.status;
        return { kind: 'dead', record: result.record, response: stored, lastError: `HTTP ${status}`, status, permanent: true, cause: 'non_retryable' };
      }
      case 'failed': {
        this.emitAttempt(route.name, result.record);
        if (!result.retryable) {
          const response = result.response ? toStored(result.response) : null;
          return { kind: 'dead', record: result.record, response, lastError: result.reason, status: 502, permanent: true, cause: 'non_retryable' };
        }
        return this.transientFailure(attemptNumber, attemptLimit, result.record, result.reason, result.timedOut, headerValue(result.response?.headers['retry-after']));
      }
    }
  }

  private transientFailure(
    attemptNumber: number,
    attemptLimit: number,
    record: AttemptRecord,
    reason: string,
    timedOut: boolean,
    retryAfter: string | undefined,
  ): Finish {
    const availableAt = nextJobAttemptAt(attemptNumber, attemptLimit, this.options, retryAfter, this.options.clock, this.options.random);
    if (availableAt === null) {
      return { kind: 'dead', record, response: null, lastError: reason, status: timedOut ? 504 : 502, permanent: false, cause: timedOut ? 'timeout' : 'attempts_exhausted' };
    }
    return { kind: 'retry', record, availableAt, lastError: reason };
  }

  private async store(lease: JobLease, finish: Finish): Promise<void> {
    try {
      await storeJobFinish(this.options, lease, toJobFinish(finish));
    } catch (error) {
      // The lease expires and the job is offered again: at least once, never lost.
      this.options.onError(error, `jobs.${finish.kind}`);
    }
  }

  private emitAttempt(route: string, record: AttemptRecord): void {
    this.options.events.emit('attempt', { route, outcome: record.outcome, status: record.status, durationMs: record.durationMs, upstream: record.upstream });
  }
}

/** One lease makes at most one attempt: its record, or none. */
function toJobFinish(finish: Finish): JobFinish {
  const attempts = finish.record ? [finish.record] : [];
  switch (finish.kind) {
    case 'delivered':
      return { kind: 'delivered', attempts, response: finish.response };
    case 'retry':
      return { kind: 'retry', attempts, availableAt: finish.availableAt, lastError: finish.lastError };
    case 'dead':
      return { kind: 'dead', attempts, response: finish.response, lastError: finish.lastError, status: finish.status, permanent: finish.permanent, cause: finish.cause };
  }
}

function isPoolRefusal(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'QUEUE_FULL' || code === 'DEADLINE_EXCEEDED' || code === 'CLIENT_CLOSED' || code === 'CIRCUIT_OPEN';
}
