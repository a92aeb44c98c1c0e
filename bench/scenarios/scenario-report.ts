import { STEADY_FROM_MS, type ScenarioResult, type SideResult } from './run-scenarios.js';
import { ATTEMPT_TIMEOUT_MS, BASE_RELAY_ENV, CLIENT_TIMEOUT_MS, MAX_ATTEMPTS, WARMUP_MAX_RATE, WARMUP_S } from './scenarios.js';

/** One target, judged for the relay; the baseline's value is shown beside it for comparison. */
export interface ScenarioTarget {
  scenario: string;
  label: string;
  relay: { value: string; met: boolean };
  naive: { value: string; met: boolean };
  /** What this machine allows for the same measure, taken in the same run (see ScenarioResult.reference). */
  reference?: string;
  /** What else differs between the sides for this measure. */
  note?: string;
}

export const TARGET_S2_SUCCESS = 0.99;
export const TARGET_S2_AMPLIFICATION = 1.5;
export const TARGET_S3_DOWNSTREAM_SHARE = 0.1;
export const TARGET_S3_FAIL_FAST_P99_MS = 10;
export const TARGET_S3_RECOVERY_MS = 5_000;
export const TARGET_S4_GOODPUT_OF_CAPACITY = 0.9;

const pct = (x: number, digits = 2) => `${(x * 100).toFixed(digits)}%`;
const ms = (x: number) => x.toFixed(1);
const seconds = (xMs: number | null) => (xMs === null ? 'never' : `${(xMs / 1000).toFixed(2)} s`);

export function evaluateTargets(results: readonly ScenarioResult[]): ScenarioTarget[] {
  const targets: ScenarioTarget[] = [];
  const pair = (result: ScenarioResult, judge: (side: SideResult) => { value: string; met: boolean }) => ({
    relay: judge(sideOf(result, 'relay')),
    naive: judge(sideOf(result, 'naive')),
  });
  for (const result of results) {
    const id = result.spec.id;
    if (id === 'S2') {
      targets.push({
        scenario: id,
        label: `success >= ${pct(TARGET_S2_SUCCESS, 0)} with amplification <= ${TARGET_S2_AMPLIFICATION}`,
        ...pair(result, (s) => ({
          value: `${pct(s.client.successRate)}, x${s.amplification.toFixed(2)}`,
          met: s.client.successRate >= TARGET_S2_SUCCESS && s.amplification <= TARGET_S2_AMPLIFICATION,
        })),
        ...attemptsNote(result),
      });
    }
    if (result.spec.outage) {
      targets.push({
        scenario: id,
        label: `downstream gets <= ${pct(TARGET_S3_DOWNSTREAM_SHARE, 0)} of client requests once the breaker is open`,
        ...pair(result, (s) => ({ value: pct(s.outage!.window.downstreamShare, 1), met: s.outage!.window.downstreamShare <= TARGET_S3_DOWNSTREAM_SHARE })),
      });
      targets.push({
        scenario: id,
        label: `fail-fast answers' p99 <= ${TARGET_S3_FAIL_FAST_P99_MS} ms`,
        ...pair(result, (s) => {
          const w = s.outage!.window;
          // A side that answered no failure fast has no fail-fast p99: show its failures' p99 instead.
          return w.failFast > 0
            ? { value: `${ms(w.failFastP99Ms)} ms (${w.failFast} answers)`, met: w.failFastP99Ms <= TARGET_S3_FAIL_FAST_P99_MS }
            : { value: `none; failures' p99 ${ms(w.failedP99Ms)} ms`, met: false };
        }),
        ...(result.reference?.failFastFloor
          ? { reference: `bare node:http refusing at once: p99 ${ms(result.reference.failFastFloor.p99Ms)} ms (p50 ${ms(result.reference.failFastFloor.p50Ms)})` }
          : {}),
      });
      targets.push({
        scenario: id,
        label: `>= 95% success within ${TARGET_S3_RECOVERY_MS / 1000} s of the recovery`,
        ...pair(result, (s) => ({ value: seconds(s.outage!.recoveryMs), met: s.outage!.recoveryMs !== null && s.outage!.recoveryMs <= TARGET_S3_RECOVERY_MS })),
      });
    }
    if (result.spec.capacityPerS) {
      const capacity = result.spec.capacityPerS;
      targets.push({
        scenario: id,
        label: `goodput >= ${pct(TARGET_S4_GOODPUT_OF_CAPACITY, 0)} of the downstream's ${capacity} req/s`,
        ...pair(result, (s) => ({
          value: `${s.goodput!.perS.toFixed(0)} req/s = ${pct(s.goodput!.ofCapacity, 0)}`,
          met: s.goodput!.ofCapacity >= TARGET_S4_GOODPUT_OF_CAPACITY,
        })),
        ...(result.reference?.fixedLimit?.goodput
          ? { reference: `relay with a fixed limit of exactly the capacity: ${pct(result.reference.fixedLimit.goodput.ofCapacity, 0)}` }
          : {}),
      });
    }
  }
  return targets;
}

