import { z } from 'zod';
import type { Random } from '../../clock.js';
import { parseOrThrow } from '../validation.js';
import { fromCanned, intFrom, jsonAnswer } from './answer.js';
import type { CannedAnswer, ProviderAnswer } from './answer.js';

/** An injected failure answer: what a load balancer or an overloaded provider sends. */
export interface InjectedFailure {
  /**
   * Status from 400 to 599.
   * @default 503
   */
  status?: number;
  /** Sends `Retry-After: <retryAfterS>` when set. */
  retryAfterS?: number;
}

/** What happens to a request instead of the provider's own answer. */
export type Fault =
  | { kind: 'answer'; answer: ProviderAnswer }
  /** Read the request, never answer: only the client's close or `close()` ends it. */
  | { kind: 'hang' }
  /** Read the request, then reset the connection with no answer. */
  | { kind: 'reset' };

const countSchema = z.object({ count: intFrom(1, Number.MAX_SAFE_INTEGER, 'expected a whole number from 1 up') });
const rateExpected = 'expected a number from 0 to 1';
const rateSchema = z.object({
  rate: z.number({ error: rateExpected }).min(0, { error: rateExpected }).max(1, { error: rateExpected }),
});
const failureSchema = z.strictObject({
  status: intFrom(400, 599, 'expected an HTTP status from 400 to 599').optional(),
  retryAfterS: intFrom(0, 86_400, 'expected whole seconds from 0 to 86400').optional(),
});

/**
 * Faults planned for the next requests, then a random fail rate. Planned
 * faults go first, in the order they were asked for (`failNext(2)` then
 * `hangNext(1)`: two failures, then a hang). The random source is consulted
 * only while the fail rate is above 0, so a test without one stays deterministic.
 */
export class FaultPlan {
  private planned: Array<{ fault: Fault; remaining: number }> = [];
  private failRate = 0;
  private rateFailure: Fault;

  constructor(private readonly random: Random) {
    this.rateFailure = { kind: 'answer', answer: failureAnswer({}) };
  }

  /** @throws {SimValidationError} naming the bad count, status or seconds. */
  failNext(count: number, failure: InjectedFailure = {}): void {
    this.plan(count, { kind: 'answer', answer: failureAnswer(failure) });
  }

  /** @throws {SimValidationError} naming the bad count or answer field. */
  answerNext(count: number, answer: CannedAnswer): void {
    this.plan(count, { kind: 'answer', answer: fromCanned(answer) });
  }

  hangNext(count: number): void {
    this.plan(count, { kind: 'hang' });
  }

  resetNext(count: number): void {
    this.plan(count, { kind: 'reset' });
  }

  /** @throws {SimValidationError} when `rate` is not in [0, 1] or the failure is bad. */
  setFailRate(rate: number, failure: InjectedFailure = {}): void {
    parseOrThrow(rateSchema, { rate });
    this.rateFailure = { kind: 'answer', answer: failureAnswer(failure) };
    this.failRate = rate;
  }

  /** Forgets the planned faults and sets the fail rate to 0. */
  clear(): void {
    this.planned = [];
    this.failRate = 0;
  }

  /** The fault for the request that just arrived, or `undefined` to let the provider answer. */
  next(): Fault | undefined {
    const head = this.planned[0];
    if (head !== undefined) {
      head.remaining -= 1;
      if (head.remaining === 0) this.planned.shift();
      return head.fault;
    }
    if (this.failRate > 0 && this.random() < this.failRate) return this.rateFailure;
    return undefined;
  }

  private plan(count: number, fault: Fault): void {
    parseOrThrow(countSchema, { count });
    this.planned.push({ fault, remaining: count });
  }
}

function failureAnswer(input: InjectedFailure): ProviderAnswer {
  const failure = parseOrThrow(failureSchema, input);
  const status = failure.status ?? 503;
  const headers = failure.retryAfterS === undefined ? {} : { 'retry-after': String(failure.retryAfterS) };
  return jsonAnswer(status, { error: { type: 'simulated_failure', message: `injected ${status}` } }, headers);
}
