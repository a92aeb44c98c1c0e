import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { runJitter } from './jitter.js';
import { runQueueSize } from './queue-size.js';
import { runTimeout } from './timeout.js';
import { runWorkers } from './workers.js';
import { markdownTable, type ExperimentOptions, type ExperimentResult } from './report.js';

export const EXPERIMENTS = {
  jitter: runJitter,
  'queue-size': runQueueSize,
  timeout: runTimeout,
  workers: runWorkers,
} satisfies Record<string, (options: ExperimentOptions) => Promise<ExperimentResult>>;

export type ExperimentName = keyof typeof EXPERIMENTS;
export const EXPERIMENT_NAMES = Object.keys(EXPERIMENTS) as ExperimentName[];

export interface RunOptions extends ExperimentOptions {
  outDir: string;
  print: (text: string) => void;
}

/** Runs the experiments one after the other (never two at once on two cores), printing and writing each as it ends. */
export async function runExperiments(names: readonly ExperimentName[], options: RunOptions): Promise<ExperimentResult[]> {
  const outDir = resolve(options.outDir);
  await mkdir(outDir, { recursive: true });
  const results: ExperimentResult[] = [];
  for (const name of names) {
    const result = await EXPERIMENTS[name](options);
    const file = join(outDir, `${name}.svg`);
    await writeFile(file, result.svg);
    options.print(`\n## ${result.title}${options.smoke ? ' (smoke)' : ''}\n\n${markdownTable(result.columns, result.rows)}\n\n${result.notes.map((n) => `- ${n}`).join('\n')}\n- Chart: ${file}\n`);
    results.push(result);
  }
  return results;
}