export function scenarioReport(results: readonly ScenarioResult[], targets: readonly ScenarioTarget[]): string {
  const lines = [
    `Storm scenarios: open-loop load (requests sent when due whatever the earlier ones do; latency counted from then; ${CLIENT_TIMEOUT_MS} ms client timeout),`,
    `each side with its own fresh simulator process; before each run a ${WARMUP_S} s warm-up (at most ${WARMUP_MAX_RATE} req/s, no failures), then the simulator counters are reset.`,
    `naive = Express + undici passthrough, ${MAX_ATTEMPTS} attempts, retried at once on 5xx/408/429/connection error/${ATTEMPT_TIMEOUT_MS} ms timeout;`,
    '        no backoff, jitter, retry budget, breaker, concurrency limit or queue bound.',
    'relay env in every scenario:',
    ...wrap(envLine(BASE_RELAY_ENV), 110).map((line) => `  ${line}`),
    'amplification = requests the downstream received / requests clients sent; peak conc. = the downstream\'s peak requests in flight;',
    'p50/p99 over every request (answers, timeouts, errors); load1m = machine load before the run;',
    'lag ms = how late the load generator sent its latest request (large: the machine, not the server, set the pace).',
  ];
  for (const result of results) lines.push('', ...scenarioBlock(result));
  if (targets.length === 0) return lines.join('\n');
  lines.push('', 'Targets (judged on the relay; the naive baseline alongside for comparison)');
  const labelWidth = Math.max(...targets.map((t) => t.scenario.length + 1 + t.label.length));
  const relayWidth = Math.max(...targets.map((t) => t.relay.value.length));
  for (const t of targets) {
    lines.push(
      `${`${t.scenario} ${t.label}`.padEnd(labelWidth)}  relay ${t.relay.value.padEnd(relayWidth)} ${verdict(t.relay.met).padEnd(6)}  naive ${t.naive.value} (${verdict(t.naive.met)})`,
    );
    if (t.reference) lines.push(`${''.padEnd(labelWidth)}  this machine, same run: ${t.reference}`);
    if (t.note) lines.push(`${''.padEnd(labelWidth)}  note: ${t.note}`);
  }
  return lines.join('\n');
}

