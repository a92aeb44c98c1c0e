import { randomUUID } from 'node:crypto';
import { abortControllerForMany } from './abort.js';
import { DlqReplay, type DlqReplayDeps, type ReplayOptions } from './dlq-replay.js';
import type { Priority, RelayAnswer } from './domain.js';
import { CircuitOpenError, DeadlineExceededError, ServiceUnavailableError } from './errors.js';
import { KeyReservations } from './idempotency/reservations.js';
import type { WaitSignal, WorkerLease } from './queue/worker-pool.js';
import type { Tracing } from './observability/tracing.js';
import type { AttemptWatch } from './resilience/attempt.js';
import type { RetryResult } from './resilience/retry.js';
import type { RoutedRequest, RoutePipeline } from './routes/route-pipeline.js';
import { toAnswer } from './stored-answer.js';
import type { DlqEdit, DlqEntry } from './storage/types.js';
import { exhaustedError, exhaustedStatus, refusedError } from './unanswered.js';

export interface RelayRequest extends RoutedRequest {
  /** Fires when the client disconnects (listened to only while the request waits in the queue). */
  signal: WaitSignal;
  /** Epoch ms the request arrived: the deadline counts from here. */
  receivedAt: number;
  /** Queue class (X-Relay-Priority). @default 'normal' */
  priority?: Priority;
  /** Called when a worker takes the request (it counts as admitted from then on). */
  onAdmitted?: () => void;
  /** The request's span (tracing on): each attempt gets a child span and sends its traceparent. */
  trace?: AttemptWatch | undefined;
}

/** What a DLQ replay needs (the routes, the store, the vault...), less what the service hands it, plus: */
export interface RelayServiceDeps extends Omit<DlqReplayDeps, 'keys' | 'callDownstream' | 'isClosing'> {
  idempotencyTtlMs: number;
  /** OpenTelemetry tracing; undefined when OTEL_EXPORTER_OTLP_ENDPOINT is unset. */
  tracing?: Tracing | undefined;
}

/**
 * Synchronous requests, in the order fixed here: idempotency reservation ->
 * the route's pipeline (queue, retry, attempts) -> store the definitive answer
 * under the key, or quarantine in the DLQ. DLQ replays (DlqReplay) take the
 * same steps with the same key reservations and pipeline.
 */
export class RelayService {
  /** Aborts in-flight attempts when shutdown's grace runs out. */
  private readonly hardStop = abortControllerForMany();
  private closing = false;
  private readonly keys: KeyReservations;
  private readonly replays: DlqReplay;

  constructor(private readonly deps: RelayServiceDeps) {
    this.keys = new KeyReservations(deps);
    this.replays = new DlqReplay({
      ...deps,
      keys: this.keys,
      callDownstream: (request, deadlineAt, lease) => this.callDownstream(request, deadlineAt, lease),
      isClosing: () => this.closing,
    });
  }

  get isClosing(): boolean {
    return this.closing;
  }

  /** The relay's tracer, for the edge that opens a request's span; undefined: tracing off. */
  get tracing(): Tracing | undefined {
    return this.deps.tracing;
  }

  async handle(request: RelayRequest): Promise<RelayAnswer> {
    if (this.closing) throw new ServiceUnavailableError('The relay is shutting down and accepts no new work.');
    const { route } = request;
    const keyed = request.keyScope !== undefined && request.fingerprint !== undefined;
    request.canaryId ??= randomUUID();
    if (!keyed) refuseWhileOpen(route, request.canaryId);
    const reservation = keyed ? await this.keys.reserve(request.keyScope, request.fingerprint) : null;
    // A finished key replays its stored answer even during an outage: the downstream is not involved.
    if (reservation && 'replay' in reservation) return reservation.replay;
    if (keyed) {
      try {
        refuseWhileOpen(route, request.canaryId);
      } catch (error) {
        await this.keys.release(reservation);
        throw error;
      }
    }
    const deadlineAt = request.receivedAt + this.deps.requestDeadlineMs;
    let result: RetryResult;
    try {
      result = await route.pool.run(
        (lease) => {
          request.onAdmitted?.();
          return this.callDownstream(request, deadlineAt, lease);
        },
        { signal: request.signal, deadlineAt, priority: request.priority ?? 'normal' },
      );
    } catch (error) {
      await this.keys.release(reservation);
      throw error;
    }
    if (result.kind === 'answered') {
      if (reservation) await this.keys.complete(reservation, result.response);
      return { ...toAnswer(result.response), attempts: result.attempts.length, replayed: false };
    }
    await this.keys.release(reservation);
    if (result.kind === 'aborted') throw new ServiceUnavailableError('The relay stopped before the downstream answered.');
    if (result.kind === 'refused') throw refusedError(result);
    if (result.attempts.length === 0) {
      throw new DeadlineExceededError(
        'The request deadline left less time than the downstream takes to answer (its recent median) before the first attempt; the downstream was not called.',
      );
    }
    const dlqId = await this.quarantine(request, result);
    throw exhaustedError(result, dlqId);
  }

