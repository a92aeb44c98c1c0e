import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { RELAY_ENV_NAMES } from '../../src/config.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Variables the relay reads: never inherited from the test runner's environment, so a stray export cannot change a test. */
const RELAY_VARIABLES = RELAY_ENV_NAMES;

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A relay started as a real process (`node --import tsx src/main.ts`). */
export interface RelayProcess {
  readonly child: ChildProcess;
  /** Every JSON log line written to stdout so far, parsed. */
  readonly logs: Array<Record<string, unknown>>;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Everything written to stdout so far that was not a JSON log line. */
  otherStdout(): string;
  /** Settles when the process has exited. */
  readonly exited: Promise<ProcessExit>;
  /** Resolves with the first log line (past or future) that matches; rejects on timeout or exit. */
  waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Sends `signal` (by pid) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<ProcessExit>;
}

export interface ListeningRelayProcess extends RelayProcess {
  port: number;
  /** `http://127.0.0.1:<port>` */
  url: string;
}

const started = new Set<ChildProcess>();

/** Spawns the relay process; it is not yet known to be listening (see {@link startRelayProcess}). */
export function spawnRelayProcess(env: Record<string, string>): RelayProcess {
  const inherited = { ...process.env };
  for (const name of RELAY_VARIABLES) delete inherited[name];
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: REPO_ROOT,
    // ENV_FILE empty: a developer's .env must not change a test.
    env: { ...inherited, PORT: '0', LOG_LEVEL: 'info', ENV_FILE: '/dev/null', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.add(child);

  const logs: Array<Record<string, unknown>> = [];
  const waiters = new Set<() => void>();
  let stdoutRest = '';
  let other = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (stdoutRest + chunk).split('\n');
    stdoutRest = lines.pop() ?? '';
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        other += `${line}\n`;
      }
    }
    for (const wake of [...waiters]) wake();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });

  const exited = new Promise<ProcessExit>((resolve) => {
    child.once('exit', (code, signal) => {
      started.delete(child);
      resolve({ code, signal });
      for (const wake of [...waiters]) wake();
    });
  });
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
  });

  const waitForLog: RelayProcess['waitForLog'] = (match, timeoutMs = 10_000) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${stderr.trim() || '(empty)'}`));
      }, timeoutMs);
      function check() {
        const line = logs.find(match);
        if (line !== undefined || hasExited || child.exitCode !== null || child.signalCode !== null) {
          clearTimeout(timer);
          waiters.delete(check);
          if (line !== undefined) resolve(line);
          else reject(new Error(`relay process exited before the expected log line; stderr: ${stderr.trim() || '(empty)'}`));
        }
      }
      waiters.add(check);
      check();
    });

  return {
    child,
    logs,
    stderr: () => stderr,
    otherStdout: () => other,
    exited,
    waitForLog,
    async kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Spawns the relay and waits for its "listening" log line (the first one with `port`). */
export async function startRelayProcess(env: Record<string, string>, timeoutMs = 15_000): Promise<ListeningRelayProcess> {
  const relay = spawnRelayProcess(env);
  try {
    const line = await relay.waitForLog((l) => typeof l.port === 'number', timeoutMs);
    const port = line.port as number;
    return Object.assign(relay, { port, url: `http://127.0.0.1:${port}` });
  } catch (error) {
    await relay.kill('SIGKILL');
    throw error;
  }
}

/** SIGKILLs every relay process this module started that is still running (afterEach safety net). */
export async function killStartedRelayProcesses(): Promise<void> {
  const running = [...started];
  await Promise.all(
    running.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
}

/** A job as `GET /jobs/:id` shows it (the fields the process-level tests read). */
export interface JobView {
  id: string;
  state: 'queued' | 'in_flight' | 'delivered' | 'dead';
  idempotencyKey: string;
  attempts: Array<{ outcome: string; status?: number }>;
  response: { status: number; contentType: string | null; body: unknown } | null;
  dlqId: string | null;
  lastError: string | null;
}

/** `POST /relay` with `Prefer: respond-async`; resolves with the raw Response (the caller asserts the 202). */
export function postRelayAsync(baseUrl: string, body: unknown, idempotencyKey?: string): Promise<Response> {
  return fetch(`${baseUrl}/relay`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      prefer: 'respond-async',
      ...(idempotencyKey === undefined ? {} : { 'idempotency-key': idempotencyKey }),
    },
    body: JSON.stringify(body),
  });
}

/** `GET /jobs/:id`: the job, or null on 404; any other status throws (with the body, for the failure message). */
export async function getJob(baseUrl: string, id: string): Promise<JobView | null> {
  const res = await fetch(`${baseUrl}/jobs/${encodeURIComponent(id)}`);
  if (res.status === 404) return null;
  if (res.status !== 200) throw new Error(`GET /jobs/${id} answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as JobView;
}

/** `GET /jobs` (admin, loopback): how many jobs the store holds per state. */
export async function jobCounts(baseUrl: string): Promise<Record<JobView['state'], number>> {
  const res = await fetch(`${baseUrl}/jobs`);
  if (res.status !== 200) throw new Error(`GET /jobs answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { counts: Record<JobView['state'], number> }).counts;
}
