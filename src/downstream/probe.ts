import { connect } from 'node:net';

/**
 * Whether `url`'s host accepts a TCP connection within `timeoutMs`: null when
 * it does, else why not. Only a connect, no HTTP request, so a provider sees no
 * call it would count, and nothing passes through a breaker or a limiter.
 */
export function probeTcp(url: string, timeoutMs: number): Promise<string | null> {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return Promise.resolve('not a URL');
  }
  const port = Number(target.port || (target.protocol === 'https:' ? 443 : 80));
  // An IPv6 literal keeps its brackets in URL.hostname.
  const host = target.hostname.replace(/^\[(.*)\]$/, '$1');
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const finish = (reason: string | null) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(reason);
    };
    const timer = setTimeout(() => finish(`no connection within ${timeoutMs} ms`), timeoutMs);
    timer.unref();
    socket.once('connect', () => finish(null));
    socket.once('error', (error: NodeJS.ErrnoException) => finish(error.code ?? error.message));
  });
}