  /** `POST /dlq/:id/replay`: see DlqReplay.replay. */
  replay(id: string, options: ReplayOptions = {}): Promise<{ answer: RelayAnswer; entry: DlqEntry; edit: DlqEdit | null }> {
    return this.replays.replay(id, options);
  }

  /** Fires when shutdown's grace runs out: attempts still running are aborted (the Prefer wait flow listens too). */
  get hardStopSignal(): AbortSignal {
    return this.hardStop.signal;
  }

  /** REQUEST_DEADLINE_MS: a request's whole budget, counted from its arrival. */
  get requestDeadlineMs(): number {
    return this.deps.requestDeadlineMs;
  }

  /** Stop taking new work; in-flight and queued requests go on. */
  beginShutdown(): void {
    this.closing = true;
  }

  /** Abort attempts still running (after the drain grace period). */
  abortInFlight(): void {
    this.hardStop.abort();
  }

  private callDownstream(request: RoutedRequest & { trace?: AttemptWatch | undefined }, deadlineAt: number, lease: WorkerLease): Promise<RetryResult> {
    const { route, target } = request;
    const forward = { method: target.method, path: target.path, headers: request.headers, body: request.body };
    return route.retry.execute(
      ({ signal, timeoutMs, watcher }) => route.downstreams.send(forward, { timeoutMs, deadlineAt, signal, watcher, canaryId: request.canaryId }),
      // A request sleeping in backoff holds no worker: the concurrency limit counts calls to the downstream.
      {
        deadlineAt,
        signal: this.hardStop.signal,
        suspend: lease.suspend,
        safety: { method: target.method, keyed: request.sendKey !== undefined },
        watch: request.trace,
        canaryId: request.canaryId,
      },
    );
  }

  private async quarantine(request: RelayRequest, result: Extract<RetryResult, { kind: 'exhausted' }>): Promise<string | null> {
    // The request's canary id: a redrive (a job with the entry's id) and a replay keep the request's canary side.
    const id = request.canaryId ?? randomUUID();
    try {
      // Without RELAY_SECRET_KEY the entry keeps no secret: its replay is refused (422) rather than sent without it.
      const { headers } = this.deps.vault.seal(request.headers, request.route.secretHeaders, id);
      const { path } = this.deps.vault.sealPath(request.target.path, id);
      const entry = await this.deps.store.dlq.add({
        id,
        request: { ...request.target, path },
        keyScope: request.keyScope ?? null,
        idempotencyKey: request.sendKey ?? null,
        fingerprint: request.fingerprint ?? null,
        body: request.body ?? Buffer.alloc(0),
        headers,
        attempts: result.attempts,
        lastError: result.lastError,
        status: exhaustedStatus(result),
        reason: result.cause === 'non_retryable' ? 'permanent' : 'transient',
        cause: result.cause,
        jobId: null,
        redrives: 0,
        now: this.deps.clock.now(),
      });
      this.deps.events.emit('dlq', {
        action: 'added',
        id: entry.id,
        route: request.route.name,
        reason: entry.reason,
        status: exhaustedStatus(result),
        attempts: result.attempts.length,
        lastError: result.lastError,
        jobId: null,
      });
      return entry.id;
    } catch {
      // The client still learns the request failed (and may resend it); only the quarantine copy is missing.
      return null;
    }
  }
}

/**
 * Fail fast at the door while every breaker of the route is open: the request
 * would only be refused once a worker took it. (Not before the body is read:
 * answering with the body unread makes Node close the keep-alive connection, and
 * the client's reconnects cost more than reading a small body.)
 */
function refuseWhileOpen(route: RoutePipeline, canaryId: string | undefined): void {
  const openForMs = route.downstreams.allOpenForMs(canaryId);
  if (openForMs !== null) throw new CircuitOpenError(openForMs);
}
