import { spawnSync } from 'node:child_process';

/** Whether `promtool` (Debian package `prometheus`) is on PATH. */
export const promtoolAvailable = !spawnSync('promtool', ['--version']).error;

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
