import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../src/sim/simulator.js';
import { killStartedRelayProcesses, spawnRelayProcess, startRelayProcess } from './helpers/relay-process.js';
import { removeDb, tempDbPath } from './helpers/temp-db.js';
import { eventually, healthySim } from './helpers/test-relay.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  await killStartedRelayProcesses();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Answer {
  status: number;
  contentType: string | undefined;
  body: unknown;
}

/** One request on its own connection (no keep-alive pool), so "refused" means the listener, not a reused socket. */
function call(method: string, url: string, body?: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(url, { method, agent: false, headers: payload === undefined ? {} : { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'], body: text ? JSON.parse(text) : undefined }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

describe('shutdown', () => {
  it('on SIGTERM, queued and in-flight requests all get their answer, new work is refused, and the process exits 0', async () => {
    const deadlineMs = 5_000;
    const sim: Simulator = await startSimulator({ profile: healthySim });
    cleanups.push(() => sim.close());
    const SQLITE_PATH = tempDbPath('relay-shutdown');
    cleanups.push(() => removeDb(SQLITE_PATH));
    // Two workers for three requests: two are in flight at the downstream, one waits in the queue.
    sim.script([{ delayMs: 700 }, { delayMs: 700 }, { delayMs: 700 }]);
    const relay = await startRelayProcess({
      DOWNSTREAM_URL: `${sim.url}/`,
      SQLITE_PATH,
      WORKERS: '2',
      REQUEST_DEADLINE_MS: String(deadlineMs),
    });

    const answers = [1, 2, 3].map((n) => call('POST', `${relay.url}/relay`, { n }).catch((error: unknown) => error));
    // Signal only once the relay holds all three: two at the downstream, one in its queue.
    await eventually(async () => {
      if (sim.counters().inFlight !== 2) return false;
      const { queue } = (await call('GET', `${relay.url}/stats`)).body as { queue: { depth: number; busy: number } };
      return queue.busy === 2 && queue.depth === 1;
    }, 3_000, 10);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const signalledAt = Date.now();
    relay.child.kill('SIGTERM');
    await relay.waitForLog((line) => line.signal === 'SIGTERM', 2_000);

    // New work after the signal: refused with 503, or not even connected once the listener closed.
    const late = await call('POST', `${relay.url}/relay`, { late: true }).catch((error: unknown) => error);
    if (late instanceof Error) {
      // RESET: the connection raced the listener's close (the log line is written just before it) and sat in the accept backlog.
      expect(['ECONNREFUSED', 'ECONNRESET']).toContain((late as NodeJS.ErrnoException).code);
    } else {
      expect((late as Answer).status).toBe(503);
      expect((late as Answer).contentType).toMatch(/^application\/problem\+json/);
    }

    const results = (await Promise.all(answers)) as Answer[];
    expect(results.map((r) => (r instanceof Error ? r.message : r.status))).toEqual([200, 200, 200]);
    expect(results.map((r) => (r.body as { echo: unknown }).echo)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);

    const exit = await relay.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(Date.now() - signalledAt).toBeLessThan(deadlineMs);
    // The late request never reached the downstream.
    expect(sim.counters().received).toBe(3);
    expect(relay.stderr()).toBe('');
  });

  it('a bad env value stops the process with one readable line', async () => {
    const relay = spawnRelayProcess({ PORT: 'abc', SQLITE_PATH: ':memory:' });
    const exit = await relay.exited;
    expect(exit).toEqual({ code: 1, signal: null });
    const stderr = relay.stderr();
    const lines = stderr.split('\n').filter((line) => line.trim() !== '');
    expect(lines, stderr).toHaveLength(1);
    expect(lines[0]).toContain('PORT');
    expect(lines[0]).toContain('abc');
    expect(stderr).not.toMatch(/^\s+at /m);
    expect(relay.logs).toEqual([]);
  });
});
