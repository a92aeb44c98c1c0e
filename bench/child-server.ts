import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface ChildServer {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly pid: number;
  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnServerOptions {
  /** Entry file relative to the repository root, run with `node --import tsx`. */
  entry: string;
  env: Record<string, string>;
  /** Node flags placed before `--import tsx` (e.g. `--cpu-prof`). */
  nodeArgs?: string[];
  /**
   * Run the tsc output under `dist-bench/` (`npm run build:bench`) with plain
   * node, as the relay ships, instead of the TypeScript under tsx: tsx compiles
   * with esbuild's keepNames, which wraps every closure made per request in a
   * `__name()` call that the shipped build does not pay.
   */
  compiled?: boolean;
  /** @default 20_000 */
  startTimeoutMs?: number;
}

/**
 * Starts a bench server in its own process, so it does not share an event loop
 * with the load generator, and resolves once it printed `{"port":N}` on stdout.
 */
export function spawnServer(options: SpawnServerOptions): Promise<ChildServer> {
  const startTimeoutMs = options.startTimeoutMs ?? 20_000;
  const entryArgs = options.compiled ? [join('dist-bench', options.entry.replace(/\.ts$/, '.js'))] : ['--import', 'tsx', options.entry];
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...entryArgs], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    // Enough to explain a failed start; a chatty server must not grow this without bound.
    if (stderr.length < 16_384) stderr += chunk;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  return new Promise<ChildServer>((resolve, reject) => {
    let stdout = '';
    const onData = (chunk: string) => {
      stdout += chunk;
      const port = portFrom(stdout);
      if (port === undefined) return;
      cleanup();
      // Keep draining: a full pipe would block the server's writes.
      child.stdout!.on('data', () => undefined);
      resolve({ url: `http://127.0.0.1:${port}`, pid: child.pid!, stop: memoizedStop(child, exited) });
    };
    const onExit = (code: number | null, signal: string | null) => {
      cleanup();
      reject(new Error(`${options.entry} exited before listening (code ${code}, signal ${signal}): ${stderr.trim()}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      child.kill('SIGKILL');
      reject(new Error(`${options.entry} did not report a port within ${startTimeoutMs} ms: ${stderr.trim()}`));
    }, startTimeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
    };
    child.stdout!.setEncoding('utf8').on('data', onData);
    child.once('exit', onExit);
  });
}

function portFrom(stdout: string): number | undefined {
  for (const line of stdout.split('\n')) {
    const match = /^\{"port":(\d+)\}$/.exec(line.trim());
    if (match) return Number(match[1]);
  }
  return undefined;
}

function memoizedStop(child: ChildProcess, exited: Promise<void>): (graceMs?: number) => Promise<void> {
  let stopping: Promise<void> | undefined;
  return (graceMs = 10_000) =>
    (stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), graceMs);
      });
      try {
        if ((await Promise.race([exited.then(() => 'exited' as const), graceOver])) === 'timeout') {
          child.kill('SIGKILL');
          await exited;
        }
      } finally {
        clearTimeout(timer);
      }
    })());
}
