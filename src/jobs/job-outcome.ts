import type { Clock, Random } from '../clock.js';
import type { AttemptRecord } from '../domain.js';
import type { RelayEvents } from '../relay-events.js';
import { fullJitterDelayMs, parseRetryAfterMs } from '../resilience/backoff.js';
import type { DlqCause, JobLease, RelayStore, StoredResponse } from '../storage/types.js';

/** How a leased job ends this turn: `attempts` are the ones made under the lease (none, one, or a synchronous caller's few). */
export type JobFinish =
  | { kind: 'delivered'; attempts: AttemptRecord[]; response: StoredResponse }
  | { kind: 'retry'; attempts: AttemptRecord[]; availableAt: number; lastError: string }
  | { kind: 'dead'; attempts: AttemptRecord[]; response: StoredResponse | null; lastError: string; status: number; permanent: boolean; cause: DlqCause };

/** The schedule of a job's attempts (JOB_MAX_ATTEMPTS, JOB_RETRY_BASE_DELAY_MS, JOB_RETRY_MAX_DELAY_MS). */
export interface JobSchedule {
  /** Attempts in total before a job goes to the DLQ (per round: each redrive buys another). @default 8 */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

/** The longest downstream Retry-After a job waits for: a wild value must not park a job forever. */
const MAX_RETRY_AFTER_MS = 3_600_000;

/**
 * When a job whose `attemptNumber`-th attempt just failed (retryably) may be
 * tried again: full jitter on the job's schedule, at least the downstream's
 * Retry-After (up to an hour). null when that was its last attempt.
 */
export function nextJobAttemptAt(
  attemptNumber: number,
  attemptLimit: number,
  schedule: JobSchedule,
  retryAfter: string | undefined,
  clock: Clock,
  random: Random,
): number | null {
  if (attemptNumber >= attemptLimit) return null;
  const roundAttempt = (attemptNumber - 1) % schedule.maxAttempts;
  const backoffMs = fullJitterDelayMs(roundAttempt, schedule, random);
  const retryAfterMs = Math.min(parseRetryAfterMs(retryAfter, clock.now()) ?? 0, MAX_RETRY_AFTER_MS);
  return clock.now() + Math.max(backoffMs, retryAfterMs);
}

/**
 * Stores how a leased job ended: delivered, back to the queue, or dead in the
 * DLQ (one atomic step), and tells the events (`asJob` false: not the job
 * events, for a job its client never saw as one). `stored` false: the lease was
 * no longer `token`'s (taken over), nothing changed. A store failure throws: the
 * lease then expires and the job is offered again, at least once, never lost.
 */
export async function storeJobFinish(
  deps: { store: RelayStore; clock: Clock; events: RelayEvents },
  { job, token }: JobLease,
  finish: JobFinish,
  asJob = true,
): Promise<{ stored: boolean; dlqId: string | null }> {
  const { store, clock, events } = deps;
  const now = clock.now();
  switch (finish.kind) {
    case 'delivered': {
      const stored = await store.jobs.complete(job.id, token, { attempts: finish.attempts, response: finish.response, now });
      if (stored && asJob) events.emit('job', { action: 'delivered' });
      return { stored, dlqId: null };
    }
    case 'retry': {
      const stored = await store.jobs.reschedule(job.id, token, {
        attempts: finish.attempts,
        lastError: finish.lastError,
        availableAt: finish.availableAt,
        now,
      });
      if (stored && asJob) events.emit('job', { action: 'rescheduled' });
      return { stored, dlqId: null };
    }
    case 'dead': {
      const entry = await store.jobs.bury(job.id, token, {
        attempts: finish.attempts,
        response: finish.response,
        dlq: {
          idempotencyKey: job.idempotencyKey,
          fingerprint: job.fingerprint,
          body: job.body,
          headers: job.headers,
          attempts: [...job.attempts, ...finish.attempts],
          lastError: finish.lastError,
          status: finish.status,
          reason: finish.permanent ? 'permanent' : 'transient',
          cause: finish.cause,
          now,
        },
      });
      if (!entry) return { stored: false, dlqId: null };
      if (asJob) events.emit('job', { action: 'dead' });
      events.emit('dlq', {
        action: 'added',
        id: entry.id,
        route: job.request.route,
        reason: entry.reason,
        status: finish.status,
        attempts: entry.attempts.length,
        lastError: finish.lastError,
        jobId: job.id,
      });
      return { stored: true, dlqId: entry.id };
    }
  }
}
