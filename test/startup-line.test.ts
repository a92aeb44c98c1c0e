import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { useProcessTestScope } from './helpers/process-test-scope.js';
import { startRelayProcess } from './helpers/relay-process.js';

const scope = useProcessTestScope('startup-line');

/** A loopback port nothing listens on (taken, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const isListening = (line: Record<string, unknown>) => typeof line.msg === 'string' && line.msg.startsWith('relay listening on');
const isUnreachable = (line: Record<string, unknown>) => typeof line.msg === 'string' && line.msg.includes('downstream not answering at start');

describe('the start-up line (a real relay process)', () => {
  it('says what to try next and which limits are in force, and warns once when the downstream does not answer', async () => {
    const port = await closedPort();
    const relay = await startRelayProcess({
      DOWNSTREAM_URL: `http://127.0.0.1:${port}/`,
      SQLITE_PATH: scope.tempDb(),
      RATE_LIMIT_RPS: '40',
      RATE_LIMIT_BURST: '8',
      WORKERS: '32',
      QUEUE_CAPACITY: '50',
    });
    const listening = await relay.waitForLog(isListening);
    expect(listening.msg).toBe(`relay listening on ${relay.url}`);
    expect(listening.limits).toEqual({ default: 'rate limit 40 rps, burst 8; concurrency <= 32 (AIMD enforce); breaker enforce; retry budget enforce; queue 50' });
    const tryNext = listening.tryNext as Record<string, string>;
    expect(tryNext.send).toBe(`curl -i ${relay.url}/relay -H 'Content-Type: application/json' -d '{}'`);
    expect(tryNext.stats).toBe(`${relay.url}/stats`);
    // Every URL it names answers.
    for (const [name, url] of Object.entries(tryNext)) {
      if (name === 'send') continue;
      expect((await fetch(url)).status, url).toBe(200);
    }

    const warning = await relay.waitForLog(isUnreachable, 5_000);
    expect(warning).toMatchObject({ level: 'warn', route: 'default', unreachable: [{ url: `http://127.0.0.1:${port}/`, reason: 'ECONNREFUSED' }] });
    // The probe is not traffic: the breaker and the stats saw nothing.
    const stats = (await (await fetch(`${relay.url}/stats`)).json()) as { totals: { requests: number }; downstream: { attempts: number } };
    expect(stats.totals.requests).toBe(0);
    expect(stats.downstream.attempts).toBe(0);
    expect(relay.logs.filter(isUnreachable)).toHaveLength(1);
  }, 30_000);

  it('with tracing on and the collector down, says so at warn (at most once per 30 s) and never shows the endpoint password', async () => {
    const sim = await scope.simulator();
    const collector = await closedPort();
    const relay = await startRelayProcess({
      DOWNSTREAM_URL: `${sim.url}/`,
      SQLITE_PATH: scope.tempDb(),
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://otel:s3cret-pass@127.0.0.1:${collector}`,
      OTEL_BSP_SCHEDULE_DELAY: '50',
    });
    const isExportError = (line: Record<string, unknown>) => typeof line.msg === 'string' && line.msg.startsWith('tracing: spans could not be exported');
    for (let i = 0; i < 3; i++) {
      expect((await fetch(`${relay.url}/relay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    const line = await relay.waitForLog(isExportError, 10_000);
    expect(line.level).toBe('warn');
    expect(line.msg).toContain('ECONNREFUSED');
    expect(relay.logs.filter(isExportError)).toHaveLength(1);
    expect(JSON.stringify(relay.logs)).not.toContain('s3cret-pass');
  }, 30_000);

  it('says nothing about a downstream that answers', async () => {
    const sim = await scope.simulator();
    const relay = await startRelayProcess({ DOWNSTREAM_URL: `${sim.url}/`, SQLITE_PATH: scope.tempDb() });
    const listening = await relay.waitForLog(isListening);
    expect(String((listening.limits as Record<string, string>).default)).toMatch(/^rate limit .+; concurrency <= \d+ \(AIMD \w+\); breaker \w+; retry budget \w+; queue \d+$/);
    // The probe has a 1.5 s bound; past it, a warning would have been written.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(relay.logs.filter(isUnreachable)).toEqual([]);
    expect(sim.counters().received).toBe(0);
  }, 30_000);
});
