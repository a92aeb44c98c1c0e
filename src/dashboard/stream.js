// @ts-check
// Reads GET /stats/stream with fetch, not EventSource: EventSource cannot send
// an Authorization header, and the relay never takes a token from a query string.

/**
 * Splits server-sent events out of text chunks (the WHATWG event-stream format:
 * `event:` and `data:` fields, a blank line ends an event, `:` starts a comment).
 */
export class EventStreamParser {
  /** @param {(event: { type: string, data: string }) => void} onEvent */
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = '';
    this.type = '';
    /** @type {string[]} */
    this.data = [];
  }

  /** @param {string} chunk */
  push(chunk) {
    this.buffer += chunk;
    let end;
    while ((end = this.buffer.search(/\r\n|\r|\n/)) !== -1) {
      const line = this.buffer.slice(0, end);
      const breakLength = this.buffer.startsWith('\r\n', end) ? 2 : 1;
      this.buffer = this.buffer.slice(end + breakLength);
      this.line(line);
    }
  }

  /** @param {string} line */
  line(line) {
    if (line === '') {
      if (this.data.length > 0) this.onEvent({ type: this.type || 'message', data: this.data.join('\n') });
      this.type = '';
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.type = value;
    else if (field === 'data') this.data.push(value);
  }
}

/**
 * @typedef {object} StreamHandlers
 * @property {(stats: any) => void} onStats a /stats document
 * @property {(state: 'connecting' | 'live' | 'retrying' | 'unauthorized', detail?: string) => void} onState
 */

const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 10000;

/**
 * Keeps one stream open until `stop()`: reconnects with backoff after an error
 * or the end of a stream (a relay restarting), and stops on 401 (the token is
 * wrong: asking again is the page's job).
 * @param {() => string | null} token
 * @param {StreamHandlers} handlers
 */
export function followStats(token, handlers) {
  const abort = new AbortController();
  let retryMs = RETRY_MIN_MS;

  const run = async () => {
    while (!abort.signal.aborted) {
      handlers.onState('connecting');
      let waitMs = retryMs;
      try {
        const headers = new Headers({ accept: 'text/event-stream' });
        const bearer = token();
        if (bearer) headers.set('authorization', `Bearer ${bearer}`);
        const res = await fetch('/stats/stream', { headers, signal: abort.signal, cache: 'no-store' });
        if (res.status === 401) {
          handlers.onState('unauthorized');
          return;
        }
        if (!res.ok || !res.body) {
          const retryAfterS = Number(res.headers.get('retry-after'));
          if (retryAfterS > 0) waitMs = retryAfterS * 1000;
          throw new Error(await problemText(res));
        }
        retryMs = RETRY_MIN_MS;
        const parser = new EventStreamParser(({ type, data }) => {
          if (type === 'stats') handlers.onStats(JSON.parse(data));
        });
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        handlers.onState('live');
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parser.push(value);
        }
        handlers.onState('retrying', 'the relay ended the stream');
      } catch (error) {
        if (abort.signal.aborted) return;
        handlers.onState('retrying', error instanceof Error ? error.message : String(error));
      }
      await sleep(waitMs, abort.signal);
      retryMs = Math.min(RETRY_MAX_MS, retryMs * 2);
    }
  };
  void run();
  return { stop: () => abort.abort() };
}

/**
 * A problem+json answer's detail, or its status.
 * @param {Response} res
 */
export async function problemText(res) {
  try {
    const problem = await res.json();
    if (problem && typeof problem.detail === 'string') return `${res.status} ${problem.code ?? ''}: ${problem.detail}`;
  } catch {
    // not JSON: the status says enough
  }
  return `${res.status} ${res.statusText}`;
}

/**
 * @param {number} ms
 * @param {AbortSignal} signal
 */
function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve(undefined);
    }, { once: true });
  });
}
