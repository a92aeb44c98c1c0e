/**
 * `npm run experiment -- <jitter|queue-size|timeout|workers|all> [--smoke] [--seed N] [--out DIR]`
 *
 * Runs the learning plan's experiments against the simulator on loopback,
 * prints each one's table (markdown) and writes its chart to DIR/<name>.svg
 * (default docs/experiments). EXPERIMENT_SMOKE=1 is the same as --smoke.
 */
import { parseArgs } from 'node:util';
import { EXPERIMENT_NAMES, runExperiments } from './experiments.js';

function fail(line: string): never {
  process.stderr.write(`experiment: ${line}\n`);
  process.exit(1);
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      smoke: { type: 'boolean', default: false },
      seed: { type: 'string', default: '42' },
      out: { type: 'string', default: 'docs/experiments' },
    },
  });
} catch (error) {
  fail((error as Error).message);
}
const [name, ...extra] = parsed.positionals;
const known = [...EXPERIMENT_NAMES, 'all'];
if (name === undefined || extra.length > 0 || !known.includes(name)) {
  fail(`Expected one experiment name, one of ${known.join(', ')}; got ${JSON.stringify(parsed.positionals.join(' '))}`);
}
const seed = Number(parsed.values.seed);
if (!Number.isInteger(seed) || seed < 0) fail(`Expected --seed to be a whole number from 0 and up, got ${JSON.stringify(parsed.values.seed)}`);

// A bounded run: whatever hangs, the process ends.
const watchdog = setTimeout(() => fail('still running after 10 minutes; giving up'), 600_000);
watchdog.unref();

await runExperiments(name === 'all' ? [...EXPERIMENT_NAMES] : [name as (typeof EXPERIMENT_NAMES)[number]], {
  smoke: parsed.values.smoke || process.env.EXPERIMENT_SMOKE === '1',
  seed,
  outDir: parsed.values.out,
  print: (text) => process.stdout.write(text),
  progress: (line) => process.stderr.write(`… ${line}\n`),
});
