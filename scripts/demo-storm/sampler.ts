import type { CounterSample } from './series.js';

export interface SamplerOptions {
  /** @default 100 */
  everyMs?: number;
  /** Readings kept at most; past it the sampler stops on its own so a stuck run cannot grow memory. @default 3000 */
  maxSamples?: number;
  /** Milliseconds, monotonic; the first reading is time zero. @default performance.now */
  now?: () => number;
}

export interface Sampler {
  /** Takes a last reading, stops the timer and hands back every reading. Idempotent. */
  stop(): CounterSample[];
}

/**
 * Reads the downstream's cumulative counters now and every `everyMs`. Each
 * reading carries the time it was really taken, so a late timer (the event
 * loop is busy during a storm) does not inflate the rates.
 */
export function startSampler(read: () => Omit<CounterSample, 'atMs'>, options: SamplerOptions = {}): Sampler {
  const everyMs = options.everyMs ?? 100;
  const maxSamples = options.maxSamples ?? 3000;
  const now = options.now ?? (() => performance.now());
  const startedAt = now();
  const samples: CounterSample[] = [];
  const take = () => {
    if (samples.length < maxSamples) samples.push({ atMs: now() - startedAt, ...read() });
  };
  take();
  const timer = setInterval(() => {
    take();
    if (samples.length >= maxSamples) clearInterval(timer);
  }, everyMs);
  let stopped = false;
  return {
    stop() {
      if (!stopped) {
        stopped = true;
        clearInterval(timer);
        take();
      }
      return samples;
    },
  };
}
