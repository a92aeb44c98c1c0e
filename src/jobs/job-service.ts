import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import { IdempotencyMismatchError, ServiceUnavailableError } from '../errors.js';
import type { RelayEvents } from '../relay-events.js';
import type { Job, Priority, RelayStore } from '../storage/types.js';

export interface AcceptRequest {
  body: Buffer;
  /** Lower-case names; the headers to forward (the job's Idempotency-Key is added). */
  forwardHeaders: Record<string, string>;
  idempotencyKey: string | undefined;
  fingerprint: string | undefined;
  priority: Priority;
}

export interface Accepted {
  job: Job;
  /** false when the key already had a job: the same job is answered again. */
  created: boolean;
}

/**
 * Accepts async work (`Prefer: respond-async`, POST /relay/batch): the 202 is
 * sent only after the job is durably in the store. A client's Idempotency-Key
 * dedupes among async jobs (a duplicate gets the same job, a different body
 * 422); without one the relay makes a key up, because the downstream must get
 * one on every delivery to recognise a redelivery.
 */
export class JobService {
  private closing = false;

  constructor(
    private readonly deps: {
      store: RelayStore;
      events: RelayEvents;
      clock: Clock;
      /** Called after a job is stored, so delivery starts without waiting for the next poll. */
      onAccepted: () => void;
    },
  ) {}

  beginShutdown(): void {
    this.closing = true;
  }

  async accept(request: AcceptRequest): Promise<Accepted> {
    if (this.closing) throw new ServiceUnavailableError('The relay is shutting down and accepts no new work.');
    const id = randomUUID();
    const key = request.idempotencyKey ?? `relay-job-${id}`;
    const headers = { ...request.forwardHeaders };
    // A client's key is forwarded exactly as sent (as for synchronous calls); a made-up one is added.
    headers['idempotency-key'] ??= key;
    // A store failure arrives as StoreUnavailableError (guardStore): 503, nothing accepted.
    const result = await this.deps.store.jobs.enqueue({
      id,
      idempotencyKey: key,
      fingerprint: request.fingerprint ?? key,
      body: request.body,
      headers,
      priority: request.priority,
      now: this.deps.clock.now(),
    });
    switch (result.kind) {
      case 'created':
        this.deps.events.emit('job', { action: 'accepted' });
        this.deps.onAccepted();
        return { job: result.job, created: true };
      case 'existing':
        this.deps.events.emit('idempotency', { result: 'hit' });
        return { job: result.job, created: false };
      case 'mismatch':
        this.deps.events.emit('idempotency', { result: 'mismatch' });
        throw new IdempotencyMismatchError('This Idempotency-Key was already used for a job with a different request body or client.');
    }
  }

  get(id: string): Promise<Job | null> {
    return this.deps.store.jobs.get(id);
  }
}
