/**
 * A tiny typed event emitter. Components emit; stats, metrics and logs listen
 * (policies never import prom-client or the logger).
 */
export class TypedEmitter<Events extends Record<string, unknown>> {
  private readonly listeners = new Map<keyof Events, Set<(payload: never) => void>>();

  on<K extends keyof Events>(event: K, listener: (payload: Events[K]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener as (payload: never) => void);
    return () => set.delete(listener as (payload: never) => void);
  }

  emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of set) {
      // A listener's bug must never break the request that emitted the event.
      try {
        (listener as (p: Events[K]) => void)(payload);
      } catch {
        /* observability is best-effort */
      }
    }
  }
}
