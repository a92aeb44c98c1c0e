import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runExperiments, type ExperimentName } from '../scripts/experiments/experiments.js';

const outDir = mkdtempSync(join(tmpdir(), 'experiments-test-'));
afterAll(() => rmSync(outDir, { recursive: true, force: true }));

/** Enough of XML to tell a well-formed SVG: tags nest and close, attributes are quoted, text has no raw `<` or bare `&`. */
function parseXml(text: string): { root: string; elements: { name: string; attributes: Record<string, string> }[] } {
  const body = text.replace(/^<\?xml[^?]*\?>\s*/, '').trim();
  const stack: string[] = [];
  const elements: { name: string; attributes: Record<string, string> }[] = [];
  let root: string | undefined;
  let at = 0;
  const tag = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>/y;
  while (at < body.length) {
    const next = body.indexOf('<', at);
    const textPart = body.slice(at, next === -1 ? body.length : next);
    if (/&(?!(lt|gt|amp|quot|apos|#\d+|#x[0-9a-fA-F]+);)/.test(textPart)) throw new Error(`bare & in text at ${at}`);
    if (stack.length === 0 && textPart.trim() !== '') throw new Error(`text outside the root at ${at}`);
    if (next === -1) break;
    tag.lastIndex = next;
    const match = tag.exec(body);
    if (!match) throw new Error(`malformed tag at ${next}: ${body.slice(next, next + 60)}`);
    const [, closing, name, rawAttributes, selfClosing] = match;
    if (closing) {
      if (stack.pop() !== name) throw new Error(`</${name}> closes nothing open at ${next}`);
    } else {
      if (stack.length === 0) {
        if (root !== undefined) throw new Error('a second root element');
        root = name!;
      }
      const attributes = Object.fromEntries([...rawAttributes!.matchAll(/([\w:.-]+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
      elements.push({ name: name!, attributes });
      if (!selfClosing) stack.push(name!);
    }
    at = tag.lastIndex;
  }
  if (stack.length > 0) throw new Error(`unclosed <${stack.join('>, <')}>`);
  if (root === undefined) throw new Error('no root element');
  return { root, elements };
}

const expectedRows: Record<ExperimentName, { rows: string[]; series: number }> = {
  jitter: { rows: ['none', 'full', 'equal', 'decorrelated'], series: 4 },
  'queue-size': { rows: ['10', '100', '1,000'], series: 12 },
  timeout: { rows: ['100 ms', '500 ms', '1,000 ms'], series: 6 },
  workers: { rows: ['1', '5', '10', '20', '20 (AIMD on)'], series: 10 },
};

describe('npm run experiment -- <name> --smoke', () => {
  for (const [name, expected] of Object.entries(expectedRows) as [ExperimentName, (typeof expectedRows)[ExperimentName]][]) {
    it(`${name}: prints a table with a row per variant and writes a well-formed SVG with every series`, async () => {
      let printed = '';
      const [result] = await runExperiments([name], { smoke: true, seed: 42, outDir, print: (text) => (printed += text), progress: () => undefined });
      expect(result!.rows.map((row) => row[0])).toEqual(expected.rows);
      for (const row of result!.rows) expect(row).toHaveLength(result!.columns.length);
      for (const variant of expected.rows) expect(printed).toContain(`| ${variant} |`);

      const svg = parseXml(readFileSync(join(outDir, `${name}.svg`), 'utf8'));
      expect(svg.root).toBe('svg');
      const series = svg.elements.filter((e) => e.name === 'path' && e.attributes.class === 'series');
      expect(series).toHaveLength(expected.series);
      for (const path of series) expect(path.attributes.d).toMatch(/^M[\d.]+ [\d.]+/);
    }, 40_000);
  }

  it('the checker refuses a malformed SVG', () => {
    expect(() => parseXml('<svg><g></svg>')).toThrow();
    expect(() => parseXml('<svg><text>a & b</text></svg>')).toThrow('bare &');
    expect(parseXml('<svg xmlns="x"><text>a &amp; b</text><path d="M1 2"/></svg>').root).toBe('svg');
  });
});
