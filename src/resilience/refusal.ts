/** Every breaker of a route (and its fallbacks) is open: nothing was sent. */
export class CircuitOpenRefusal extends Error {
  readonly code = 'CIRCUIT_OPEN';
  constructor(readonly retryAfterMs: number) {
    super(`circuit open; next probe in ${retryAfterMs} ms`);
  }
}

/** The rate limit has no call free before the deadline: nothing was sent. */
export class RateLimitRefusal extends Error {
  readonly code = 'RATE_LIMITED';
  constructor(readonly retryAfterMs: number) {
    super(`rate limited; next call free in ${retryAfterMs} ms`);
  }
}

/** A protection refused the attempt before anything left the relay. */
export type Refusal = CircuitOpenRefusal | RateLimitRefusal;

export function isRefusal(error: unknown): error is Refusal {
  return error instanceof CircuitOpenRefusal || error instanceof RateLimitRefusal;
}
