/**
 * End to end through the real monitoring stack: the collector (the Lambda
 * handler) reads a seeded runs table through the Neon driver and the bridge,
 * PUTs to a real Pushgateway, and a real Prometheus, configured from
 * monitoring/prometheus.yml, scrapes it and evaluates monitoring/rules.yml and
 * alerts.yml. The values come back through the HTTP API with job intact, the
 * rules load and agree with the data, every PromQL expression of the Grafana
 * dashboard parses and returns data, and each alert's condition is seen to
 * hold in a real scenario: the seeded backlog, a failed database read, frozen
 * gauges (a second Prometheus with a 5 s freshness limit), a rejected push and
 * a Pushgateway that goes away. In each, the dashboard's stat panels show the
 * fresh figures, and for a frozen group the stale marker (NaN), never its
 * frozen value.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type Bridge } from '../../scripts/bridge/bridge';
import { invokeCollect } from '../support/lambda';
import { createTestDatabase, seedAlertingQueue, type TestDatabase } from '../support/postgres';
import {
  eventually,
  readMonitoringFile,
  rulesEvaluatedSince,
  startOwnPushgateway,
  startPrometheus,
  testPrometheusConfig,
  type PromRule,
  type PromSample,
  type TestPrometheus,
} from '../support/prometheus';
import type { TestPushgateway } from '../support/pushgateway';

const JOB = 'xyn_metrics';
// A static grouping label, as PUSHGATEWAY_GROUPING=env=e2e sets it: the rules must match per group.
const GROUP = { job: JOB, env: 'e2e' };

let db: TestDatabase;
let gateway: TestPushgateway;
let bridge: Bridge;
let prometheus: TestPrometheus;
/** A second Prometheus with the same rules but a freshness limit of FROZEN_AFTER_S seconds. */
let shortLived: TestPrometheus;
const FROZEN_AFTER_S = 5;
/** Scrape and rule evaluation interval of both test Prometheus servers. */
const EVALUATION_INTERVAL_MS = 1_000;
let dashboard: Dashboard;
let ruleFileText: string;

interface Target {
  expr?: string;
  legendFormat?: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos?: { x: number; y: number; w: number; h: number };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  schemaVersion: number;
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown; datasource?: unknown }[] };
}

function env(over: Record<string, string> = {}) {
  return {
    DATABASE_URL: db.url,
    DATABASE_WS_PROXY: bridge.proxy,
    PUSHGATEWAY_URL: gateway.url,
    PUSHGATEWAY_JOB: JOB,
    PUSHGATEWAY_GROUPING: 'env=e2e',
    RUNS_TABLE: db.table,
    // The flow figures from the real table: nothing started or finished in the window.
    RUN_STARTED_COLUMN: 'started_at',
    RUN_FINISHED_COLUMN: 'finished_at',
    ...over,
  };
}

async function runCollector(over: Record<string, string> = {}) {
  return invokeCollect(env(over));
}

/** Known figures: 150 ready (backlog), oldest 900 s, 2 future, 2 expired leases, no active one. */
const seed = () => seedAlertingQueue(db, { SUCCEEDED: 3, FAILED: 1 });

/**
 * The optional metrics another configuration adds (worker heartbeats,
 * per-blueprint figures, wait quantiles, which the seeded table cannot have
 * since nothing in it started) and an estimated status (a long history),
 * POSTed into the collector's group so they sit next to its gauges as they
 * would when the collector pushes them itself.
 */
const OPTIONAL_METRICS = `# TYPE xyn_queue_depth_estimated gauge
xyn_queue_depth_estimated{status="SUCCEEDED"} 1
# TYPE xyn_workers_alive gauge
xyn_workers_alive 0
# TYPE xyn_blueprint_run_count gauge
xyn_blueprint_run_count{blueprint="etl",status="QUEUED"} 120
xyn_blueprint_run_count{blueprint="etl",status="RUNNING"} 2
xyn_blueprint_run_count{blueprint="other",status="QUEUED"} 30
# TYPE xyn_blueprint_duration_seconds gauge
xyn_blueprint_duration_seconds{blueprint="etl",quantile="0.5"} 1200
xyn_blueprint_duration_seconds{blueprint="etl",quantile="0.9"} 4000
xyn_blueprint_duration_seconds{blueprint="etl",quantile="0.99"} 9000
xyn_blueprint_duration_seconds{blueprint="other",quantile="0.9"} 60
# TYPE xyn_queue_wait_seconds gauge
xyn_queue_wait_seconds{quantile="0.5"} 30
xyn_queue_wait_seconds{quantile="0.9"} 400
xyn_queue_wait_seconds{quantile="0.99"} 700
`;

