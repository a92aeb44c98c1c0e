import { spawnSync } from 'node:child_process';

/** Whether `promtool` (Debian package `prometheus`) is on PATH. */
export const promtoolAvailable = !spawnSync('promtool', ['--version']).error;

/** `REQUIRE_PROMTOOL=1` (CI): a missing promtool fails the run instead of skipping its tests. */
export const requirePromtool = process.env.REQUIRE_PROMTOOL === '1';

/**
 * Whether the promtool tests can run. Without promtool they are skipped with a
 * warning, unless `REQUIRE_PROMTOOL=1`, where this throws so that the run fails visibly.
 */
export function promtoolForTests(): boolean {
  if (promtoolAvailable) return true;
  const message = 'promtool is not on PATH (Debian package `prometheus`)';
  if (requirePromtool) throw new Error(`${message}, and REQUIRE_PROMTOOL=1 requires it`);
  console.warn(`${message}: skipping the promtool tests (set REQUIRE_PROMTOOL=1 to fail instead)`);
  return false;
}

/** Runs promtool with `args` in `cwd`; its exit status and everything it printed. */
export function promtool(args: string[], cwd?: string): { status: number | null; output: string } {
  const result = spawnSync('promtool', args, { encoding: 'utf8', ...(cwd ? { cwd } : {}), timeout: 30_000 });
  return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() };
}

/** The value of one sample in Prometheus text, e.g. sampleValue(text, 'relay_requests_total{outcome="delivered"}'). */
export function sampleValue(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1).trim().split(' ')[0]);
}

/**
 * Runs `promtool check metrics` over the relay's own families only: prom-client's
 * default nodejs_ gauges fail its lint, which the contract leaves to prom-client.
 * Returns promtool's exit status and everything it printed.
 */
export function lintRelayFamilies(exposition: string): { status: number | null; output: string; relayLines: string } {
  const relayLines = `${exposition
    .split('\n')
    .filter((line) => /^(# (HELP|TYPE) )?relay_/.test(line))
    .join('\n')}\n`;
  const result = spawnSync('promtool', ['check', 'metrics'], { input: relayLines, encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}`.trim(), relayLines };
}
