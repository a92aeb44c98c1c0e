import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { startSimulator, type Simulator } from '../src/sim/simulator.js';
import { promtool, promtoolForTests, sampleValue } from './helpers/prometheus.js';
import { healthySim, startTestRelay, type TestRelay } from './helpers/test-relay.js';

// deploy/: files for tools that cannot run here (Grafana) are checked
// structurally; their PromQL, and the alert rules, by promtool (contract,
// "How targets are measured").

const PROMETHEUS_DIR = fileURLToPath(new URL('../deploy/prometheus/', import.meta.url));
const DASHBOARD_FILE = fileURLToPath(new URL('../deploy/grafana/relay-dashboard.json', import.meta.url));
const hasPromtool = promtoolForTests();
const SKIP_PROMTOOL = 'promtool is not on PATH (Debian package `prometheus`); not run';

/** Labels Prometheus adds to every scraped series, and the histogram bucket label. */
const TARGET_LABELS = new Set(['job', 'instance']);

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type: string; uid: string };
  targets?: Array<{ expr: string; refId: string; datasource?: { type: string; uid: string } }>;
}
interface Dashboard {
  __inputs: Array<{ name: string; type: string; pluginId: string }>;
  schemaVersion: number;
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; query: { query: string } }> };
}
interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface AlertTests {
  rule_files: string[];
  tests: Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }> }>;
}

const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;
const alertRules = (parseYaml(readFileSync(join(PROMETHEUS_DIR, 'alerts.yml'), 'utf8')) as { groups: Array<{ rules: AlertRule[] }> }).groups.flatMap((g) => g.rules);
const queries = dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel, target, expr: target.expr })));

/** Sample name -> label name -> values seen, from Prometheus text exposition. */
type Exposed = Map<string, Map<string, Set<string>>>;

function parseExposition(text: string): Exposed {
  const exposed: Exposed = new Map();
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? /.exec(line);
    if (!match) continue;
    const labels = exposed.get(match[1]!) ?? new Map<string, Set<string>>();
    exposed.set(match[1]!, labels);
    for (const [, name, value] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      const values = labels.get(name!) ?? new Set<string>();
      values.add(value!);
      labels.set(name!, values);
    }
  }
  return exposed;
}

/**
 * What an expression asks of the relay's metrics, each as a sentence naming the
 * mistake: a family it does not expose, a label its family lacks, a label value
 * it never takes, a grouping label none of the expression's families has.
 */
function mistakesIn(expr: string, exposed: Exposed): string[] {
  const mistakes: string[] = [];
  const names = [...new Set(expr.match(/\brelay_\w+/g) ?? [])];
  if (names.length === 0) mistakes.push('names no relay_ family');
  for (const name of names) if (!exposed.has(name)) mistakes.push(`${name} is not exposed`);
  for (const [, name, body] of expr.matchAll(/\b(relay_\w+)\{([^}]*)\}/g)) {
    const labels = exposed.get(name!);
    if (!labels) continue;
    for (const [, label, op, value] of body!.matchAll(/(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)) {
      if (TARGET_LABELS.has(label!)) continue;
      const values = labels.get(label!);
      if (!values) {
        mistakes.push(`${name} has no label ${label}`);
        continue;
      }
      // A Grafana variable or a real regex is not checked value by value.
      if (value!.includes('$') || op === '!~' || !/^[\w|+.-]*$/.test(value!)) continue;
      for (const alternative of op === '=~' ? value!.split('|') : [value!]) {
        if (!values.has(alternative)) mistakes.push(`${name}{${label}} never takes ${JSON.stringify(alternative)}`);
      }
    }
  }
  for (const [, list] of expr.matchAll(/\b(?:by|without|on|ignoring)\s*\(([^)]*)\)/g)) {
    for (const label of list!.split(',').map((l) => l.trim()).filter(Boolean)) {
      if (TARGET_LABELS.has(label)) continue;
      if (!names.some((name) => exposed.get(name)?.has(label))) mistakes.push(`groups by ${label}, which none of ${names.join(', ')} has`);
    }
  }
  return mistakes;
}

