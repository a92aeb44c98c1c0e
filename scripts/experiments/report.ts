/** What one experiment hands back: a table for the terminal and LEARNINGS.md, and a chart. */
export interface ExperimentResult {
  name: string;
  title: string;
  /** Column headers, units in the names. */
  columns: string[];
  /** One row per variant; the first cell names it. */
  rows: string[][];
  /** A complete SVG document. */
  svg: string;
  /** Lines printed under the table: what was held fixed, what varies from run to run. */
  notes: string[];
}

export interface ExperimentOptions {
  /** Tiny counts, a few seconds: what the test suite runs. */
  smoke: boolean;
  seed: number;
  progress: (line: string) => void;
}

/** The value at quantile q (0-1) of the numbers, nearest rank; NaN for none. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** A GitHub-flavoured markdown table, so the terminal output pastes into LEARNINGS.md as is. */
export function markdownTable(columns: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [line(columns), line(columns.map(() => '---')), ...rows.map(line)].join('\n');
}

export function ms(value: number): string {
  return Number.isFinite(value) ? `${Math.round(value).toLocaleString('en-US')}` : 'n/a';
}

export function pct(part: number, whole: number): string {
  return whole === 0 ? 'n/a' : `${((100 * part) / whole).toFixed(1)}%`;
}

export function mib(bytes: number): string {
  return Number.isFinite(bytes) ? (bytes / 1_048_576).toFixed(1) : 'n/a';
}

/** Counts per bucket of `bucketMs` from 0 to `untilMs`, as chart points (x in seconds). */
export function perBucket(timesMs: readonly number[], bucketMs: number, untilMs: number): { x: number; y: number }[] {
  const counts = new Array<number>(Math.max(1, Math.ceil(untilMs / bucketMs))).fill(0);
  for (const t of timesMs) {
    const i = Math.floor(t / bucketMs);
    if (i >= 0 && i < counts.length) counts[i]! += 1;
  }
  return counts.map((y, i) => ({ x: (i * bucketMs) / 1000, y }));
}

/** The series' colours, in a fixed order so a variant keeps its colour across charts. */
export const PALETTE = ['#d62728', '#1f77b4', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'] as const;

/**
 * Runs `run` for each variant, in order; a smoke run starts them all at once
 * (its counts are tiny, and the test suite waits for it), a full run one at a
 * time so that variants do not share the machine.
 */
export async function eachVariant<V, R>(variants: readonly V[], options: ExperimentOptions, run: (variant: V) => Promise<R>): Promise<R[]> {
  if (options.smoke) return Promise.all(variants.map(run));
  const results: R[] = [];
  for (const variant of variants) results.push(await run(variant));
  return results;
}
