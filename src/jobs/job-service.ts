import { randomUUID } from 'node:crypto';
import type { Clock, Random } from '../clock.js';
import type { Priority, RequestTarget } from '../domain.js';
import { JobQueueFullError, DlqFullError, SecretKeyRequiredError, ServiceUnavailableError } from '../errors.js';
import { refuseKey } from '../idempotency/reservations.js';
import type { RelayEvents } from '../relay-events.js';
import type { RoutedRequest } from '../routes/route-pipeline.js';
import type { HeaderVault } from '../secrets/header-vault.js';
import type { Job, JobLease, RelayStore, StoredResponse } from '../storage/types.js';
import { storeJobFinish, type JobFinish, type JobSchedule } from './job-outcome.js';

/** Async work: the job's key is set under the route's key header (made up when the client sent none). */
export interface AcceptRequest extends RoutedRequest {
  priority: Priority;
}

export type Accepted =
  /**
   * `created` false when the key already had a job: the same job is answered again.
   * `token`: the job was created held by the caller (`hold`), who settles it with {@link JobService.settle}.
   */
  | { kind: 'job'; job: Job; created: boolean; token?: string }
  /** A synchronous request with this key and body already has its answer: replay it. */
  | { kind: 'answered'; response: StoredResponse };

export interface Quotas {
  jobQueueMax: number;
  jobQueueMaxBytes: number;
  dlqMax: number;
  dlqMaxBytes: number;
}

/**
 * Accepts async work (`Prefer: respond-async`, POST /relay/batch): the 202 is
 * sent only after the job is durably in the store. Keys share one space with
 * synchronous requests (a second use with another body is 422 whatever the
 * mode); without a key the relay makes one up, because the downstream must get
 * one on every delivery to recognise a redelivery.
 */
export class JobService {
  private closing = false;
  /** Held jobs whose outcome is still to be stored after their client got the 202 (see {@link track}). */
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly deps: {
      store: RelayStore;
      events: RelayEvents;
      clock: Clock;
      vault: HeaderVault;
      quotas: Quotas;
      /** The job attempts' schedule, for a caller that settles a job it holds (Prefer wait). */
      schedule: JobSchedule;
      random: Random;
      /** Called after a job is stored, so delivery starts without waiting for the next poll. */
      onAccepted: () => void;
    },
  ) {}

  beginShutdown(): void {
    this.closing = true;
  }

  /** The job attempts' schedule (JOB_MAX_ATTEMPTS, JOB_RETRY_*) and the random source of its jitter. */
  get schedule(): { schedule: JobSchedule; random: Random } {
    return { schedule: this.deps.schedule, random: this.deps.random };
  }

  /**
   * Stores the request as a job (the 202 may be sent once this resolves). With
   * `hold`, a new job is created leased to the caller for `hold.leaseMs`, not
   * yet offered to the job runner: the caller makes its first attempts itself
   * and hands the job over with {@link settle}.
   */
  async accept(request: AcceptRequest, hold?: { leaseMs: number }): Promise<Accepted> {
    if (this.closing) throw new ServiceUnavailableError('The relay is shutting down and accepts no new work.');
    const id = randomUUID();
    const key = request.sendKey ?? `relay-job-${id}`;
    // Refused up front, before anything is stored: a job must never be delivered later without its credentials.
    const sealed = this.deps.vault.seal({ ...request.headers, [request.route.keyHeader]: key }, request.route.secretHeaders, id);
    const sealedPath = this.deps.vault.sealPath(request.target.path, id);
    if (sealed.droppedSecrets || sealedPath.droppedSecrets) {
      throw new SecretKeyRequiredError('This request carries credentials; set RELAY_SECRET_KEY so they can be stored (encrypted) for later delivery.', 400);
    }
    const { quotas, store } = this.deps;
    const dlq = await store.dlq.usage();
    if (dlq.count >= quotas.dlqMax || dlq.bytes >= quotas.dlqMaxBytes) throw new DlqFullError();
    const body = request.body ?? Buffer.alloc(0);
    // A store failure arrives as StoreUnavailableError (guardStore): 503, nothing accepted.
    const result = await store.jobs.enqueue(
      {
        id,
        request: { ...request.target, path: sealedPath.path },
        keyScope: request.keyScope ?? `job:${id}`,
        idempotencyKey: key,
        fingerprint: request.fingerprint ?? key,
        body,
        headers: sealed.headers,
        priority: request.priority,
        now: this.deps.clock.now(),
        ...(hold ? { holdMs: hold.leaseMs } : {}),
      },
      { maxQueued: quotas.jobQueueMax, maxQueuedBytes: quotas.jobQueueMaxBytes },
    );
    switch (result.kind) {
      case 'created':
        // A held job is counted as accepted only if its caller hands it over unfinished (settle).
        if (result.token !== undefined) return { kind: 'job', job: result.job, created: true, token: result.token };
        this.deps.events.emit('job', { action: 'accepted' });
        this.deps.onAccepted();
        return { kind: 'job', job: result.job, created: true };
      case 'existing':
        this.deps.events.emit('idempotency', { result: 'hit' });
        return { kind: 'job', job: result.job, created: false };
      case 'answered':
        this.deps.events.emit('idempotency', { result: 'hit' });
        return { kind: 'answered', response: result.response };
      case 'full':
        throw new JobQueueFullError(result.reason);
      default:
        return refuseKey(result.kind, this.deps.events);
    }
  }

  /** Work that stores a held job's outcome after its client was answered: shutdown waits for it before the store closes. */
  track(settling: Promise<void>): void {
    const tracked = settling.catch(() => undefined).finally(() => this.pending.delete(tracked));
    this.pending.add(tracked);
  }

  /** Resolves when every tracked held job has stored its outcome (its attempt in flight ends by the request deadline). */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  /** A held job becomes its client's job (the 202 is sent): counted as accepted from now on. */
  announce(): void {
    this.deps.events.emit('job', { action: 'accepted' });
  }

  /**
   * Settles a job the caller holds (accepted with `hold`): delivered, dead in the
   * DLQ, or handed to the job runner (`retry`). `announced`: the client was told
   * it is a job (see {@link announce}), so its end counts among the jobs'.
   * `stored` false: the hold had ended and a worker took the job over.
   */
  async settle(lease: JobLease, finish: JobFinish, announced: boolean): Promise<{ stored: boolean; dlqId: string | null }> {
    const outcome = await storeJobFinish(this.deps, lease, finish, announced);
    if (outcome.stored && finish.kind === 'retry') this.deps.onAccepted();
    return outcome;
  }

  get(id: string): Promise<Job | null> {
    return this.deps.store.jobs.get(id);
  }
}
