/**
 * `npm run demo:dlq [-- --messages 200 --batch 10 --duplicates 0.25 --seed 7]`
 *
 * The anti-stampede + idempotency + DLQ walk-through as a story: a producer
 * sends messages in batches with duplicate keys, a notification provider
 * refuses some for good and some for a while, and an operator recovers the
 * dead letters by strategy. Every count is checked against the provider's own
 * log; exit 1 if one does not match. Which messages fail, and how often, is
 * planned per message from the seed, so the counts are the same every run.
 */
import { parseArgs } from 'node:util';
import { runDlqDemo } from './demo-dlq-story.js';

function fail(line: string): never {
  process.stderr.write(`demo-dlq: ${line}\n`);
  process.exit(1);
}

let values;
try {
  values = parseArgs({
    options: {
      messages: { type: 'string', default: '200' },
      batch: { type: 'string', default: '10' },
      duplicates: { type: 'string', default: '0.25' },
      seed: { type: 'string', default: '7' },
    },
  }).values;
} catch (error) {
  fail((error as Error).message);
}
const whole = (name: string, raw: string, min: number, max: number): number => {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min || n > max) fail(`Expected --${name} to be a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return n;
};
const duplicateShare = Number(values.duplicates);
if (!(duplicateShare >= 0 && duplicateShare < 1)) fail(`Expected --duplicates to be a share from 0 to below 1, got ${JSON.stringify(values.duplicates)}`);

const watchdog = setTimeout(() => fail('still running after 2 minutes; giving up'), 120_000);
watchdog.unref();

const report = await runDlqDemo({
  messages: whole('messages', values.messages, 10, 10_000),
  batchSize: whole('batch', values.batch, 1, 100),
  duplicateShare,
  seed: whole('seed', values.seed, 0, 2 ** 31),
  print: (line) => process.stdout.write(`${line}\n`),
});

const { recovered } = report;
process.stdout.write(
  [
    '',
    `produced            ${report.produced} (${report.uniqueMessages} distinct messages)`,
    `processed           ${report.processed} in the first pass (${report.retriedThrough} after busy 503s, by the job's own retries)`,
    `duplicates caught   ${report.duplicatesCaught}`,
    `dead-lettered       ${report.deadLettered.permanent + report.deadLettered.transient} (${report.deadLettered.permanent} permanent, ${report.deadLettered.transient} transient)`,
    `recovered           discard permanent: ${recovered.discarded}; requeue transient: ${recovered.requeued}${recovered.requeuedAgainDead > 0 ? ` (${recovered.requeuedAgainDead} dead-lettered again)` : ''}; retry edited: ${recovered.edited}`,
    `left in the DLQ     ${report.leftInDlq}`,
    '',
    'Checked against the provider\'s own log:',
    ...report.checks.map((c) => `  ${c.ok ? 'ok  ' : 'FAIL'} ${c.what}: relay ${c.relay}, provider ${c.downstream}`),
    '',
  ].join('\n'),
);
if (!report.checks.every((c) => c.ok)) process.exit(1);
process.exit(0);
