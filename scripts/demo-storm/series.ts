/**
 * The demo's arithmetic: from the downstream's cumulative counters, sampled
 * over time, to the rates and the side-by-side summary. Pure, so the numbers in
 * the post-mortem table are tested rather than trusted.
 */

/** One reading of the downstream's cumulative counters. */
export interface CounterSample {
  /** Milliseconds since the burst was released. */
  atMs: number;
  /** Requests the downstream received so far. */
  received: number;
  /** Answers it sent so far, any status. */
  answered: number;
  /** Of those, answers with a status >= 400. */
  errors: number;
  inFlight: number;
  /** The relay's adaptive concurrency limit at that moment (relay run only). */
  relayLimit?: number;
}

/** The downstream's rates over one sampling interval, ending at `tS`. */
export interface RatePoint {
  tS: number;
  /** Requests received per second. */
  rps: number;
  /** Error answers sent per second. */
  errorRps: number;
  /** In flight at the end of the interval. */
  inFlight: number;
  /** The relay's concurrency limit at the end of the interval, when sampled. */
  relayLimit?: number;
}

/** Turns cumulative samples into per-interval rates; an interval of zero length is skipped. */
export function toRateSeries(samples: ReadonlyArray<CounterSample>): RatePoint[] {
  const points: RatePoint[] = [];
  for (let i = 1; i < samples.length; i++) {
    const prev = samples[i - 1]!;
    const cur = samples[i]!;
    const dtS = (cur.atMs - prev.atMs) / 1000;
    if (dtS <= 0) continue;
    points.push({
      tS: round(cur.atMs / 1000, 3),
      rps: round((cur.received - prev.received) / dtS, 1),
      errorRps: round((cur.errors - prev.errors) / dtS, 1),
      inFlight: cur.inFlight,
      ...(cur.relayLimit === undefined ? {} : { relayLimit: cur.relayLimit }),
    });
  }
  return points;
}

/** Counts the error answers (status >= 400) and all answers in a status histogram. */
export function countAnswers(byStatus: Readonly<Record<string, number>>): { answered: number; errors: number } {
  let answered = 0;
  let errors = 0;
  for (const [status, n] of Object.entries(byStatus)) {
    answered += n;
    if (Number(status) >= 400) errors += n;
  }
  return { answered, errors };
}

/** What one run did, as the post-mortem table shows it. */
export interface RunSummary {
  /** Requests the client released. */
  sent: number;
  /** Of those, how many finally got a 2xx. */
  succeeded: number;
  /** Busiest sampling interval's request rate at the downstream, req/s. */
  peakRps: number;
  /** Share (0-1) of the downstream's answers that were errors. */
  downstreamErrorRate: number;
  /** Requests the downstream received per request sent. */
  amplification: number;
  /** From release until the last request succeeded or gave up. */
  drainMs: number;
  downstreamReceived: number;
}

export function summarizeRun(input: {
  sent: number;
  succeeded: number;
  drainMs: number;
  series: ReadonlyArray<RatePoint>;
  downstream: { received: number; answered: number; errors: number };
}): RunSummary {
  return {
    sent: input.sent,
    succeeded: input.succeeded,
    peakRps: Math.max(0, ...input.series.map((p) => p.rps)),
    downstreamErrorRate: input.downstream.answered === 0 ? 0 : input.downstream.errors / input.downstream.answered,
    amplification: input.sent === 0 ? 0 : input.downstream.received / input.sent,
    drainMs: input.drainMs,
    downstreamReceived: input.downstream.received,
  };
}

/** The side-by-side table, one metric a row, aligned for a terminal. */
export function formatComparison(naive: RunSummary, relay: RunSummary): string {
  const rows: Array<[string, string, string]> = [
    ['', 'naive retry loop', 'through the relay'],
    ['downstream peak request rate', `${int(naive.peakRps)} req/s`, `${int(relay.peakRps)} req/s`],
    ['downstream error rate', pct(naive.downstreamErrorRate), pct(relay.downstreamErrorRate)],
    ['downstream requests received', int(naive.downstreamReceived), int(relay.downstreamReceived)],
    ['received per request sent', `${naive.amplification.toFixed(2)}x`, `${relay.amplification.toFixed(2)}x`],
    ['time to drain', `${(naive.drainMs / 1000).toFixed(1)} s`, `${(relay.drainMs / 1000).toFixed(1)} s`],
    ['succeeded', `${int(naive.succeeded)} / ${int(naive.sent)}`, `${int(relay.succeeded)} / ${int(relay.sent)}`],
  ];
  const widths = [0, 1, 2].map((c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map(([a, b, c]) => `${a.padEnd(widths[0]!)}  ${b.padStart(widths[1]!)} | ${c.padStart(widths[2]!)}`.trimEnd()).join('\n');
}

function int(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function pct(rate: number): string {
  return `${(rate * 100).toFixed(1)}%`;
}

function round(value: number, decimals: number): number {
  const factor = 10 ** decimals;
  return Math.round(value * factor) / factor;
}
