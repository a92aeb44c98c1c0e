import { RelayError, StoreUnavailableError } from '../errors.js';
import { DuplicateIdError, InvalidCursorError, type RelayStore } from './types.js';

/**
 * Wraps a store so that a backend failure (Redis gone, SQLite closed or busy)
 * reaches the HTTP layer as the contract's 503 problem instead of a 500, on
 * every route at once. The relay's own errors and the store's domain errors
 * (an invalid cursor, a taken id) pass through unchanged.
 */
export function guardStore(store: RelayStore, onError: (error: unknown, context: string) => void): RelayStore {
  const guard = <T extends object>(part: T, name: string): T =>
    new Proxy(part, {
      get(target, property, receiver) {
        const value: unknown = Reflect.get(target, property, receiver);
        if (typeof value !== 'function') return value;
        const method = value as (...args: unknown[]) => Promise<unknown>;
        return async (...args: unknown[]) => {
          try {
            return await method.apply(target, args);
          } catch (error) {
            if (error instanceof RelayError || error instanceof InvalidCursorError || error instanceof DuplicateIdError) throw error;
            onError(error, `${name}.${String(property)}`);
            throw new StoreUnavailableError('The relay could not reach its store.');
          }
        };
      },
    });
  return {
    idempotency: guard(store.idempotency, 'idempotency'),
    dlq: guard(store.dlq, 'dlq'),
    jobs: guard(store.jobs, 'jobs'),
    // Readiness wants the backend's own message, and close must run whatever happens.
    ping: () => store.ping(),
    close: () => store.close(),
  };
}