async function pushOptionalMetrics() {
  const response = await fetch(`${gateway.url}/metrics/job/${JOB}/env/e2e`, { method: 'POST', body: OPTIONAL_METRICS });
  expect(response.status, await response.text()).toBe(200);
}

const valueOf = (sample: PromSample) => Number(sample.value[1]);

/** What Grafana puts in for its variables, with the one group selected. */
const GRAFANA_VARIABLES: Record<string, string> = {
  job: JOB,
  env: GROUP.env,
  __rate_interval: '1m',
  __interval: '15s',
  __range: '5m',
  __range_s: '300',
};

/** `expr` as Grafana sends it; an unknown variable fails the test. */
function concrete(expr: string): string {
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, (whole, braced: string | undefined, bare: string | undefined) => {
    const value = GRAFANA_VARIABLES[(braced ?? bare)!];
    if (value === undefined) throw new Error(`unknown Grafana variable ${whole} in ${expr}`);
    return value;
  });
}

/** Each stat panel's one query, concrete. */
const statQueries = () =>
  dashboard.panels.filter((p) => p.type === 'stat').map((p) => ({ panel: p.title, query: concrete(p.targets![0]!.expr!) }));

/** What a stat panel's query returns from `server`, as [value, labels] per series (NaN for the stale marker). */
async function statValues(server: TestPrometheus) {
  const results = await Promise.all(statQueries().map(async ({ panel, query }) => [panel, (await server.query(query)).map((s) => ({ value: valueOf(s), metric: s.metric }))] as const));
  return Object.fromEntries(results);
}

/** The one sample of `expr`, once Prometheus has it. */
function one(expr: string, accept: (s: PromSample) => boolean = () => true) {
  return eventually(`${expr} in Prometheus`, async () => {
    const result = await prometheus.query(expr);
    return result.length === 1 && accept(result[0]!) ? result[0] : undefined;
  });
}

beforeAll(async () => {
  [db, gateway, bridge] = await Promise.all([createTestDatabase('prom'), startOwnPushgateway(), startBridge()]);
  const source = await readMonitoringFile('prometheus.yml');
  const target = `127.0.0.1:${gateway.port}`;
  const rules = await readMonitoringFile('rules.yml');
  const shortRules = rules.replace(/(record: xyn_threshold:push_max_age_seconds\n\s+expr: )vector\(300\)/, `$1vector(${FROZEN_AFTER_S})`);
  expect(shortRules).not.toBe(rules);
  [prometheus, shortLived] = await Promise.all([
    startPrometheus(testPrometheusConfig(source, { pushgateway: target, interval: `${EVALUATION_INTERVAL_MS / 1000}s` })),
    startPrometheus(testPrometheusConfig(source, { pushgateway: target, interval: `${EVALUATION_INTERVAL_MS / 1000}s`, rules: 'beside' }), {
      'rules.yml': shortRules,
      'alerts.yml': await readMonitoringFile('alerts.yml'),
    }),
  ]);
  dashboard = JSON.parse(await readMonitoringFile('grafana-dashboard.json')) as Dashboard;
  ruleFileText = (await readMonitoringFile('rules.yml')) + (await readMonitoringFile('alerts.yml'));

  await seed();
  const { result, error, output } = await runCollector();
  expect(error, output).toBeUndefined();
  expect(result).toMatchObject({ outcome: 'ok' });
  await pushOptionalMetrics();
});

afterAll(async () => {
  await Promise.all([prometheus?.stop(), shortLived?.stop()]);
  await bridge?.close();
  // The last test stops the gateway itself.
  if (gateway && gateway.process.exitCode === null && gateway.process.signalCode === null) await gateway.stop();
  await db?.close();
});

