import { describe, expect, it } from 'vitest';
import { runDlqDemo } from '../scripts/demo-dlq-story.js';

describe('npm run demo:dlq', () => {
  it('catches every duplicate, dead-letters what the provider refused, recovers by strategy, and every count matches the provider log', async () => {
    const lines: string[] = [];
    const report = await runDlqDemo({ messages: 200, batchSize: 10, duplicateShare: 0.25, seed: 7, print: (line) => lines.push(line) });
    for (const check of report.checks) expect(check, check.what).toMatchObject({ ok: true });
    // The failures are planned per message (shares of the 150 distinct ones), so the story's counts are exact.
    expect(report).toMatchObject({
      produced: 200,
      uniqueMessages: 150,
      duplicatesCaught: 50,
      // 150 - 9 unsubscribed - 12 bad addresses - 18 in the region that is down - 5 busy on every attempt.
      processed: 106,
      retriedThrough: 12,
      deadLettered: { permanent: 21, transient: 23 },
      recovered: { discarded: 9, requeued: 23, requeuedAgainDead: 0, edited: 12 },
      leftInDlq: 0,
    });
    expect(report.checks.find((c) => c.what === 'messages delivered twice')?.downstream).toBe(0);
    expect(lines.join('\n')).toMatch(/retry edited: POST \/dlq\/:id\/replay .*: 12 delivered/);
  }, 60_000);
});
