/**
 * `npm run load:spike [-- --n 1000 --concurrency 1000 --url http://127.0.0.1:3000 --keyed]`
 *
 * Sends a spike of POST /relay requests to a running relay (`npm start`), then
 * prints a histogram of statuses, the client-side time to each answer (p50/p99,
 * all statuses and per status) and the relay's /stats amplification and queue. Exits 0 even when some requests failed (that is the
 * demo); exits 1 only when the relay cannot be reached or an option is invalid.
 * Env fallbacks: SPIKE_N, SPIKE_CONCURRENCY, SPIKE_URL, SPIKE_TIMEOUT_S.
 */
import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';

const HEALTH_TIMEOUT_MS = 3_000;
const BAR_WIDTH = 40;

function fail(line: string): never {
  process.stderr.write(`load-spike: ${line}\n`);
  process.exit(1);
}

function parseOptions() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        n: { type: 'string' },
        concurrency: { type: 'string' },
        url: { type: 'string' },
        keyed: { type: 'boolean', default: false },
        'timeout-s': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }).values;
  } catch (error) {
    fail((error as Error).message);
  }
  if (parsed.help) {
    process.stdout.write('usage: npm run load:spike -- [--n 1000] [--concurrency 1000] [--url http://127.0.0.1:3000] [--keyed] [--timeout-s 60]\n');
    process.exit(0);
  }
  const int = (name: string, raw: string | undefined, fallback: number, min: number, max: number) => {
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || value < min || value > max) fail(`Expected --${name} to be a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
    return value;
  };
  const n = int('n', parsed.n ?? process.env.SPIKE_N, 1000, 1, 100_000);
  const concurrency = int('concurrency', parsed.concurrency ?? process.env.SPIKE_CONCURRENCY, n, 1, 10_000);
  const timeoutS = int('timeout-s', parsed['timeout-s'] ?? process.env.SPIKE_TIMEOUT_S, 60, 1, 3_600);
  const rawUrl = parsed.url ?? process.env.SPIKE_URL ?? 'http://127.0.0.1:3000';
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    fail(`Expected --url to be an http(s) URL, got ${JSON.stringify(rawUrl)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail(`Expected --url to be an http(s) URL, got ${JSON.stringify(rawUrl)}`);
  return { n, concurrency: Math.min(concurrency, n), timeoutS, origin: url.origin, keyed: parsed.keyed };
}

interface Outcome {
  /** HTTP status, or an error code when no answer came. */
  label: string;
  latencyMs: number;
}

async function checkReachable(pool: Pool, origin: string): Promise<void> {
  try {
    const res = await pool.request({ method: 'GET', path: '/health', signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS) });
    await res.body.dump();
  } catch (error) {
    const reason = (error as { code?: string }).code ?? (error as Error).message;
    fail(`no relay answering at ${origin} (${reason}); start one with \`npm start\``);
  }
}

async function spike(pool: Pool, options: ReturnType<typeof parseOptions>, signal: AbortSignal): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  let next = 0;
  const worker = async () => {
    while (next < options.n && !signal.aborted) {
      const i = next++;
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (options.keyed) headers['idempotency-key'] = `spike-${randomUUID()}`;
      const startedAt = performance.now();
      try {
        const res = await pool.request({ method: 'POST', path: '/relay', headers, body: JSON.stringify({ spike: true, i }), signal });
        await res.body.dump();
        outcomes.push({ label: String(res.statusCode), latencyMs: performance.now() - startedAt });
      } catch (error) {
        const label = signal.aborted ? 'timeout' : ((error as { code?: string }).code ?? 'error');
        outcomes.push({ label, latencyMs: performance.now() - startedAt });
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return outcomes;
}

function histogram(outcomes: Outcome[]): string[] {
  const counts = new Map<string, number>();
  for (const { label } of outcomes) counts.set(label, (counts.get(label) ?? 0) + 1);
  const max = Math.max(...counts.values());
  const width = Math.max(...[...counts.keys()].map((label) => label.length));
  return [...counts]
    .sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))
    .map(([label, count]) => `${label.padEnd(width)} ${'█'.repeat(Math.max(1, Math.round((count / max) * BAR_WIDTH)))} ${count}`);
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** One line per HTTP status: how long the answers with that status took, at the client. */
function latencyByStatus(outcomes: Outcome[]): string[] {
  const byStatus = new Map<string, number[]>();
  for (const { label, latencyMs } of outcomes) {
    if (!/^\d+$/.test(label)) continue;
    const latencies = byStatus.get(label);
    if (latencies) latencies.push(latencyMs);
    else byStatus.set(label, [latencyMs]);
  }
  return [...byStatus]
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([status, latencies]) => {
      const sorted = latencies.sort((a, b) => a - b);
      return `  ${status}: ${sorted.length} answers, p50 ${quantile(sorted, 0.5).toFixed(1)} ms, p99 ${quantile(sorted, 0.99).toFixed(1)} ms`;
    });
}

async function relayStats(pool: Pool): Promise<{ downstream?: { amplification?: number; attempts?: number; retries?: number }; queue?: unknown } | null> {
  try {
    const res = await pool.request({ method: 'GET', path: '/stats', signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS) });
    return (await res.body.json()) as { downstream?: { amplification?: number }; queue?: unknown };
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  const options = parseOptions();
  const pool = new Pool(options.origin, { connections: options.concurrency, pipelining: 1 });
  const deadline = new AbortController();
  // One listener per in-flight request, each removed when its request ends.
  setMaxListeners(options.concurrency + 1, deadline.signal);
  const timer = setTimeout(() => deadline.abort(), options.timeoutS * 1000);
  try {
    await checkReachable(pool, options.origin);
    const mode = options.concurrency >= options.n ? 'all at once' : `${options.concurrency} at a time`;
    process.stdout.write(
      `POST ${options.origin}/relay x ${options.n}, ${mode}, ${options.keyed ? 'a unique Idempotency-Key each' : 'no Idempotency-Key'}, ${options.timeoutS} s limit\n\n`,
    );
    const startedAt = performance.now();
    const outcomes = await spike(pool, options, deadline.signal);
    const elapsedS = (performance.now() - startedAt) / 1000;
    const answered = outcomes.filter((o) => /^\d+$/.test(o.label)).map((o) => o.latencyMs).sort((a, b) => a - b);
    const unsent = options.n - outcomes.length;

    const lines = histogram(outcomes);
    if (unsent > 0) lines.push(`(${unsent} not sent: the ${options.timeoutS} s limit passed)`);
    // Measured here, at the client: from sending the request to the end of its answer, queue wait and retries
    // included. A 429 comes back at once and a 200 after its retries, so one percentile over all of them says
    // little: each status gets its own line.
    lines.push(
      '',
      `client-side time to a full answer (send -> last byte, queue wait and retries included), ${answered.length} answers of every status: p50 ${quantile(answered, 0.5).toFixed(1)} ms, p99 ${quantile(answered, 0.99).toFixed(1)} ms; whole spike ${elapsedS.toFixed(2)} s`,
      ...latencyByStatus(outcomes),
    );
    const stats = await relayStats(pool);
    if (stats) {
      const d = stats.downstream ?? {};
      lines.push(
        `relay /stats after the spike: downstream.amplification ${String(d.amplification)} (attempts ${String(d.attempts)}, retries ${String(d.retries)}; lifetime counters, so earlier traffic counts too), queue now ${JSON.stringify(stats.queue)}`,
      );
    } else {
      lines.push('relay /stats: no answer');
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    clearTimeout(timer);
    await pool.destroy();
  }
}

await main();