function scenarioBlock(result: ScenarioResult): string[] {
  const { spec } = result;
  const p = spec.profile;
  const overrides = Object.keys(spec.relayEnv).length === 0 ? '(none)' : envLine(spec.relayEnv);
  const steps = spec.steps.map((s) => `at ${s.atS} s ${s.label} ${JSON.stringify(s.patch)}`).join('; ');
  const lines = [
    `${spec.id} ${spec.title}: ${spec.ratePerS} req/s x ${spec.durationS} s = ${Math.round(spec.ratePerS * spec.durationS)} requests`,
    `   downstream: failRate ${p.failRate}, latency ${p.latencyMs}±${p.jitterMs} ms, capacity ${p.capacity ?? 'unlimited'}${steps ? `; ${steps}` : ''}`,
    `   relay env on top: ${overrides}`,
    `   ${'side'.padEnd(6)} ${'success'.padStart(8)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'amplif.'.padStart(8)} ${'peak conc.'.padStart(10)} ${'load1m'.padStart(6)} ${'lag ms'.padStart(6)}  answers`,
  ];
  for (const side of result.sides) {
    lines.push(
      `   ${side.side.padEnd(6)} ${pct(side.client.successRate).padStart(8)} ${ms(side.client.p50Ms).padStart(8)} ${ms(side.client.p99Ms).padStart(8)} ${side.amplification.toFixed(2).padStart(8)} ${String(side.downstream.peakInFlight).padStart(10)} ${side.load1mBefore.toFixed(2).padStart(6)} ${side.client.lateMaxMs.toFixed(0).padStart(6)}  ${answers(side)}`,
    );
  }
  for (const side of result.sides) {
    if (side.outage) {
      const o = side.outage;
      const w = o.window;
      const opened =
        side.side === 'relay'
          ? o.breakerOpenedAtMs === null
            ? 'breaker never opened (no CIRCUIT_OPEN answer); window from 1 s into the outage'
            : `breaker open at ${seconds(o.breakerOpenedAtMs)} (first CIRCUIT_OPEN answer)`
          : 'same window as the relay';
      lines.push(
        `   ${side.side}: ${opened}; ${seconds(w.fromMs)}-${seconds(w.toMs)}: downstream received ${Math.round(w.downstreamReceived)} for ${w.clientSent} client requests (${pct(w.downstreamShare, 1)}), ` +
          `${w.failFast} fail-fast answers (p50 ${ms(w.failFastP50Ms)} ms, p99 ${ms(w.failFastP99Ms)} ms), failures' p99 ${ms(w.failedP99Ms)} ms; >= 95% success ${o.recoveryMs === null ? 'never' : `${seconds(o.recoveryMs)} after the recovery`}`,
      );
    }
    if (side.goodput) {
      const g = side.goodput;
      lines.push(
        `   ${side.side}: goodput ${g.perS.toFixed(1)} req/s = ${pct(g.ofCapacity, 0)} of the downstream's ${spec.capacityPerS} req/s over the run; ` +
          `${g.steadyPerS.toFixed(1)} req/s = ${pct(g.steadyOfCapacity, 0)} from ${STEADY_FROM_MS / 1000} s on`,
      );
    }
  }
  return lines;
}

function answers(side: SideResult): string {
  const statuses = Object.entries(side.client.statuses)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([status, n]) => `${status === '0' ? 'none' : status}:${n}`);
  const codes = Object.entries(side.client.codes).map(([code, n]) => `${code}:${n}`);
  return `${statuses.join(' ')}${codes.length > 0 ? ` (${codes.join(' ')})` : ''}`;
}

function envLine(env: Readonly<Record<string, string>>): string {
  return Object.entries(env)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(line);
  return lines;
}

/** When the relay has more attempts than the baseline, say so, with what each count gives at the scenario's failure rate. */
function attemptsNote(result: ScenarioResult): { note?: string } {
  const relayAttempts = Number(result.relayEnv.RETRY_MAX_ATTEMPTS ?? MAX_ATTEMPTS);
  if (relayAttempts === MAX_ATTEMPTS) return {};
  const failRate = result.spec.profile.failRate;
  const expected = (attempts: number) => pct(1 - failRate ** attempts);
  return {
    note:
      `relay ${relayAttempts} attempts, naive ${MAX_ATTEMPTS}; with ${pct(failRate, 0)} independent failures ` +
      `the expected success is ${expected(relayAttempts)} and ${expected(MAX_ATTEMPTS)}`,
  };
}

function sideOf(result: ScenarioResult, side: SideResult['side']): SideResult {
  const found = result.sides.find((s) => s.side === side);
  if (!found) throw new Error(`${result.spec.id} has no ${side} run`);
  return found;
}

function verdict(met: boolean): string {
  return met ? 'MET' : 'MISSED';
}
