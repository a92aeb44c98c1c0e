import type { Clock, Random } from './clock.js';
import { ServiceUnavailableError } from './errors.js';
import { nextJobAttemptAt, type JobFinish, type JobSchedule } from './jobs/job-outcome.js';
import type { JobService } from './jobs/job-service.js';
import type { CallResponse } from './resilience/attempt.js';
import { headerValue, type RetryResult } from './resilience/retry.js';
import type { RelayAnswer } from './domain.js';
import type { RelayRequest, RelayService } from './relay-service.js';
import { toStored } from './stored-answer.js';
import type { Job, JobLease } from './storage/types.js';
import { exhaustedError } from './unanswered.js';

/** How a `Prefer: respond-async, wait=N` request is answered. */
export type WaitOutcome =
  /** Within N seconds (or the key's stored answer): as a synchronous request. */
  | { kind: 'answered'; answer: RelayAnswer }
  /** A job: 202 + Location. `created` false: the key already had this job. */
  | { kind: 'job'; job: Job; created: boolean };

export interface SyncThenAsyncDeps {
  service: RelayService;
  jobs: JobService;
  clock: Clock;
}

/** The hold outlives the request's deadline by this much: the last attempt's outcome is stored after it ends. */
const HOLD_MARGIN_MS = 5_000;

/**
 * `Prefer: respond-async, wait=N` (RFC 7240): the request is stored as a job
 * first, held by this caller (so a request that could not be stored is refused
 * before any attempt, and no job worker takes it meanwhile), then tried through
 * the route's pipeline for up to N seconds. An answer within N is returned as
 * usual and completes the job; at N (or earlier, when the retries left are the
 * job's: breaker open, queue full, the route's attempts spent) the caller gets
 * the job, and the job runner gets it with the attempts spent and its next due
 * time. An attempt in flight at N is left to finish and is the job's: its
 * outcome is stored before the job is handed over, so nothing is sent twice.
 * With every breaker of the route open the job is queued at once.
 */
export async function respondWithin(deps: SyncThenAsyncDeps, request: RelayRequest, waitMs: number): Promise<WaitOutcome> {
  const { service, jobs, clock } = deps;
  if (service.isClosing) throw new ServiceUnavailableError('The relay is shutting down and accepts no new work.');
  const { route } = request;
  const deadlineAt = request.receivedAt + service.requestDeadlineMs;
  const waitEndsAt = Math.min(request.receivedAt + waitMs, deadlineAt);
  const hold = { leaseMs: Math.max(1, deadlineAt - clock.now()) + HOLD_MARGIN_MS };
  const accepted = await jobs.accept({ ...request, priority: request.priority ?? 'normal' }, hold);
  if (accepted.kind === 'answered') {
    return { kind: 'answered', answer: { ...accepted.response, attempts: 0, replayed: true } };
  }
  const { job, created, token } = accepted;
  if (token === undefined) return { kind: 'job', job, created };
  // "Queue it for later": nothing would be sent now, so the runner has it at once. Asked with
  // the job's id, the canary side its attempts would take.
  if (route.downstreams.allOpenForMs(job.id) !== null) {
    jobs.announce();
    const handover: JobFinish = { kind: 'retry', attempts: [], availableAt: clock.now(), lastError: 'every breaker of the route was open' };
    const { stored } = await jobs.settle({ job, token }, handover, true).catch(() => ({ stored: false }));
    return { kind: 'job', job: stored ? { ...job, state: 'queued' } : job, created: true };
  }

  const held = new HeldRun(deps, { job, token }, request, deadlineAt);
  let timer: NodeJS.Timeout | undefined;
  const waitOver = new Promise<'wait_over'>((resolve) => {
    timer = setTimeout(() => resolve('wait_over'), Math.max(0, waitEndsAt - clock.now()));
  });
  try {
    const first = await Promise.race([held.result, waitOver]);
    if (first !== 'wait_over') return await held.settleInTime(first);
  } finally {
    clearTimeout(timer);
  }
  held.stopRetrying();
  jobs.announce();
  // In the background: the attempt in flight (if any) ends, then the job is stored and handed over.
  jobs.track(held.result.then((result) => held.settleLate(result)));
  return { kind: 'job', job, created: true };
}

