import { abortControllerForMany } from '../abort.js';
import type { Clock, Random } from '../clock.js';
import type { DownstreamResponse } from '../downstream/client.js';
import type { UpstreamSet } from '../downstream/upstreams.js';
import { isRefusal } from '../downstream/upstreams.js';
import type { WorkerPool } from '../queue/worker-pool.js';
import type { RelayEvents } from '../relay-events.js';
import { fullJitterDelayMs, parseRetryAfterMs } from '../resilience/backoff.js';
import { classifyError, classifyStatus, isAttemptError } from '../resilience/classify.js';
import type { AttemptRecord, DlqCause, Job, JobLease, RelayStore, StoredResponse } from '../storage/types.js';

export interface JobRunnerOptions {
  store: RelayStore;
  pool: WorkerPool;
  upstreams: UpstreamSet;
  events: RelayEvents;
  clock: Clock;
  random: Random;
  /** Attempts in total before a job goes to the DLQ. @default 8 */
  maxAttempts: number;
  /** Full-jitter backoff between a job's attempts: longer than a synchronous request's. @default 1000 / 60000 */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Hard timeout of one attempt (DOWNSTREAM_TIMEOUT_MS). */
  attemptTimeoutMs: number;
  /** How long a worker holds a job; a dead worker's jobs are taken over after it. @default 30000 */
  leaseMs: number;
  /** How often to look for due jobs when nothing wakes the runner. @default 250 */
  pollMs: number;
  onError: (error: unknown, context: string) => void;
}

/** An attempt must end (and its outcome be stored) this long before its lease does. */
const LEASE_MARGIN_MS = 1_000;
/** The longest downstream Retry-After a job waits for. */
const MAX_RETRY_AFTER_MS = 3_600_000;
/** A job the pool could not take (queue full, shutting down) is offered again after this. */
const REQUEUE_DELAY_MS = 200;

type Finish =
  | { kind: 'delivered'; record: AttemptRecord; response: StoredResponse }
  | { kind: 'retry'; record: AttemptRecord | null; availableAt: number; lastError: string }
  | { kind: 'dead'; record: AttemptRecord; response: StoredResponse | null; lastError: string; status: number; permanent: boolean; cause: DlqCause };

