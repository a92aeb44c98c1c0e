import type { PhaseNumbers } from './load.js';

export interface PhaseRecord {
  name: string;
  /** `peak` (closed loop) or `half` (overallRate = half the relay's peak). */
  kind: 'peak' | 'half';
  numbers: PhaseNumbers;
  warmup: PhaseNumbers | null;
  /** 1-minute load average just before the phase: how busy the machine already was. */
  load1mBefore: number;
  /** The relay's GET /stats after the phase, for relay phases. */
  relayStats?: unknown;
}

export interface Targets {
  relayOverBare: number;
  relayOverDirect: number;
  /** relay >= 0.8 x bare */
  throughputMet: boolean;
  /** relay p99 - direct p99 at half load, with autocannon's overallRate (bursty). */
  addedP99Ms: number;
  /** The same with the paced open-loop generator. */
  addedP99PacedMs: number;
  /** bare p99 - direct p99, paced: what a passthrough with no relay logic adds. */
  bareAddedP99PacedMs: number;
  /** added p99 <= 5 ms, per generator */
  latencyMet: boolean;
  latencyPacedMet: boolean;
}

export const TARGET_RELAY_OVER_BARE = 0.8;
export const TARGET_ADDED_P99_MS = 5;

const fixed = (value: number, digits: number, width: number) => value.toFixed(digits).padStart(width);

export function phaseTable(records: PhaseRecord[], withTarget: boolean): string {
  const header = [
    'phase'.padEnd(26),
    ...(withTarget ? ['target/s'.padStart(9)] : []),
    'req/s'.padStart(9),
    'p50 ms'.padStart(8),
    'p99 ms'.padStart(8),
    'max ms'.padStart(8),
    'non-2xx'.padStart(8),
    'errors'.padStart(7),
    'load1m'.padStart(7),
  ].join(' ');
  const rows = records.map(({ name, numbers: n, load1mBefore }) =>
    [
      name.padEnd(26),
      ...(withTarget ? [String(n.targetRps ?? '-').padStart(9)] : []),
      fixed(n.rps, 0, 9),
      fixed(n.p50Ms, 2, 8),
      fixed(n.p99Ms, 2, 8),
      fixed(n.maxMs, 1, 8),
      String(n.non2xx).padStart(8),
      String(n.errors).padStart(7),
      fixed(load1mBefore, 2, 7),
    ].join(' '),
  );
  return [header, ...rows].join('\n');
}

export function verdict(met: boolean): string {
  return met ? 'MET' : 'MISSED';
}

/** Every phase (warm-ups included) that saw a non-2xx answer or a connection error. */
export function failures(records: PhaseRecord[]): string[] {
  const out: string[] = [];
  for (const record of records) {
    for (const [label, n] of [['', record.numbers], [' (warm-up)', record.warmup]] as const) {
      if (n && (n.non2xx > 0 || n.errors > 0)) {
        out.push(`${record.name}${label}: ${n.non2xx} non-2xx ${JSON.stringify(n.statuses)}, ${n.errors} errors (${n.timeouts} timeouts)`);
      }
    }
  }
  return out;
}