describe('Prometheus scraping the Pushgateway the collector pushed to', () => {
  it('returns the collector values with job and grouping labels intact and no instance label', async () => {
    const ready = await one('xyn_queue_ready_depth');
    expect(ready.metric).toEqual({ __name__: 'xyn_queue_ready_depth', ...GROUP });
    expect(valueOf(ready)).toBe(150);

    expect(valueOf(await one(`xyn_queue_future_depth{job="${JOB}"}`))).toBe(2);
    const oldest = valueOf(await one(`xyn_queue_oldest_ready_seconds{job="${JOB}"}`));
    expect(oldest).toBeGreaterThanOrEqual(900);
    expect(oldest).toBeLessThan(960);
    expect(valueOf(await one(`xyn_running_with_expired_lease{job="${JOB}"}`))).toBe(2);
    expect(valueOf(await one(`xyn_running_with_active_lease{job="${JOB}"}`))).toBe(0);
    expect(valueOf(await one(`xyn_running_without_lease{job="${JOB}"}`))).toBe(0);
    // Queued up to 900 s ago, but due (run_at) only 60 s ago.
    const due = valueOf(await one(`xyn_queue_oldest_due_seconds{job="${JOB}"}`));
    expect(due).toBeGreaterThanOrEqual(60);
    expect(due).toBeLessThan(120);
    expect(valueOf(await one(`xyn_runs_started_in_window{job="${JOB}"}`))).toBe(0);
    expect(valueOf(await one(`xyn_flow_window_seconds{job="${JOB}"}`))).toBe(300);
    expect((await prometheus.query(`xyn_runs_finished_in_window{job="${JOB}"}`)).map((s) => [s.metric.status, valueOf(s)]).sort()).toEqual([
      ['CANCELLED', 0],
      ['FAILED', 0],
      ['SUCCEEDED', 0],
    ]);
    expect(valueOf(await one(`xyn_collector_up{job="${JOB}"}`))).toBe(1);
    expect(valueOf(await one(`xyn_collector_duration_seconds{job="${JOB}"}`))).toBeGreaterThan(0);

    const depth = await prometheus.query(`xyn_queue_depth{job="${JOB}"}`);
    expect(Object.fromEntries(depth.map((s) => [s.metric.status, valueOf(s)]))).toEqual({
      QUEUED: 152,
      RUNNING: 2,
      SUCCEEDED: 3,
      FAILED: 1,
      CANCELLED: 0,
    });
    for (const s of depth) expect(s.metric).toEqual({ __name__: 'xyn_queue_depth', ...GROUP, status: s.metric.status });

    const pushed = await one(`push_time_seconds{job="${JOB}"}`);
    expect(pushed.metric).toEqual({ __name__: 'push_time_seconds', ...GROUP });
    expect(Date.now() / 1000 - valueOf(pushed)).toBeLessThan(60);

    // The Pushgateway's own target keeps the scrape job's labels.
    const up = await one('up{job="pushgateway"}');
    expect(up.metric.instance).toBe(`127.0.0.1:${gateway.port}`);
    expect(valueOf(up)).toBe(1);
  });

  it('loads every rule of rules.yml and alerts.yml, and each evaluates without error', async () => {
    const declared = (ruleFileText.match(/^\s+- (record|alert): /gm) ?? []).length;
    const groups = await eventually('every rule evaluated', async () => {
      const loaded = await prometheus.ruleGroups();
      const rules = loaded.flatMap((g) => g.rules);
      return rules.length === declared && rules.every((r) => r.health !== 'unknown') ? loaded : undefined;
    });
    expect(groups.map((g) => g.name).sort()).toEqual(['xyn-collector', 'xyn-flow', 'xyn-freshness', 'xyn-queue', 'xyn-thresholds', 'xyn-workers']);
    for (const rule of groups.flatMap((g) => g.rules)) {
      expect({ rule: rule.name, health: rule.health, error: rule.lastError ?? '' }).toEqual({ rule: rule.name, health: 'ok', error: '' });
    }
  });

  it('every rule expression runs against the pushed sample, and exactly the expected alert conditions hold', async () => {
    const rules = await eventually('rules loaded', async () => {
      const loaded = (await prometheus.ruleGroups()).flatMap((g) => g.rules);
      return loaded.length > 0 ? loaded : undefined;
    });
    // The seeded queue: a backlog of ready runs (due 60 s ago, queued up to 900 s ago), dead leases, no live
    // lease, no worker alive, a slow blueprint, nothing started, a long p90 wait.
    const holding = new Set(['XynQueueBacklog', 'XynExpiredLeases', 'XynNoActiveWorkers', 'XynNoWorkersAlive', 'XynBlueprintSlowRuns', 'XynWorkStalled', 'XynQueueWaitHigh']);
    // Only these recording rules are legitimately empty here: no push has failed, no group has gone, and
    // no run finished in the window (fewer than xyn_threshold:runs_finished_min: no failure ratio).
    const emptyRecordings = new Set(['xyn:push_failed_since_success_seconds', 'xyn:collector_up:gone', 'xyn:runs_failed_ratio:fresh']);

    // Throws when the expression does not parse; otherwise whether it returns data.
    const check = async (rule: PromRule) => ({ name: rule.name, data: (await prometheus.query(rule.query)).length > 0 });
    const outcome = await eventually('the recorded series to settle', async () => {
      const results = await Promise.all(rules.map(check));
      const ok = results.every((r) =>
        rules.find((x) => x.name === r.name)!.type === 'recording' ? r.data !== emptyRecordings.has(r.name) : r.data === holding.has(r.name),
      );
      return ok ? results : undefined;
    }, 10_000).catch(async (error: Error) => {
      const results = await Promise.all(rules.map(check));
      throw new Error(`${error.message}\n${JSON.stringify(results)}`);
    });
    const settledAt = Date.now();
    expect(outcome.length).toBe(rules.length);

    // Recorded series keep the group's labels, so each group is gated by its own push time.
    const fresh = await one('xyn:queue_ready_depth:fresh');
    expect(fresh.metric).toEqual({ __name__: 'xyn:queue_ready_depth:fresh', ...GROUP });
    expect(valueOf(fresh)).toBe(150);

    // Those conditions show up as pending alerts (each has a `for` longer than this test),
    // once the alerting rules have been evaluated on the settled data: an alert group
    // evaluated before the recorded series existed holds e.g. XynMetricsAbsent pending
    // until its next evaluation clears it.
    await rulesEvaluatedSince(prometheus, settledAt, EVALUATION_INTERVAL_MS);
    const { alerts } = await prometheus.api<{ alerts: { labels: Record<string, string>; state: string }[] }>('/api/v1/alerts');
    expect(new Set(alerts.map((a) => a.labels.alertname))).toEqual(holding);
    for (const alert of alerts) expect(alert).toMatchObject({ state: 'pending', labels: { ...GROUP } });
  });

  it('is a dashboard Grafana can import as it is', () => {
    expect(dashboard.schemaVersion).toBe(39);
    expect(dashboard.uid).toMatch(/^[\w-]{1,40}$/);
    const variables = Object.fromEntries(dashboard.templating.list.map((v) => [v.name, v]));
    expect(variables.datasource).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(variables.job).toMatchObject({ type: 'query', datasource: { type: 'prometheus', uid: '${datasource}' } });

    const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of panels.filter((p) => p.type !== 'row')) {
      expect(panel.datasource, panel.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(panel.gridPos, panel.title).toBeDefined();
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
    }
    const titles = panels.map((p) => p.title);
    for (const wanted of ['Ready vs future depth', 'Oldest run age: due and queued', 'Depth by status', 'Expired vs active leases', 'Collector health', 'Push age', 'Throughput by status', 'Failure ratio', 'Wait to start (quantiles)', 'Workers alive', 'Runs per blueprint', 'Run duration per blueprint']) {
      expect(titles).toContain(wanted);
    }
  });

  it('every PromQL expression of the dashboard parses and returns data', async () => {
    const exprs = dashboard.panels
      .flatMap((p) => [p, ...(p.panels ?? [])])
      .flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
    expect(exprs.length).toBeGreaterThanOrEqual(16);

    for (const { panel, expr } of exprs) {
      expect(expr, panel).toBeTypeOf('string');
      const query = concrete(expr!);
      expect(query).not.toContain('$');
      const result = await eventually(`data for "${query}" (${panel})`, async () => {
        const samples = await prometheus.query(query);
        return samples.length > 0 ? samples : undefined;
      }, 10_000);
      expect(result.length, `${panel}: ${query}`).toBeGreaterThan(0);
    }

    // The job variable's label_values(xyn_collector_up, job) offers the collector's job.
    const jobs = await prometheus.api<string[]>(`/api/v1/label/job/values?match[]=xyn_collector_up`);
    expect(jobs).toContain(JOB);
  });

  it('the stat panels show the fresh group\'s figures: one number each, with the group\'s labels', async () => {
    const stats = await eventually('every stat panel with a value', async () => {
      const values = await statValues(prometheus);
      return Object.values(values).every((v) => v.length === 1) ? values : undefined;
    });
    for (const [panel, [sample]] of Object.entries(stats)) {
      expect(Number.isFinite(sample!.value), `${panel}: ${sample!.value}`).toBe(true);
      const { __name__: _name, ...labels } = sample!.metric;
      expect(labels, panel).toEqual(GROUP);
    }
    expect(stats['Ready runs']![0]!.value).toBe(150);
    expect(stats['Expired leases']![0]!.value).toBe(2);
    expect(stats['Collector']![0]!.value).toBe(1);
    expect(stats['Workers alive']![0]!.value).toBe(0);
    expect(stats['Last push']![0]!.value).toBeLessThan(60);
  });

  it('when the database read fails, the queue series go stale and only the collector-failing condition holds', async () => {
    const { error } = await runCollector({ DATABASE_URL: 'postgresql://postgres:postgres@127.0.0.1:1/postgres' });
    expect(error).toBeInstanceOf(Error);

    await eventually('the collector down in Prometheus', async () => {
      const up = await prometheus.query(`xyn_collector_up{job="${JOB}"}`);
      return up.length === 1 && valueOf(up[0]!) === 0 ? true : undefined;
    });
    // The PUT replaced the group: the queue gauges (and the optional ones) are gone, not frozen.
    for (const name of ['xyn_queue_ready_depth', 'xyn_queue_depth', 'xyn_running_with_expired_lease', 'xyn_workers_alive', 'xyn_blueprint_duration_seconds', 'xyn_runs_started_in_window', 'xyn_queue_wait_seconds']) {
      expect(await prometheus.query(`${name}{job="${JOB}"}`), name).toEqual([]);
    }
    const rules = (await prometheus.ruleGroups()).flatMap((g) => g.rules);
    const failing = rules.find((r) => r.name === 'XynCollectorFailing')!;
    await eventually('XynCollectorFailing condition', async () => ((await prometheus.query(failing.query)).length === 1 ? true : undefined));
    for (const name of ['XynQueueBacklog', 'XynOldestRunWaiting', 'XynExpiredLeases', 'XynNoActiveWorkers', 'XynNoWorkersAlive', 'XynBlueprintSlowRuns', 'XynWorkStalled', 'XynQueueWaitHigh']) {
      const rule = rules.find((r) => r.name === name)!;
      await eventually(`${name} condition to clear`, async () => ((await prometheus.query(rule.query)).length === 0 ? true : undefined));
    }
    // The group is fresh: Collector reads DOWN, the queue figures are gone (No data), not stale and not frozen.
    const stats = await eventually('the stat panels of a failed read', async () => {
      const values = await statValues(prometheus);
      return values['Ready runs']!.length === 0 && values['Collector']!.map((v) => v.value).join() === '0' ? values : undefined;
    });
    expect(stats['Oldest due run']).toEqual([]);
    expect(stats['Expired leases']).toEqual([]);
    expect(stats['Workers alive']).toEqual([]);
    expect(stats['Last push']!.map((v) => Number.isFinite(v.value))).toEqual([true]);
  });

  it('frozen gauges: once the push is older than the limit, the queue alerts stop and XynCollectorSilent fires', async () => {
    const { error } = await runCollector();
    expect(error).toBeUndefined();
    // Fresh: the gate is open and the backlog counts ...
    await eventually('the fresh backlog in the short-lived Prometheus', async () => {
      const fresh = await shortLived.query('xyn:queue_ready_depth:fresh');
      return fresh.length === 1 && valueOf(fresh[0]!) === 150 ? true : undefined;
    }, FROZEN_AFTER_S * 1000);
    const rules = (await shortLived.ruleGroups()).flatMap((g) => g.rules);
    const silent = rules.find((r) => r.name === 'XynCollectorSilent')!;
    expect(await shortLived.query(silent.query)).toEqual([]);

    // ... then no push comes: the Pushgateway still serves 150, but nothing trusts it.
    const firing = await eventually('XynCollectorSilent firing', async () => {
      const { alerts } = await shortLived.api<{ alerts: { labels: Record<string, string>; state: string }[] }>('/api/v1/alerts');
      return alerts.find((a) => a.labels.alertname === 'XynCollectorSilent' && a.state === 'firing');
    }, 20_000);
    expect(firing.labels).toMatchObject({ ...GROUP, severity: 'warning' });
    expect(valueOf(await one(`xyn_queue_ready_depth{job="${JOB}"}`))).toBe(150);
    expect(await shortLived.query('xyn:queue_ready_depth:fresh')).toEqual([]);
    for (const name of ['XynQueueBacklog', 'XynOldestRunWaiting', 'XynExpiredLeases', 'XynNoActiveWorkers']) {
      expect(await shortLived.query(rules.find((r) => r.name === name)!.query), name).toEqual([]);
    }

    // The dashboard against the same Prometheus: every stat panel returns the group's stale marker
    // (NaN, shown as "stale"), no number, while the Pushgateway still serves the frozen 150.
    const stats = await statValues(shortLived);
    expect(Object.keys(stats)).toHaveLength(6);
    for (const [panel, values] of Object.entries(stats)) {
      expect(values.map((v) => v.value), panel).toEqual([NaN]);
      expect(values[0]!.metric, panel).toEqual(GROUP);
    }
    // The push age keeps telling how old the group is, against the recorded limit.
    const ageTargets = dashboard.panels.find((p) => p.title === 'Push age')!.targets!;
    const [age] = await shortLived.query(concrete(ageTargets[0]!.expr!));
    expect(valueOf(age!)).toBeGreaterThan(FROZEN_AFTER_S);
    expect((await shortLived.query(concrete(ageTargets[1]!.expr!))).map(valueOf)).toEqual([FROZEN_AFTER_S]);
  });

  it('a push the Pushgateway rejects (HTTP 400) satisfies XynPushRejected', async () => {
    // Another group holds xyn_probe as a gauge; the same name as a counter is inconsistent.
    const other = await fetch(`${gateway.url}/metrics/job/xyn_probe`, { method: 'PUT', body: '# TYPE xyn_probe gauge\nxyn_probe 1\n' });
    expect(other.status).toBe(200);
    const response = await fetch(`${gateway.url}/metrics/job/${JOB}/env/e2e`, {
      method: 'PUT',
      body: '# TYPE xyn_probe counter\nxyn_probe 1\n',
    });
    expect(response.status, await response.text()).toBe(400);
    const rule = (await prometheus.ruleGroups()).flatMap((g) => g.rules).find((r) => r.name === 'XynPushRejected')!;
    const result = await eventually('XynPushRejected condition', async () => {
      const samples = await prometheus.query(rule.query);
      return samples.length === 1 ? samples[0] : undefined;
    });
    expect(result.metric).toEqual({ __name__: 'xyn:push_failed_since_success_seconds', ...GROUP });
    expect(valueOf(result)).toBeGreaterThan(0);
  });

  it('when the Pushgateway goes away, XynPushgatewayDown and XynMetricsAbsent conditions hold', async () => {
    await gateway.stop();
    const rules = (await prometheus.ruleGroups()).flatMap((g) => g.rules);
    for (const name of ['XynPushgatewayDown', 'XynMetricsAbsent']) {
      const rule = rules.find((r) => r.name === name)!;
      await eventually(`${name} condition`, async () => ((await prometheus.query(rule.query)).length === 1 ? true : undefined));
    }
    // Nothing reaches Prometheus: no stat panel has a value at all (No data), the scrape line reads 0.
    expect(Object.values(await statValues(prometheus)).flat()).toEqual([]);
    const scrape = dashboard.panels.find((p) => p.title === 'Collector health')!.targets!.find((t) => t.legendFormat === 'pushgateway scrape up')!;
    expect((await prometheus.query(concrete(scrape.expr!))).map(valueOf)).toEqual([0]);
  });
});
