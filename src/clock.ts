/** Injected time source, so that every policy can be tested with a fake clock. */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A random source in [0, 1). */
export type Random = () => number;
