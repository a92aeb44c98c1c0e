import { setMaxListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';

export interface BurstOptions {
  /** Where to send: a Pool with a connection per request, so none waits for a socket. */
  dispatcher: Dispatcher;
  /** Path of the POST, e.g. `/` for the downstream, `/relay` for the relay. */
  path: string;
  /** Requests released at once. */
  requests: number;
  /**
   * Attempts per request, the first included, each sent the moment the
   * previous one failed (no backoff, no jitter, no budget). 1 sends once.
   */
  maxAttempts: number;
  /** Aborts every attempt in flight and stops the retry loops: they count as gave up. */
  signal: AbortSignal;
}

export interface BurstResult {
  succeeded: number;
  gaveUp: number;
  /** Attempts sent, all requests together. */
  attempts: number;
  /** What the client saw: HTTP status, or an error code when no answer came. */
  byOutcome: Record<string, number>;
  /** From release until the last request succeeded or gave up. */
  drainMs: number;
}

/**
 * Releases `requests` POSTs at once, each retried immediately on any failure
 * until a 2xx or `maxAttempts`: the naive client of the post-mortem when
 * `maxAttempts` is large, a well-behaved one when it is 1.
 */
export async function releaseBurst(options: BurstOptions): Promise<BurstResult> {
  if (!Number.isInteger(options.requests) || options.requests < 1) {
    throw new RangeError(`Expected \`requests\` to be an integer from 1 and up, got \`${options.requests}\``);
  }
  if (!Number.isInteger(options.maxAttempts) || options.maxAttempts < 1) {
    throw new RangeError(`Expected \`maxAttempts\` to be an integer from 1 and up, got \`${options.maxAttempts}\``);
  }
  // Every attempt in flight listens to the one signal, and removes its listener when done.
  setMaxListeners(options.requests + 16, options.signal);
  const byOutcome: Record<string, number> = {};
  const count = (label: string) => {
    byOutcome[label] = (byOutcome[label] ?? 0) + 1;
  };
  let attempts = 0;
  const startedAt = performance.now();

  const one = async (index: number): Promise<boolean> => {
    const body = JSON.stringify({ message: index, note: 'released by the restart' });
    for (let attempt = 1; attempt <= options.maxAttempts && !options.signal.aborted; attempt++) {
      attempts += 1;
      try {
        const res = await options.dispatcher.request({
          method: 'POST',
          path: options.path,
          headers: { 'content-type': 'application/json' },
          body,
          signal: options.signal,
        });
        await res.body.dump();
        count(String(res.statusCode));
        if (res.statusCode >= 200 && res.statusCode < 300) return true;
      } catch (error) {
        count(options.signal.aborted ? 'aborted' : ((error as { code?: string }).code ?? 'error'));
      }
    }
    return false;
  };

  const outcomes = await Promise.all(Array.from({ length: options.requests }, (_, i) => one(i)));
  const succeeded = outcomes.filter(Boolean).length;
  return { succeeded, gaveUp: options.requests - succeeded, attempts, byOutcome, drainMs: performance.now() - startedAt };
}