/** One held job's synchronous part, and how its result is stored on the job. */
class HeldRun {
  readonly result: Promise<RetryResult | { kind: 'not_run'; reason: string }>;
  private readonly stop = new AbortController();
  private lastResponse: CallResponse | undefined;
  private readonly schedule: { schedule: JobSchedule; random: Random };

  constructor(
    private readonly deps: SyncThenAsyncDeps,
    private readonly lease: JobLease,
    request: RelayRequest,
    deadlineAt: number,
  ) {
    this.schedule = deps.jobs.schedule;
    const { job } = lease;
    const headers = { ...request.headers };
    // Every delivery of a job carries its key, the first ones made here included.
    headers[request.route.keyHeader] ??= job.idempotencyKey;
    // The job's id is its canary side's: the held request and the job it may become are on one side.
    this.result = runHeld(deps.service, { ...request, headers, sendKey: job.idempotencyKey, canaryId: job.id }, deadlineAt, this.stop, (response) => {
      this.lastResponse = response;
    }).catch((error: unknown) => ({ kind: 'not_run' as const, reason: reasonOf(error) }));
  }

  /** N seconds are over: no new attempt (a backoff is cut short); one in flight runs to its end. */
  stopRetrying(): void {
    this.stop.abort();
  }

  /** Ended within N: an answer (or a failure with no retry left) is the client's, anything else makes it a job. */
  async settleInTime(result: RetryResult | { kind: 'not_run'; reason: string }): Promise<WaitOutcome> {
    const { jobs } = this.deps;
    if (result.kind === 'answered') {
      const { response } = result;
      // The client has its answer; a failed write leaves the job to be taken over (the same key goes out again).
      await jobs.settle(this.lease, { kind: 'delivered', attempts: result.attempts, response: toStored(response) }, false).catch(() => undefined);
      const answer: RelayAnswer = { status: response.status, headers: response.headers, body: response.body, attempts: result.attempts.length, replayed: false };
      if (response.upstream !== undefined) answer.upstream = response.upstream;
      return { kind: 'answered', answer };
    }
    const finish = this.finishOf(result);
    if (finish.kind === 'dead' && result.kind === 'exhausted') {
      const outcome = await jobs.settle(this.lease, finish, false).catch(() => ({ dlqId: null }));
      throw exhaustedError(result, outcome.dlqId);
    }
    jobs.announce();
    await this.store(finish);
    return { kind: 'job', job: this.lease.job, created: true };
  }

  /** Ended after the client got its 202: the job's rules alone (nobody waits for an answer now). */
  async settleLate(result: RetryResult | { kind: 'not_run'; reason: string }): Promise<void> {
    if (result.kind !== 'answered') {
      await this.store(this.finishOf(result));
      return;
    }
    const { response, attempts } = result;
    if (response.status < 400) {
      await this.store({ kind: 'delivered', attempts, response: toStored(response) });
      return;
    }
    // As the job runner does: a refusal by the downstream that nobody saw must reach an operator.
    await this.store({
      kind: 'dead',
      attempts,
      response: toStored(response),
      lastError: `HTTP ${response.status}`,
      status: response.status,
      permanent: true,
      cause: 'non_retryable',
    });
  }

  private async store(finish: JobFinish): Promise<void> {
    try {
      await this.deps.jobs.settle(this.lease, finish, true);
    } catch {
      // The store failed (guardStore logged it): the hold ends and a worker takes the job over, never lost.
    }
  }

