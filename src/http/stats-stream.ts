import type { Response } from 'express';
import { Router } from 'express';
import { RelayError, ServiceUnavailableError } from '../errors.js';
import { requireAdmin } from './admin.js';
import { methodNotAllowed } from './routing.js';

/** More operators watching than the relay feeds at once. */
export class TooManyStreamsError extends RelayError {
  readonly code = 'TOO_MANY_STREAMS';
  readonly status = 503;
  readonly title = 'Too many stats streams';
  override headers(): Record<string, string> {
    return { 'Retry-After': '5' };
  }
}

export interface StatsStreamsOptions {
  /** The /stats document; one is built per tick and written to every stream. */
  snapshot: () => Promise<unknown>;
  /**
   * How often each stream gets an event.
   * @default 1000
   */
  intervalMs?: number;
  /**
   * How often a comment line goes out, so an idle proxy does not close the stream.
   * @default 15000
   */
  keepAliveMs?: number;
  /**
   * Streams open at once; one more is refused with 503.
   * @default 16
   */
  maxStreams?: number;
}

/**
 * The open `GET /stats/stream` answers. One timer builds one snapshot per tick
 * for all of them (a snapshot asks the store for the DLQ and job counts, so 16
 * viewers must not mean 16 queries a second); it runs only while a stream is open.
 * `close()` ends every stream and refuses new ones: the relay calls it when it
 * begins shutting down, so a dashboard cannot hold the server open.
 */
export class StatsStreams {
  private readonly streams = new Set<Response>();
  private readonly intervalMs: number;
  private readonly keepAliveMs: number;
  private readonly maxStreams: number;
  private tickTimer: NodeJS.Timeout | undefined;
  private keepAliveTimer: NodeJS.Timeout | undefined;
  private building = false;
  private closed = false;

  constructor(private readonly options: StatsStreamsOptions) {
    this.intervalMs = options.intervalMs ?? 1_000;
    this.keepAliveMs = options.keepAliveMs ?? 15_000;
    this.maxStreams = options.maxStreams ?? 16;
  }

  get size(): number {
    return this.streams.size;
  }

  /** Starts an event stream on `res`, or throws (503) when closed or full. */
  open(res: Response): void {
    if (this.closed) throw new ServiceUnavailableError('The relay is shutting down.');
    if (this.streams.size >= this.maxStreams) {
      throw new TooManyStreamsError(`At most ${this.maxStreams} stats streams are served at once; close another dashboard or try again later.`);
    }
    res.status(200).set({
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      // nginx buffers proxied answers unless told not to; an event must reach the page within its second.
      'X-Accel-Buffering': 'no',
    });
    res.flushHeaders();
    this.streams.add(res);
    res.on('close', () => this.remove(res));
    this.start();
    // The first event at once: a page should not sit empty for a tick.
    void this.snapshot().then((text) => {
      if (text !== undefined) this.write(res, text);
    });
  }

  /** Ends every stream and refuses new ones; safe to call more than once. */
  close(): void {
    this.closed = true;
    this.stop();
    for (const res of [...this.streams]) {
      this.streams.delete(res);
      res.end();
    }
  }

  private remove(res: Response): void {
    this.streams.delete(res);
    if (this.streams.size === 0) this.stop();
  }

  private start(): void {
    if (this.tickTimer) return;
    this.tickTimer = setInterval(() => void this.tick(), this.intervalMs);
    this.keepAliveTimer = setInterval(() => {
      for (const res of this.streams) res.write(': keep-alive\n\n');
    }, this.keepAliveMs);
  }

  private stop(): void {
    clearInterval(this.tickTimer);
    clearInterval(this.keepAliveTimer);
    this.tickTimer = undefined;
    this.keepAliveTimer = undefined;
  }

  private async tick(): Promise<void> {
    // A store slower than the interval would otherwise pile up snapshots; skip the tick instead.
    if (this.building) return;
    this.building = true;
    try {
      const text = await this.snapshot();
      if (text === undefined) return;
      for (const res of this.streams) this.write(res, text);
    } finally {
      this.building = false;
    }
  }

  /** One `stats` event, or undefined when the snapshot failed (the stream skips that second). */
  private async snapshot(): Promise<string | undefined> {
    try {
      // JSON.stringify escapes every newline, so the document is exactly one data: line.
      return `event: stats\ndata: ${JSON.stringify(await this.options.snapshot())}\n\n`;
    } catch {
      return undefined;
    }
  }

  /** A reader that has not taken the last event gets no new one: the next is newer anyway, and nothing piles up in memory. */
  private write(res: Response, text: string): void {
    if (!this.streams.has(res) || res.writableNeedDrain) return;
    res.write(text);
  }
}

/** `GET /stats/stream`: server-sent events, one /stats document a second. Admin, like /stats. */
export function statsStreamRouter(deps: { statsStreams: StatsStreams; adminToken: string | undefined }): Router {
  const router = Router();
  router
    .route('/stats/stream')
    .get(requireAdmin(deps.adminToken), (_req, res) => {
      deps.statsStreams.open(res);
    })
    .all(methodNotAllowed(['GET']));
  return router;
}