/** Grafana's variables as Prometheus would see them once Grafana has filled them in. */
function withoutGrafanaVariables(expr: string): string {
  return expr.replaceAll(/\$__(rate_)?interval/g, '1m').replaceAll(/\$\w+/g, '.*');
}

/** Runs `promtool check rules` over `exprs` as recording rules: that parses every one as PromQL. */
function checkPromql(exprs: Array<{ name: string; expr: string }>): { status: number | null; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'relay-promql-'));
  try {
    const file = join(dir, 'queries.yml');
    writeFileSync(file, stringifyYaml({ groups: [{ name: 'queries', rules: exprs.map(({ name, expr }) => ({ record: name, expr })) }] }));
    return promtool(['check', 'rules', file]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let t: TestRelay | undefined;
let sim: Simulator | undefined;
let exposed: Exposed;

beforeAll(async () => {
  // Every family a relay can expose: a rate-limited route (the relay_rate_limit_ families) beside a plain one.
  sim = await startSimulator({ profile: healthySim });
  t = await startTestRelay({
    simulator: sim,
    routes: {
      routes: [
        { name: 'default', target: `${sim.url}/` },
        { name: 'limited', target: `${sim.url}/`, rateLimit: { rps: 50, burst: 5 } },
      ],
    },
  });
  await t.http.post('/relay/limited/x').send('{}').expect(200);
  exposed = parseExposition((await t.http.get('/metrics').expect(200)).text);
});

afterAll(async () => {
  await t?.close();
  await sim?.close();
});

describe('the Grafana dashboard (deploy/grafana/relay-dashboard.json)', () => {
  it('imports: schemaVersion 39, a Prometheus datasource input every query uses, unique panel ids on a 24-column grid', () => {
    expect(dashboard.schemaVersion).toBe(39);
    expect(dashboard.uid).toMatch(/^[\w-]{1,40}$/);
    expect(dashboard.title).toBe('Resilient Relay');
    expect(dashboard.__inputs).toContainEqual(expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' }));
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of dashboard.panels) {
      const { x, w, h } = panel.gridPos;
      expect(x >= 0 && w >= 1 && h >= 1 && x + w <= 24, `${panel.title}: gridPos ${JSON.stringify(panel.gridPos)}`).toBe(true);
      expect(['row', 'timeseries', 'stat', 'state-timeline']).toContain(panel.type);
      if (panel.type === 'row') continue;
      expect(panel.datasource, panel.title).toEqual({ type: 'prometheus', uid: '${DS_PROMETHEUS}' });
      expect(panel.targets?.length, `${panel.title} has no query`).toBeGreaterThan(0);
      const refIds = panel.targets!.map((target) => target.refId);
      expect(new Set(refIds).size, `${panel.title}: refIds ${refIds.join(',')}`).toBe(refIds.length);
    }
  });

  it('shows what an operator asks first: RED, breaker state, in flight vs limit, queue, 429s, amplification, retries, rate limit, DLQ, jobs, readiness', () => {
    const all = queries.map((q) => q.expr).join('\n');
    for (const family of [
      'relay_requests_total',
      'relay_request_duration_seconds_bucket',
      'relay_circuit_state',
      'relay_circuit_transitions_total',
      'relay_workers_busy',
      'relay_concurrency_limit',
      'relay_queue_depth',
      'relay_shed_total',
      'relay_downstream_attempts_total',
      'relay_retries_total',
      'relay_retry_budget_available',
      'relay_rate_limit_per_second',
      'relay_dlq_size',
      'relay_jobs_queued',
      'relay_ready',
      'relay_store_up',
    ]) {
      expect(all, family).toContain(family);
    }
  });

  it('every query, and every variable, names only relay_ families, labels and values a running relay exposes', () => {
    const mistakes = queries.flatMap(({ panel, target, expr }) => mistakesIn(expr, exposed).map((m) => `${panel.title} (${target.refId}): ${m}`));
    for (const variable of dashboard.templating.list) {
      mistakes.push(...mistakesIn(variable.query.query.replace(/^label_values\((.*),\s*\w+\)$/, '$1'), exposed).map((m) => `variable ${variable.name}: ${m}`));
    }
    expect(mistakes).toEqual([]);
  });

  it('every query parses as PromQL (promtool check rules, over them as recording rules)', (ctx) => {
    if (!hasPromtool) ctx.skip(SKIP_PROMTOOL);
    const checked = checkPromql(queries.map(({ panel, target, expr }) => ({ name: `dashboard:panel_${panel.id}_${target.refId}`, expr: withoutGrafanaVariables(expr) })));
    expect(checked.output).toContain(`SUCCESS: ${queries.length} rules found`);
    expect(checked.status, checked.output).toBe(0);
  });
});

describe('relay_ready and relay_store_up, behind RelayNotReady and RelayStoreDown', () => {
  it("are 1 while the store answers and 0 at a scrape where the instance's own store does not (GET /ready's store check)", async () => {
    const both = async () => {
      const text = (await t!.http.get('/metrics')).text;
      return [sampleValue(text, 'relay_ready'), sampleValue(text, 'relay_store_up')];
    };
    expect(await both()).toEqual([1, 1]);
    const size = vi.spyOn(t!.relay.store.dlq, 'size').mockRejectedValue(new Error('store down'));
    try {
      expect(await both()).toEqual([0, 0]);
    } finally {
      size.mockRestore();
    }
    expect(await both()).toEqual([1, 1]);
  });
});

describe('the alert rules (deploy/prometheus/alerts.yml)', () => {
  const expected = ['RelayCircuitOpen', 'RelayDlqGrowing', 'RelayAmplificationHigh', 'RelaySheddingLoad', 'RelayNotReady', 'RelayStoreDown', 'RelayP99AboveDeadline'];

  it('cover breaker open, DLQ growing, amplification, sustained 429s, /ready failing, the store down and p99 above the deadline, each with a severity and a summary', () => {
    expect(alertRules.map((r) => r.alert).sort()).toEqual([...expected].sort());
    for (const rule of alertRules) {
      expect(['warning', 'critical'], rule.alert).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      expect(rule.annotations?.description, rule.alert).toBeTruthy();
      expect(rule.for, `${rule.alert} fires on one bad evaluation`).toMatch(/^\d+m$/);
    }
  });

  it('name only relay_ families, labels and values a running relay exposes (and `up`)', () => {
    const mistakes = alertRules.flatMap((rule) => mistakesIn(rule.expr, exposed).map((m) => `${rule.alert}: ${m}`));
    expect(mistakes).toEqual([]);
  });

  it('pass `promtool check rules`', (ctx) => {
    if (!hasPromtool) ctx.skip(SKIP_PROMTOOL);
    const checked = promtool(['check', 'rules', 'alerts.yml'], PROMETHEUS_DIR);
    expect(checked.output).toContain(`SUCCESS: ${expected.length} rules found`);
    expect(checked.status, checked.output).toBe(0);
  });

  it('each fires on a synthetic failure and stays quiet before it and on healthy series (`promtool test rules alerts.test.yml`)', (ctx) => {
    const unitTests = parseYaml(readFileSync(join(PROMETHEUS_DIR, 'alerts.test.yml'), 'utf8')) as AlertTests;
    expect(unitTests.rule_files).toEqual(['alerts.yml']);
    const cases = unitTests.tests.flatMap((test) => test.alert_rule_test);
    for (const alert of expected) {
      expect(cases.some((c) => c.alertname === alert && c.exp_alerts.length > 0), `${alert} is never shown firing`).toBe(true);
      expect(cases.some((c) => c.alertname === alert && c.exp_alerts.length === 0), `${alert} is never shown quiet`).toBe(true);
    }
    if (!hasPromtool) ctx.skip(SKIP_PROMTOOL);
    const tested = promtool(['test', 'rules', 'alerts.test.yml'], PROMETHEUS_DIR);
    expect(tested.status, tested.output).toBe(0);
    expect(tested.output).toContain('SUCCESS');
  });
});