/**
 * Delivers async jobs at least once. It leases due jobs from the store while
 * the worker pool has room, makes ONE attempt per lease through the same
 * upstreams (breaker, rate limit with warm-up, AIMD through the pool) as a
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
      const { pool } = this.options;
      // Jobs fill idle capacity only: synchronous callers waiting in the queue go first.
      const free = pool.concurrencyLimit - pool.busy - pool.depth;
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
    const { pool, clock } = this.options;
    const deadlineAt = clock.now() + this.options.leaseMs - LEASE_MARGIN_MS;
    try {
      // The outcome is stored inside the pool task, so a drained pool means stored outcomes.
      await pool.run(() => this.attemptAndStore(lease, deadlineAt), { deadlineAt, priority: lease.job.priority });
    } catch (error) {
      // The pool refused it (full with synchronous work, or its deadline passed while queued): not an attempt.
      await this.store(lease, { kind: 'retry', record: null, availableAt: clock.now() + REQUEUE_DELAY_MS, lastError: lease.job.lastError ?? 'waiting for a worker' });
      if (!isPoolRefusal(error)) this.options.onError(error, 'jobs.deliver');
    }
  }

  private async attemptAndStore(lease: JobLease, deadlineAt: number): Promise<void> {
    await this.store(lease, await this.attempt(lease.job, deadlineAt));
  }

  private async attempt(job: Job, deadlineAt: number): Promise<Finish> {
    const { clock, upstreams } = this.options;
    const startedAt = clock.now();
    const at = new Date(startedAt).toISOString();
    const attemptNumber = job.attempts.length + 1;
    // Each redrive from the DLQ buys another full round of attempts; the history keeps every one.
    const attemptLimit = this.options.maxAttempts * (job.redrives + 1);
    let response: (DownstreamResponse & { upstream?: string }) | undefined;
    try {
      // The job's key always goes along (a job redriven from a keyless synchronous entry has none stored).
      const headers = job.headers['idempotency-key'] ? job.headers : { ...job.headers, 'idempotency-key': job.idempotencyKey };
      response = await upstreams.send(
        { body: job.body, headers },
        { timeoutMs: Math.min(this.options.attemptTimeoutMs, deadlineAt - clock.now()), deadlineAt, signal: this.hardStop.signal },
      );
    } catch (error) {
      if (isRefusal(error)) {
        // Nothing was sent (breaker open, rate limited): wait for the next probe without spending an attempt.
        return { kind: 'retry', record: null, availableAt: clock.now() + error.retryAfterMs, lastError: error.message };
      }
      if (!isAttemptError(error)) throw error;
      const classification = classifyError(error);
      if (classification.kind === 'aborted') {
        return { kind: 'retry', record: null, availableAt: clock.now(), lastError: 'the relay stopped during the attempt' };
      }
      const record: AttemptRecord = {
        at,
        outcome: error.code === 'ATTEMPT_TIMEOUT' ? 'timeout' : 'connection_error',
        durationMs: clock.now() - startedAt,
        error: error.message,
      };
      this.emitAttempt(record);
      const timedOut = error.code === 'ATTEMPT_TIMEOUT';
      return this.transientFailure(attemptNumber, attemptLimit, record, classification.kind === 'transient' ? classification.reason : error.message, timedOut, undefined);
    }
    const record: AttemptRecord = {
      at,
      outcome: response.status < 400 ? 'success' : 'http_error',
      status: response.status,
      durationMs: clock.now() - startedAt,
      ...(response.upstream !== undefined ? { upstream: response.upstream } : {}),
    };
    this.emitAttempt(record);
    const stored = toStored(response);
    const classification = classifyStatus(response.status);
    if (classification.kind === 'definitive') {
      if (response.status < 400) return { kind: 'delivered', record, response: stored };
      // Nobody is waiting for an async answer: a refusal by the downstream must be seen by an operator.
      return { kind: 'dead', record, response: stored, lastError: `HTTP ${response.status}`, status: response.status, permanent: true, cause: 'non_retryable' };
    }
    if (classification.kind === 'permanent') {
      return { kind: 'dead', record, response: stored, lastError: classification.reason, status: 502, permanent: true, cause: 'non_retryable' };
    }
    return this.transientFailure(attemptNumber, attemptLimit, record, `HTTP ${response.status}`, false, response.headers['retry-after']);
  }

  private transientFailure(
    attemptNumber: number,
    attemptLimit: number,
    record: AttemptRecord,
    reason: string,
    timedOut: boolean,
    retryAfter: string | undefined,
  ): Finish {
    const { clock } = this.options;
    if (attemptNumber >= attemptLimit) {
      return { kind: 'dead', record, response: null, lastError: reason, status: timedOut ? 504 : 502, permanent: false, cause: timedOut ? 'timeout' : 'attempts_exhausted' };
    }
    const roundAttempt = (attemptNumber - 1) % this.options.maxAttempts;
    const backoffMs = fullJitterDelayMs(roundAttempt, this.options, this.options.random);
    // A downstream's Retry-After is honoured up to an hour: a wild value must not park a job forever.
    const retryAfterMs = Math.min(parseRetryAfterMs(retryAfter, clock.now()) ?? 0, MAX_RETRY_AFTER_MS);
    return { kind: 'retry', record, availableAt: clock.now() + Math.max(backoffMs, retryAfterMs), lastError: reason };
  }

  private async store({ job, token }: JobLease, finish: Finish): Promise<void> {
    const { store, clock, events } = this.options;
    const now = clock.now();
    try {
      switch (finish.kind) {
        case 'delivered':
          if (await store.jobs.complete(job.id, token, { attempts: [finish.record], response: finish.response, now })) {
            events.emit('job', { action: 'delivered' });
          }
          return;
        case 'retry':
          if (
            await store.jobs.reschedule(job.id, token, {
              attempts: finish.record ? [finish.record] : [],
              lastError: finish.lastError,
              availableAt: finish.availableAt,
              now,
            })
          ) {
            events.emit('job', { action: 'rescheduled' });
          }
          return;
        case 'dead': {
          const entry = await store.jobs.bury(job.id, token, {
            attempts: [finish.record],
            response: finish.response,
            dlq: {
              idempotencyKey: job.idempotencyKey,
              fingerprint: job.fingerprint,
              body: job.body,
              headers: job.headers,
              attempts: [...job.attempts, finish.record],
              lastError: finish.lastError,
              status: finish.status,
              reason: finish.permanent ? 'permanent' : 'transient',
              cause: finish.cause,
              now,
            },
          });
          if (entry) {
            events.emit('job', { action: 'dead' });
            events.emit('dlq', { action: 'added' });
          }
          return;
        }
      }
    } catch (error) {
      // The lease expires and the job is offered again: at least once, never lost.
      this.options.onError(error, `jobs.${finish.kind}`);
    }
  }

  private emitAttempt(record: AttemptRecord): void {
    this.options.events.emit('attempt', { outcome: record.outcome, status: record.status, durationMs: record.durationMs, upstream: record.upstream });
  }
}

function isPoolRefusal(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'QUEUE_FULL' || code === 'DEADLINE_EXCEEDED' || code === 'CLIENT_CLOSED' || code === 'CIRCUIT_OPEN';
}

function toStored(response: DownstreamResponse): StoredResponse {
  const headers: Record<string, string> = {};
  if (response.headers['content-type']) headers['content-type'] = response.headers['content-type'];
  return { status: response.status, headers, body: response.body };
}
