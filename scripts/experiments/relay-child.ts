import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnServer } from '../../bench/child-server.js';

export interface MemorySample {
  /** Epoch ms. */
  atMs: number;
  rssBytes: number;
  heapUsedBytes: number;
}

export interface RelayChild {
  url: string;
  pid: number;
  /** The relay's own memory readings so far (every 100 ms, written every 300 ms). */
  memory(): MemorySample[];
  /** SIGTERM (then SIGKILL after 10 s); returns every memory reading. Idempotent. */
  stop(): Promise<MemorySample[]>;
}

/**
 * The settings every experiment's relay shares: in-memory SQLite, quiet logs,
 * and a fixed random seed; `env` says what the experiment varies.
 */
export async function startRelayChild(env: Record<string, string>, seed: number): Promise<RelayChild> {
  const dir = mkdtempSync(join(tmpdir(), 'relay-experiment-'));
  const memFile = join(dir, 'memory.json');
  const child = await spawnServer({
    entry: 'scripts/experiments/serve-relay.ts',
    env: {
      EXPERIMENT_RELAY_ENV: JSON.stringify({ PORT: '0', SQLITE_PATH: ':memory:', LOG_LEVEL: 'error', ...env }),
      EXPERIMENT_SEED: String(seed),
      EXPERIMENT_MEM_FILE: memFile,
    },
  });
  const memory = (): MemorySample[] => {
    try {
      return JSON.parse(readFileSync(memFile, 'utf8')) as MemorySample[];
    } catch {
      // Not written yet, or caught mid-write: no readings this time.
      return [];
    }
  };
  let stopped: Promise<MemorySample[]> | undefined;
  return {
    url: child.url,
    pid: child.pid,
    memory,
    stop: () =>
      (stopped ??= child.stop().then(() => {
        const readings = memory();
        rmSync(dir, { recursive: true, force: true });
        return readings;
      })),
  };
}
