/**
 * The DLQ walk-through as a function, so that `npm run demo:dlq` prints it and
 * a test runs it at a smaller size. Every count the relay reports is checked
 * against the provider's own log of the calls it received.
 */
import type { AddressInfo } from 'node:net';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/observability/logger.js';
import { createRelayServer } from '../src/app.js';
import { buildRelay } from '../src/relay.js';
import { startSimulator } from '../src/sim/simulator.js';
import { FLAKY_REGION_DOMAIN, UNSUBSCRIBED_DOMAIN, startProvider, type ProviderCall } from './demo-dlq-provider.js';
import { seededRandom } from './experiments/seeded-random.js';

export interface DemoOptions {
  /** Messages the producer sends, duplicates included. @default 200 */
  messages: number;
  /** @default 10 */
  batchSize: number;
  /** Share of messages that resend an earlier message's key (and body). @default 0.25 */
  duplicateShare: number;
  seed: number;
  print: (line: string) => void;
}

export interface Check {
  what: string;
  relay: number;
  downstream: number;
  ok: boolean;
}

export interface DemoReport {
  produced: number;
  uniqueMessages: number;
  duplicatesCaught: number;
  processed: number;
  /** Messages whose first calls met the provider's 503s and were delivered by the job's own retries. */
  retriedThrough: number;
  deadLettered: { permanent: number; transient: number };
  /** `requeued`: delivered after the redrive; `requeuedAgainDead`: moved, then dead-lettered again. */
  recovered: { discarded: number; requeued: number; requeuedAgainDead: number; edited: number | 'not available yet' };
  leftInDlq: number;
  checks: Check[];
}

/**
 * `busy`: the provider answers 503 to its first 1-2 calls, which the job's own
 * retries absorb; `stuck`: to as many calls as a job makes, so it is
 * dead-lettered as transient and goes through once redriven.
 */
type Kind = 'ok' | 'busy' | 'stuck' | 'unsubscribed' | 'bad-address' | 'flaky-region';
interface Message {
  key: string;
  body: { to: string; text: string; seq: number };
  kind: Kind;
  /** 503s the provider answers this message before it goes through. */
  busyCalls: number;
}

const WAIT_MAX_MS = 30_000;
/** Attempts per job before it is dead-lettered (JOB_MAX_ATTEMPTS), and so the 503s a `stuck` message meets. */
const JOB_ATTEMPTS = 3;

/** Seeded: which messages are bad, flaky or resent is the same every run. */
function makeMessages(options: DemoOptions): { sequence: Message[]; unique: Message[] } {
  const random = seededRandom(options.seed);
  const duplicates = Math.round(options.messages * options.duplicateShare);
  const uniqueCount = options.messages - duplicates;
  // Fixed shares, at least one of each, so every strategy has something to recover.
  const counts: [Kind, number][] = [
    ['unsubscribed', Math.max(1, Math.round(uniqueCount * 0.06))],
    ['bad-address', Math.max(1, Math.round(uniqueCount * 0.08))],
    ['flaky-region', Math.max(1, Math.round(uniqueCount * 0.12))],
    ['busy', Math.max(1, Math.round(uniqueCount * 0.08))],
    ['stuck', Math.max(1, Math.round(uniqueCount * 0.03))],
  ];
  const kinds: Kind[] = counts.flatMap(([kind, n]) => Array<Kind>(n).fill(kind));
  while (kinds.length < uniqueCount) kinds.push('ok');
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
  }
  const runId = `${Date.now().toString(36)}-${options.seed}`;
  const unique = kinds.map((kind, seq): Message => {
    const user = `user${seq}`;
    const to = kind === 'unsubscribed' ? `${user}${UNSUBSCRIBED_DOMAIN}` : kind === 'bad-address' ? `${user} at example.test` : kind === 'flaky-region' ? `${user}${FLAKY_REGION_DOMAIN}` : `${user}@example.test`;
    // A busy message's 503s are drawn once, here: the same message fails as often whatever the order of the calls.
    const busyCalls = kind === 'busy' ? 1 + Math.floor(random() * (JOB_ATTEMPTS - 1)) : kind === 'stuck' ? JOB_ATTEMPTS : 0;
    return { key: `msg-${runId}-${seq}`, body: { to, text: `Your order #${1000 + seq} has shipped`, seq }, kind, busyCalls };
  });
  const sequence = [...unique];
  for (let d = 0; d < duplicates; d++) {
    // A resend comes after its original, as a producer retrying after a lost answer would send it.
    const original = unique[Math.floor(random() * unique.length)]!;
    const after = sequence.indexOf(original);
    sequence.splice(after + 1 + Math.floor(random() * (sequence.length - after)), 0, original);
  }
  return { sequence, unique };
}

