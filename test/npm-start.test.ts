import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { RELAY_ENV_NAMES } from '../src/config.js';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
// `npm start` builds first (prestart: tsc + Lua copy), which takes 5-10 s on two idle cores.
const LISTENING_WITHIN_MS = 45_000;
const EXIT_WITHIN_MS = 5_000;

interface NpmStart {
  child: ChildProcess;
  logs: Array<Record<string, unknown>>;
  output(): string;
  waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs: number): Promise<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

/** `npm start` as an operator runs it: npm is the process we hold, the relay is npm's child. */
function npmStart(env: Record<string, string>): NpmStart {
  const inherited = { ...process.env };
  for (const name of RELAY_ENV_NAMES) delete inherited[name];
  const child = spawn('npm', ['start'], {
    cwd: REPO_ROOT,
    env: { ...inherited, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, so the safety net below can reach the relay too if npm failed to pass the signal on.
    detached: true,
  });
  cleanups.push(() => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  });

  const logs: Array<Record<string, unknown>> = [];
  const wakers = new Set<() => void>();
  let text = '';
  let rest = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    text += chunk;
    const lines = (rest + chunk).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // npm's own banner lines are not JSON.
      }
    }
    for (const wake of [...wakers]) wake();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    text += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    // 'close', not 'exit': the last log lines are read by then.
    child.once('close', (code, signal) => {
      resolve({ code, signal });
      for (const wake of [...wakers]) wake();
    });
  });

  const waitForLog: NpmStart['waitForLog'] = (match, timeoutMs) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        wakers.delete(check);
        reject(new Error(`no matching log line within ${timeoutMs} ms; output:\n${text}`));
      }, timeoutMs);
      function check() {
        const line = logs.find(match);
        const gone = child.exitCode !== null || child.signalCode !== null;
        if (line === undefined && !gone) return;
        clearTimeout(timer);
        wakers.delete(check);
        if (line !== undefined) resolve(line);
        else reject(new Error(`npm start exited before the expected log line; output:\n${text}`));
      }
      wakers.add(check);
      check();
    });

  return { child, logs, output: () => text, waitForLog, exited };
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Resolves with the error code of a fresh TCP connection to the port, or 'connected'. */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(2_000, () => {
      socket.destroy();
      resolve('timeout');
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

describe('npm start', () => {
  it(
    'builds, serves, and on SIGTERM to npm itself drains and exits 0 with the port closed',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'relay-npm-start-'));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      // An empty env file, so a developer's .env in the repository cannot change the run.
      const envFile = join(dir, 'empty.env');
      writeFileSync(envFile, '');
      const npm = npmStart({
        PORT: '0',
        LOG_LEVEL: 'info',
        LOG_FORMAT: 'json',
        ENV_FILE: envFile,
        SQLITE_PATH: join(dir, 'relay.db'),
        // The embedded simulator (no DOWNSTREAM_URL), healthy, so the one request is answered 200.
        SIM_FAIL_RATE: '0',
      });

      const listening = await npm.waitForLog(
        (line) => typeof line.msg === 'string' && line.msg.startsWith('relay listening on http://'),
        LISTENING_WITHIN_MS,
      );
      expect(listening.embeddedSimulator).toBe(true);
      const port = listening.port as number;

      const res = await fetch(`http://127.0.0.1:${port}/relay`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ hello: 'npm start' }),
        signal: AbortSignal.timeout(5_000),
      });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { echo: unknown }).echo).toEqual({ hello: 'npm start' });

      // To npm's pid only, as a process manager does; not to the group, as a terminal's Ctrl-C does.
      npm.child.kill('SIGTERM');
      const exit = await within(npm.exited, EXIT_WITHIN_MS, 'npm exiting after SIGTERM');

      expect(exit, npm.output()).toEqual({ code: 0, signal: null });
      expect(npm.logs.some((line) => line.signal === 'SIGTERM')).toBe(true);
      expect(npm.logs.some((line) => line.msg === 'shutdown complete')).toBe(true);
      expect(await tryConnect(port)).toBe('ECONNREFUSED');
    },
    LISTENING_WITHIN_MS + EXIT_WITHIN_MS + 10_000,
  );
});