  /** Where the job stands after its synchronous part, when that part gave no answer. */
  private finishOf(result: Exclude<RetryResult, { kind: 'answered' }> | { kind: 'not_run'; reason: string }): JobFinish {
    const { clock } = this.deps;
    const now = clock.now();
    switch (result.kind) {
      case 'not_run':
        // Queue full, paused, N over while queued, shutting down: nothing was sent.
        return { kind: 'retry', attempts: [], availableAt: now, lastError: result.reason };
      case 'refused':
        return { kind: 'retry', attempts: [], availableAt: now + result.refusal.retryAfterMs, lastError: result.refusal.message };
      case 'aborted': {
        const last = result.attempts.at(-1);
        if (last === undefined || last.outcome === 'aborted') {
          return { kind: 'retry', attempts: result.attempts, availableAt: now, lastError: 'the synchronous part stopped before an answer' };
        }
        return this.afterFailure(result.attempts, last.error ?? `HTTP ${last.status ?? 'error'}`, last.outcome === 'timeout', 'attempts_exhausted');
      }
      case 'exhausted': {
        if (result.attempts.length === 0) return { kind: 'retry', attempts: [], availableAt: now, lastError: result.lastError };
        if (result.permanent) {
          const response = this.lastResponse ? toStored(this.lastResponse) : null;
          return { kind: 'dead', attempts: result.attempts, response, lastError: result.lastError, status: result.lastTimedOut ? 504 : 502, permanent: true, cause: 'non_retryable' };
        }
        return this.afterFailure(result.attempts, result.lastError, result.lastTimedOut, result.cause);
      }
    }
  }

  /** A retryable failure: the job's next attempt is due on its own schedule, or it is dead when these were its last. */
  private afterFailure(attempts: RetryResult['attempts'], lastError: string, timedOut: boolean, cause: Extract<JobFinish, { kind: 'dead' }>['cause']): JobFinish {
    const { schedule, random } = this.schedule;
    const spent = this.lease.job.attempts.length + attempts.length;
    const retryAfter = headerValue(this.lastResponse?.headers['retry-after']);
    const availableAt = nextJobAttemptAt(spent, schedule.maxAttempts, schedule, retryAfter, this.deps.clock, random);
    if (availableAt !== null) return { kind: 'retry', attempts, availableAt, lastError };
    const deadCause = cause === 'attempts_exhausted' && timedOut ? 'timeout' : cause;
    return { kind: 'dead', attempts, response: null, lastError, status: timedOut ? 504 : 502, permanent: false, cause: deadCause };
  }
}

/**
 * The route's pipeline for a request whose key its held job owns: no
 * reservation (the job holds the key) and no quarantine (the job goes to the
 * DLQ itself). Aborting `stop` (or shutdown's hard stop) frees a queue slot
 * still waited for and ends the retries at the next backoff, never an attempt in
 * flight: that one runs to its end (only the hard stop aborts it).
 */
async function runHeld(
  service: RelayService,
  request: RelayRequest,
  deadlineAt: number,
  stop: AbortController,
  onResponse: (response: CallResponse | undefined) => void,
): Promise<RetryResult> {
  const { route, target } = request;
  const forward = { method: target.method, path: target.path, headers: request.headers, body: request.body };
  const hardStop = service.hardStopSignal;
  const onHardStop = () => stop.abort();
  hardStop.addEventListener('abort', onHardStop, { once: true });
  try {
    return await route.pool.run(
      (lease) => {
        request.onAdmitted?.();
        return route.retry.execute(
          async ({ timeoutMs, watcher }) => {
            onResponse(undefined);
            const response = await route.downstreams.send(forward, { timeoutMs, deadlineAt, signal: hardStop, watcher, canaryId: request.canaryId });
            onResponse(response);
            return response;
          },
          {
            deadlineAt,
            signal: stop.signal,
            suspend: lease.suspend,
            safety: { method: target.method, keyed: true },
            watch: request.trace,
            canaryId: request.canaryId,
          },
        );
      },
      { signal: stop.signal, deadlineAt, priority: request.priority ?? 'normal' },
    );
  } finally {
    hardStop.removeEventListener('abort', onHardStop);
  }
}

function reasonOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  return typeof code === 'string' ? `${code}: ${message}` : message;
}