export async function runDlqDemo(options: DemoOptions): Promise<DemoReport> {
  const { print } = options;
  const { sequence, unique } = makeMessages(options);
  // No random failures in the simulator: which concurrent call draws a failure would change every count from run
  // to run, and a redriven message could fail again. The transient failures are the provider's, planned per message.
  const simulator = await startSimulator({ profile: { failRate: 0, latencyMs: 5, jitterMs: 2, tailRate: 0, hangRate: 0 }, random: seededRandom(options.seed) });
  const provider = await startProvider(simulator, { busyCallsFor: (seq) => unique[seq]?.busyCalls ?? 0 });
  const config = loadConfig({
    DOWNSTREAM_URL: provider.url,
    SQLITE_PATH: ':memory:',
    LOG_LEVEL: 'silent',
    // Short job schedules so the story plays in seconds: 3 attempts, 20-100 ms apart.
    JOB_MAX_ATTEMPTS: String(JOB_ATTEMPTS),
    JOB_RETRY_BASE_DELAY_MS: '20',
    JOB_RETRY_MAX_DELAY_MS: '100',
    JOB_POLL_MS: '20',
    // The operator redrives by hand in this story; the automatic redrive would do it after 5 minutes.
    DLQ_REDRIVE_MAX: '0',
  });
  const relay = await buildRelay(config, createLogger({ level: 'silent' }), { random: seededRandom(options.seed + 1) });
  const server = createRelayServer(relay.app).listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // `any`: the relay's JSON answers, read as its tests read them; the story checks their numbers against the provider's log, not their shapes.
  const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> => {
    const res = await fetch(`${base}${path}`, {
      method,
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : null };
  };
  const waitForJobs = async (): Promise<Record<string, number>> => {
    const until = Date.now() + WAIT_MAX_MS;
    for (;;) {
      const { json } = await call('GET', '/jobs');
      if (json.counts.queued === 0 && json.counts.in_flight === 0) return json.counts;
      if (Date.now() > until) throw new Error(`jobs still pending after ${WAIT_MAX_MS} ms: ${JSON.stringify(json.counts)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const listDlq = async (): Promise<any[]> => {
    const items: any[] = [];
    let cursor: string | null = null;
    do {
      const { json }: { json: any } = await call('GET', `/dlq?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      items.push(...json.items);
      cursor = json.nextCursor;
    } while (cursor);
    return items;
  };

  try {
    const byKey = new Map(unique.map((m) => [m.key, m]));
    const busy = unique.filter((m) => m.kind === 'busy').length;
    const stuck = unique.filter((m) => m.kind === 'stuck').length;
    print(`1. The provider's ${FLAKY_REGION_DOMAIN} gateway is down (503); ${busy} other messages meet 1-${JOB_ATTEMPTS - 1} busy 503s, ${stuck} meet ${JOB_ATTEMPTS} (a job's every attempt).`);
    print(`2. A producer sends ${sequence.length} messages in batches of ${options.batchSize} (POST /relay/batch), ${sequence.length - unique.length} of them resends of an earlier key.`);
    provider.setRegionDown(true);
    provider.setPhase('produce');
    let accepted = 0;
    const jobIds: string[] = [];
    let duplicatesCaught = 0;
    for (let i = 0; i < sequence.length; i += options.batchSize) {
      const items = sequence.slice(i, i + options.batchSize).map((m) => ({ idempotencyKey: m.key, body: m.body }));
      const { status, json } = await call('POST', '/relay/batch', { items });
      if (status !== 202 && status !== 207) throw new Error(`batch answered ${status}: ${JSON.stringify(json)}`);
      for (const item of json.items) {
        if (item.status === 202 && item.created === true) {
          accepted++;
          jobIds.push(item.jobId);
        }
        else if ((item.status === 202 && item.created === false) || item.replayed === true) duplicatesCaught++;
        else throw new Error(`batch item refused: ${JSON.stringify(item)}`);
      }
    }
    const afterFirstPass = await waitForJobs();
    const firstPassLog = [...provider.log];
    const dead = await listDlq();
    const permanent = dead.filter((e) => e.reason === 'permanent');
    const transient = dead.filter((e) => e.reason === 'transient');
    // The relay's word, job by job: delivered after more than one attempt.
    let retriedThrough = 0;
    for (const id of jobIds) {
      const { json: job } = await call('GET', `/jobs/${id}`);
      if (job.state === 'delivered' && job.attempts.length > 1) retriedThrough++;
    }
    print(`3. Delivered ${afterFirstPass.delivered} (${retriedThrough} of them after busy 503s); dead-lettered ${dead.length} (${permanent.length} permanent, ${transient.length} transient).`);

    print(`4. The gateway is back. Recovery, one strategy per kind of failure:`);
    provider.setRegionDown(false);
    provider.setPhase('recover');
    const discardable = permanent.filter((e) => e.status === 400);
    let discarded = 0;
    for (const entry of discardable) if ((await call('DELETE', `/dlq/${entry.id}`)).status === 204) discarded++;
    print(`   - discard permanent: DELETE /dlq/:id for ${discarded} unsubscribed recipients (resending can never work)`);

    const logBeforeRedrive = provider.log.length;
    const redrive = await call('POST', '/dlq/redrive', { reason: 'transient', ratePerSecond: 200 });
    let task = redrive.json;
    const until = Date.now() + WAIT_MAX_MS;
    while (task.state === 'running' && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      task = (await call('GET', `/dlq/redrive/${redrive.json.id}`)).json;
    }
    const afterRedrive = await waitForJobs();
    const requeuedKeys = new Set(transient.map((e) => e.idempotencyKey));
    // The relay's word: jobs delivered since the first pass (nothing else ran meanwhile), and redriven keys back in the DLQ.
    const requeued = (afterRedrive.delivered ?? 0) - (afterFirstPass.delivered ?? 0);
    const requeuedAgainDead = (await listDlq()).filter((e) => requeuedKeys.has(e.idempotencyKey)).length;
    print(
      `   - requeue transient: POST /dlq/redrive {reason: "transient"} moved ${task.moved}; ${requeued} delivered` +
        (requeuedAgainDead > 0 ? `, ${requeuedAgainDead} dead-lettered again` : ''),
    );
    const afterRedriveLog = provider.log.slice(logBeforeRedrive);

    const fixable = permanent.filter((e) => e.status === 422);
    let edited: number | 'not available yet' = 0;
    const editedKeys: string[] = [];
    for (const entry of fixable) {
      const original = byKey.get(entry.idempotencyKey)!;
      const fixedKey = `${entry.idempotencyKey}-fixed`;
      const fixedBody = JSON.stringify({ ...original.body, to: original.body.to.replace(' at ', '@') });
      const replay = await call('POST', `/dlq/${entry.id}/replay`, { body: fixedBody, contentType: 'application/json', idempotencyKey: fixedKey });
      if (replay.status === 400 && edited === 0) {
        edited = 'not available yet';
        break;
      }
      if (replay.status === 200 && replay.json.outcome === 'delivered') {
        edited = (edited as number) + 1;
        editedKeys.push(fixedKey);
      }
    }
    print(
      `   - retry edited: ${edited === 'not available yet' ? 'not available yet (POST /dlq/:id/replay does not take an edited body on this relay)' : `POST /dlq/:id/replay with the address corrected and a new key: ${edited} delivered (each also marks its dead job delivered)`}`,
    );
    const finalCounts = await waitForJobs();
    const leftInDlq = (await listDlq()).length;

    // The provider's own view.
    const log = provider.log;
    const okKeys = (calls: ProviderCall[]) => new Set(calls.filter((c) => c.status >= 200 && c.status < 300 && c.key !== null).map((c) => c.key!));
    const lastStatusByKey = new Map<string, number>();
    for (const c of firstPassLog) if (c.key !== null) lastStatusByKey.set(c.key, c.status);
    const deliveredTwice = [...okKeys(log)].filter((key) => log.filter((c) => c.key === key && c.status < 300).length > 1).length;
    const discardedKeys = new Set(discardable.map((e) => e.idempotencyKey));
    const callsAfterDiscard = log.slice(logBeforeRedrive).filter((c) => c.key !== null && discardedKeys.has(c.key)).length;
    const simulatorOk = simulator.counters().answered['200'] ?? 0;
    const firstPassOk = okKeys(firstPassLog);
    const redrivenCalls = afterRedriveLog.filter((c) => c.key !== null && requeuedKeys.has(c.key));
    const redrivenCalled = new Set(redrivenCalls.map((c) => c.key));
    const redrivenOk = okKeys(redrivenCalls);
    // Keys the provider never answered 2xx, whose entry was neither deleted nor replayed edited under a new key.
    const everOk = okKeys(log);
    const neverDelivered = new Set(
      log.filter((c) => c.key !== null && !everOk.has(c.key) && !discardedKeys.has(c.key) && !everOk.has(`${c.key}-fixed`) && !c.key.endsWith('-fixed')).map((c) => c.key),
    );
    const checks: Check[] = [
      { what: 'unique messages reached the provider', relay: accepted, downstream: new Set(firstPassLog.map((c) => c.key)).size, ok: false },
      { what: 'duplicates caught (never sent again)', relay: duplicatesCaught, downstream: sequence.length - new Set(firstPassLog.map((c) => c.key)).size, ok: false },
      { what: 'messages delivered twice', relay: 0, downstream: deliveredTwice, ok: false },
      { what: 'processed in the first pass', relay: afterFirstPass.delivered ?? 0, downstream: firstPassOk.size, ok: false },
      {
        what: 'processed in the first pass after a 503 (job retries)',
        relay: retriedThrough,
        downstream: [...firstPassOk].filter((key) => firstPassLog.some((c) => c.key === key && c.status >= 500)).length,
        ok: false,
      },
      { what: 'dead-lettered permanent (last answer 4xx)', relay: permanent.length, downstream: [...lastStatusByKey.values()].filter((s) => s >= 400 && s < 500).length, ok: false },
      { what: 'dead-lettered transient (never a 2xx, last answer 5xx)', relay: transient.length, downstream: [...lastStatusByKey].filter(([key, s]) => s >= 500 && !firstPassOk.has(key)).length, ok: false },
      { what: 'discarded: calls for them after the delete', relay: 0, downstream: callsAfterDiscard, ok: false },
      { what: 'requeued: moved by the redrive, each called again', relay: task.moved, downstream: redrivenCalled.size, ok: false },
      { what: 'requeued and delivered', relay: requeued, downstream: redrivenOk.size, ok: false },
      // Zero with this story's provider; the check holds whatever it answers a redriven message.
      { what: 'requeued and dead-lettered again (no 2xx after the redrive)', relay: requeuedAgainDead, downstream: redrivenCalled.size - redrivenOk.size, ok: false },
      ...(typeof edited === 'number' ? [{ what: 'edited and delivered (new key)', relay: edited, downstream: editedKeys.filter((k) => everOk.has(k)).length, ok: false }] : []),
      // An edited replay of a job's entry marks that job delivered: the relay's job count already holds the edited ones, one per new key.
      { what: 'delivered in all (jobs, the edited ones included)', relay: finalCounts.delivered ?? 0, downstream: everOk.size, ok: false },
      { what: 'left in the DLQ (never a 2xx, not discarded, not edited)', relay: leftInDlq, downstream: neverDelivered.size, ok: false },
      { what: "2xx answers: the provider's log vs the simulator's counters", relay: log.filter((c) => c.status === 200).length, downstream: simulatorOk, ok: false },
    ];
    for (const check of checks) check.ok = check.relay === check.downstream;
    return {
      produced: sequence.length,
      uniqueMessages: unique.length,
      duplicatesCaught,
      processed: afterFirstPass.delivered ?? 0,
      retriedThrough,
      deadLettered: { permanent: permanent.length, transient: transient.length },
      recovered: { discarded, requeued, requeuedAgainDead, edited },
      leftInDlq,
      checks,
    };
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await relay.close();
    await provider.close();
    await simulator.close();
  }
}
