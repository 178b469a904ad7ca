/**
 * The remote-write path end to end. The real handler (functions/collect.ts)
 * reads a seeded runs table through the Neon driver and the bridge and POSTs
 * to a real Prometheus started with --web.enable-remote-write-receiver,
 * configured from monitoring/prometheus-remote-write.yml (rules-remote-write.yml
 * and the shared alerts.yml). With only REMOTE_WRITE_URL set, the series land
 * with the right names, labels and database timestamps, the recorded series
 * agree with the data, the alerts fire and resolve (backlog, failed read,
 * silence, recovery), and the dashboard's queries return data: the stat
 * panels the fresh figures, the stale marker (NaN, never a number) once the
 * collector is silent, and the push age even after the samples have left the
 * query lookback (a second Prometheus with a 10 s lookback).
 *
 * Then against a loopback receiver that records and scripts its answers: both
 * sinks at once with either one failing, the retry policy, one deadline for
 * both, and SigV4 verified on the receiving side.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type Bridge } from '../../scripts/bridge/bridge';
import { parseConfig } from '../../lib/config/parse';
import { runTick } from '../../lib/runtime/tick';
import { invokeCollect } from '../support/lambda';
import { createTestDatabase, seedAlertingQueue, type TestDatabase } from '../support/postgres';
import { eventually, readMonitoringFile, startOwnPushgateway, startPrometheus, type PromSample, type TestPrometheus } from '../support/prometheus';
import type { TestPushgateway } from '../support/pushgateway';
import { decodeWriteRequest, startReceiver, verifySigV4, type TestReceiver } from '../support/remote-write';
import { selfSignedCertificate, startTlsFront } from '../support/tls';

const JOB = 'xyn_metrics';
const GROUP = { job: JOB, env: 'e2e' };
/** The test Prometheus's freshness limit (rules-remote-write.yml ships 300 s). */
const FRESH_S = 5;

let db: TestDatabase;
let bridge: Bridge;
let prometheus: TestPrometheus;
/** How many rules the test Prometheus loaded (records and alerts of both files). */
let declaredRules: number;

function env(over: Record<string, string | undefined> = {}) {
  return {
    DATABASE_URL: db.url,
    DATABASE_WS_PROXY: bridge.proxy,
    RUNS_TABLE: db.table,
    PUSHGATEWAY_URL: undefined,
    REMOTE_WRITE_URL: `${prometheus.url}/api/v1/write`,
    REMOTE_WRITE_LABELS: 'env=e2e',
    RUN_STARTED_COLUMN: 'started_at',
    RUN_FINISHED_COLUMN: 'finished_at',
    ...over,
  };
}

/** The tick's JSON log line. */
function logLine(output: string): Record<string, unknown> {
  const line = output.split('\n').find((l) => l.includes('"msg":"tick'));
  if (!line) throw new Error(`no tick log line in: ${output}`);
  return JSON.parse(line) as Record<string, unknown>;
}

/**
 * Known figures: 150 ready (backlog) queued up to 900 s ago but due 60 s ago, 2 future, 2 expired
 * leases, no active one; nothing started or finished in the flow window.
 */
const seed = () => seedAlertingQueue(db, { SUCCEEDED: 1, FAILED: 1 });

const valueOf = (sample: PromSample) => Number(sample.value[1]);

interface Panel {
  title: string;
  type: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

/** The dashboard's panels, rows' included, each query as Grafana sends it with every environment selected. */
async function dashboardQueries() {
  const dashboard = JSON.parse(await readMonitoringFile('grafana-dashboard.json')) as { panels: Panel[] };
  const concrete = (expr: string) =>
    expr
      .replace(/\$\{?job\}?/g, JOB)
      .replace(/\$\{?env\}?/g, '.*')
      .replace(/\$\{?__rate_interval\}?/g, '1m');
  return dashboard.panels
    .flatMap((p) => [p, ...(p.panels ?? [])])
    .flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, type: p.type, expr: concrete(t.expr!) })));
}

/** Each stat panel's values from `server` (NaN for the stale marker). */
async function statValues(server: TestPrometheus): Promise<Record<string, { value: number; metric: Record<string, string> }[]>> {
  const stats = (await dashboardQueries()).filter((q) => q.type === 'stat');
  expect(stats).toHaveLength(6);
  return Object.fromEntries(
    await Promise.all(stats.map(async ({ panel, expr }) => [panel, (await server.query(expr)).map((s) => ({ value: valueOf(s), metric: s.metric }))] as const)),
  );
}

/** Tick (as the schedule would) until `probe` holds; the freshness limit is short, so keep ticking. */
async function tickUntil<T>(what: string, probe: () => Promise<T | undefined>, over: Record<string, string | undefined> = {}, timeoutMs = 30_000) {
  return eventually(
    what,
    async () => {
      await invokeCollect(env(over));
      return probe();
    },
    timeoutMs,
  );
}

async function firing(): Promise<Map<string, Record<string, string>>> {
  const { alerts } = await prometheus.api<{ alerts: { labels: Record<string, string>; state: string }[] }>('/api/v1/alerts');
  return new Map(alerts.filter((a) => a.state === 'firing').map((a) => [a.labels.alertname!, a.labels]));
}

beforeAll(async () => {
  [db, bridge] = await Promise.all([createTestDatabase('rw'), startBridge()]);
  const source = await readMonitoringFile('prometheus-remote-write.yml');
  const config = source
    .replace(/^(\s+evaluation_interval:) \S+$/m, '$1 1s')
    .replace(/^alerting:\n(?:[ #].*\n|\n)*/m, '');
  expect(config).not.toBe(source);
  const rules = await readMonitoringFile('rules-remote-write.yml');
  const shortRules = rules.replace(/(record: xyn_threshold:push_max_age_seconds\n\s+expr: )vector\(300\)/, `$1vector(${FRESH_S})`);
  expect(shortRules).not.toBe(rules);
  const alerts = await readMonitoringFile('alerts.yml');
  // The alerts' durations shrink to a second so firing and resolving fit in a test; the conditions are the shipped ones.
  const quickAlerts = alerts.replace(/^(\s+for:) \S+$/gm, '$1 1s');
  expect(quickAlerts).not.toBe(alerts);
  declaredRules = ((shortRules + quickAlerts).match(/^\s+- (record|alert): /gm) ?? []).length;
  prometheus = await startPrometheus(config, { 'rules-remote-write.yml': shortRules, 'alerts.yml': quickAlerts }, 3, ['--web.enable-remote-write-receiver']);
  await seed();
});

afterAll(async () => {
  await prometheus?.stop();
  await bridge?.close();
  await db?.close();
});

describe('remote write into a real Prometheus, from the real handler', () => {
  it('with only REMOTE_WRITE_URL set, a tick lands with the right names, labels and database timestamps', async () => {
    const before = Date.now();
    const { result, error, output } = await invokeCollect(env());
    const after = Date.now();
    expect(error, output).toBeUndefined();
    expect(result).toMatchObject({ outcome: 'ok', pushedTo: `${prometheus.url}/api/v1/write` });
    expect(logLine(output)).toMatchObject({ outcome: 'ok', remote_write_to: `${prometheus.url}/api/v1/write`, remote_write_attempts: 1 });
    expect(logLine(output).pushed_to).toBeUndefined();

    const series = await eventually('the written series', async () => {
      const found = await prometheus.query(`{job="${JOB}", __name__=~"xyn_.*"}`);
      return found.length >= 24 ? found : undefined;
    });
    const byName = (name: string) => series.filter((s) => s.metric.__name__ === name);
    expect(new Set(series.map((s) => s.metric.__name__))).toEqual(
      new Set([
        'xyn_queue_depth',
        'xyn_queue_ready_depth',
        'xyn_queue_future_depth',
        'xyn_queue_oldest_ready_seconds',
        'xyn_queue_oldest_due_seconds',
        'xyn_running_with_expired_lease',
        'xyn_running_with_active_lease',
        'xyn_running_without_lease',
        'xyn_runs_finished_in_window',
        'xyn_runs_started_in_window',
        'xyn_flow_window_seconds',
        'xyn_collector_up',
        'xyn_collector_duration_seconds',
        'xyn_collector_degraded',
        'xyn_queue_depth_estimated',
      ]),
    );
    for (const s of series) {
      const { __name__: name, status, ...rest } = s.metric;
      expect(rest, name).toEqual(GROUP); // job and the static label, no instance
      if (name === 'xyn_queue_depth' || name === 'xyn_runs_finished_in_window') expect(status).toBeDefined();
    }
    expect(valueOf(byName('xyn_queue_ready_depth')[0]!)).toBe(150);
    expect(valueOf(byName('xyn_queue_future_depth')[0]!)).toBe(2);
    expect(valueOf(byName('xyn_running_with_expired_lease')[0]!)).toBe(2);
    expect(valueOf(byName('xyn_running_with_active_lease')[0]!)).toBe(0);
    expect(valueOf(byName('xyn_collector_up')[0]!)).toBe(1);
    expect(Object.fromEntries(byName('xyn_queue_depth').map((s) => [s.metric.status, valueOf(s)]))).toEqual({
      QUEUED: 152,
      RUNNING: 2,
      SUCCEEDED: 1,
      FAILED: 1,
      CANCELLED: 0,
    });

    // One timestamp for the whole tick: the database's clock at the snapshot (same machine here).
    const { result: matrix } = await prometheus.api<{ result: { metric: Record<string, string>; values: [number, string][] }[] }>(
      `/api/v1/query?query=${encodeURIComponent(`{job="${JOB}", __name__=~"xyn_.*"}[5m]`)}`,
    );
    expect(matrix).toHaveLength(series.length);
    const distinct = new Set(matrix.flatMap((s) => s.values.map(([t]) => t)));
    expect(distinct.size).toBe(1);
    const stampMs = [...distinct][0]! * 1000;
    expect(stampMs).toBeGreaterThanOrEqual(before - 1_000);
    expect(stampMs).toBeLessThanOrEqual(after);
  });

  it('loads rules-remote-write.yml and alerts.yml; the recorded series agree with the data', async () => {
    const groups = await eventually('every rule evaluated', async () => {
      const found = await prometheus.ruleGroups();
      const rules = found.flatMap((g) => g.rules);
      return rules.length === declaredRules && rules.every((r) => r.health === 'ok') ? found : undefined;
    });
    expect(groups.map((g) => g.name).sort()).toEqual(['xyn-collector', 'xyn-flow', 'xyn-freshness', 'xyn-queue', 'xyn-thresholds', 'xyn-workers']);

    const recorded = await tickUntil('fresh recorded series', async () => {
      const [ready, oldest, expired, active, up, age, due, started] = await Promise.all(
        [
          'xyn:queue_ready_depth:fresh',
          'xyn:queue_oldest_ready_seconds:fresh',
          'xyn:running_with_expired_lease:fresh',
          'xyn:running_with_active_lease:fresh',
          'xyn:collector_up:fresh',
          'xyn:push_age_seconds',
          'xyn:queue_oldest_due_seconds:fresh',
          'xyn:runs_started_in_window:fresh',
        ].map((expr) => prometheus.query(expr)),
      );
      return [ready, oldest, expired, active, up, age, due, started].every((r) => r!.length === 1)
        ? { ready: ready!, oldest: oldest!, expired: expired!, active: active!, up: up!, age: age!, due: due!, started: started! }
        : undefined;
    });
    expect(recorded.ready[0]!.metric).toEqual({ __name__: 'xyn:queue_ready_depth:fresh', ...GROUP });
    expect(valueOf(recorded.ready[0]!)).toBe(150);
    expect(valueOf(recorded.oldest[0]!)).toBeGreaterThanOrEqual(900);
    expect(valueOf(recorded.due[0]!)).toBeGreaterThanOrEqual(60);
    expect(valueOf(recorded.due[0]!)).toBeLessThan(300);
    expect(valueOf(recorded.started[0]!)).toBe(0);
    expect(valueOf(recorded.expired[0]!)).toBe(2);
    expect(valueOf(recorded.active[0]!)).toBe(0);
    expect(valueOf(recorded.up[0]!)).toBe(1);
    expect(recorded.age[0]!.metric).toEqual({ __name__: 'xyn:push_age_seconds', ...GROUP });
    expect(valueOf(recorded.age[0]!)).toBeLessThanOrEqual(FRESH_S);
  });

  it('every PromQL expression of the dashboard parses, and the queue and freshness panels return data', async () => {
    const exprs = await dashboardQueries();
    for (const { panel, expr } of exprs) {
      expect(expr, panel).not.toContain('$');
      await expect(prometheus.query(expr), `${panel}: ${expr}`).resolves.toBeInstanceOf(Array);
    }
    // Pushgateway-only panels (its scrape), unconfigured extras, estimated statuses (only a long
    // history has them; this queue is small, so every status is counted) and wait quantiles (nothing
    // started) are empty here; everything else has data.
    const empty = (expr: string) => /pushgateway|xyn[_:]workers_alive|xyn_blueprint_|xyn_queue_wait_seconds|xyn_queue_depth_estimated\{[^}]*\} == 1/.test(expr);
    for (const { panel, expr } of exprs.filter((e) => !empty(e.expr))) {
      await tickUntil(`data for ${panel}: ${expr}`, async () => ((await prometheus.query(expr)).length > 0 ? true : undefined));
    }
    const lastPush = exprs.find((e) => e.panel === 'Last push')!;
    const age = await tickUntil('a fresh last-push age', async () => (await prometheus.query(lastPush.expr))[0]);
    expect(valueOf(age)).toBeLessThan(FRESH_S);
    // Fresh: every stat panel but Workers alive (no heartbeat table) shows a number.
    const stats = await tickUntil('the stat panels with values', async () => {
      const values = await statValues(prometheus);
      return values['Ready runs']!.length === 1 ? values : undefined;
    });
    expect(Object.fromEntries(Object.entries(stats).map(([panel, values]) => [panel, values.map((v) => Number.isFinite(v.value))]))).toEqual({
      'Ready runs': [true],
      'Oldest due run': [true],
      'Expired leases': [true],
      Collector: [true],
      'Last push': [true],
      'Workers alive': [],
    });
  });

  it('alerts fire and resolve: backlog, failed read, silence, recovery', async () => {
    // The seeded backlog, with nothing started: stalled. Queued up to 900 s ago but due 60 s ago: not waiting.
    const queueAlerts = ['XynQueueBacklog', 'XynExpiredLeases', 'XynNoActiveWorkers', 'XynWorkStalled'];
    await tickUntil('the queue alerts firing', async () => {
      const now = await firing();
      return queueAlerts.every((a) => now.has(a)) ? true : undefined;
    });
    expect((await firing()).has('XynOldestRunWaiting')).toBe(false);
    const labels = (await firing()).get('XynQueueBacklog');
    expect(labels).toMatchObject({ ...GROUP, severity: 'warning' });
    expect(labels?.instance).toBeUndefined();

    // A failed read: only xyn_collector_up 0 arrives; the queue alerts resolve at once (no frozen values).
    const failed = await invokeCollect(env({ RUNS_TABLE: 'no_such_table' }));
    expect(failed.error).toBeInstanceOf(Error);
    expect(logLine(failed.output)).toMatchObject({ outcome: 'db_failed', remote_write_attempts: 1 });
    await tickUntil(
      'XynCollectorFailing firing and the queue alerts resolved',
      async () => {
        const now = await firing();
        return now.has('XynCollectorFailing') && queueAlerts.every((a) => !now.has(a)) ? true : undefined;
      },
      { RUNS_TABLE: 'no_such_table' },
    );

    // Silence: no tick at all. The age grows from the samples' own time.
    const silent = await eventually('XynCollectorSilent firing', async () => {
      const now = await firing();
      return now.has('XynCollectorSilent') && !now.has('XynCollectorFailing') ? now : undefined;
    }, 30_000);
    expect(silent.get('XynCollectorSilent')).toMatchObject({ ...GROUP, severity: 'warning' });
    expect(silent.has('XynMetricsAbsent')).toBe(false);
    // The dashboard says stale in every stat panel, while the last samples are still within the lookback.
    for (const [panel, values] of Object.entries(await statValues(prometheus))) {
      expect(values.map((v) => v.value), panel).toEqual([NaN]);
      expect(values[0]!.metric, panel).toEqual(GROUP);
    }

    // Recovery: ticks resume; silence and failure resolve, the backlog is back.
    await tickUntil('recovery', async () => {
      const now = await firing();
      return !now.has('XynCollectorSilent') && !now.has('XynCollectorFailing') && now.has('XynQueueBacklog') ? true : undefined;
    });
    // Never on this path: the Pushgateway-only alerts.
    const now = await firing();
    expect(now.has('XynPushRejected') || now.has('XynPushgatewayDown')).toBe(false);
  });
});

describe('the dashboard after a silence longer than the query lookback', () => {
  /** Prometheus's lookback, 5 minutes by default, shortened so the silence fits in a test. */
  const LOOKBACK_S = 10;
  let shortLookback: TestPrometheus;

  beforeAll(async () => {
    const config = (await readMonitoringFile('prometheus-remote-write.yml'))
      .replace(/^(\s+evaluation_interval:) \S+$/m, '$1 1s')
      .replace(/^alerting:\n(?:[ #].*\n|\n)*/m, '');
    const rules = (await readMonitoringFile('rules-remote-write.yml')).replace(/(record: xyn_threshold:push_max_age_seconds\n\s+expr: )vector\(300\)/, `$1vector(${FRESH_S})`);
    shortLookback = await startPrometheus(config, { 'rules-remote-write.yml': rules, 'alerts.yml': await readMonitoringFile('alerts.yml') }, 3, [
      '--web.enable-remote-write-receiver',
      `--query.lookback-delta=${LOOKBACK_S}s`,
    ]);
  });
  afterAll(async () => {
    await shortLookback?.stop();
  });

  it('the push age keeps rising after the samples leave the lookback, and every stat panel stays stale', async () => {
    const write = env({ REMOTE_WRITE_URL: `${shortLookback.url}/api/v1/write` });
    await eventually('the fresh backlog in the stat panel', async () => {
      await invokeCollect(write);
      return (await statValues(shortLookback))['Ready runs']!.map((v) => v.value).join() === '150' ? true : undefined;
    }, 30_000);

    // No tick any more: once the newest sample is older than the lookback, no raw series is visible
    // (an age computed from them, as the dashboard once did, would be No data) ...
    await eventually('the samples beyond the lookback', async () => ((await shortLookback.query(`xyn_collector_up{job="${JOB}"}`)).length === 0 ? true : undefined), (LOOKBACK_S + 15) * 1000);
    expect(await shortLookback.query(`time() - timestamp(xyn_collector_up{job="${JOB}"})`)).toEqual([]);

    // ... but the Push age panel has the age, past the lookback, against the recorded limit,
    const queries = await dashboardQueries();
    const [age, limit] = queries.filter((q) => q.panel === 'Push age');
    const ages = await shortLookback.query(age!.expr);
    expect(ages.map((s) => s.metric)).toEqual([{ __name__: 'xyn:push_age_seconds', ...GROUP }]);
    // (The recorded age is as of its last evaluation, up to an interval (1 s) behind the query.)
    const rising = await eventually('the age well past the lookback', async () => {
      const [later] = await shortLookback.query(age!.expr);
      return later && valueOf(later) > LOOKBACK_S + 3 ? later : undefined;
    }, 10_000);
    expect(valueOf(rising)).toBeGreaterThan(valueOf(ages[0]!));
    expect((await shortLookback.query(limit!.expr)).map(valueOf)).toEqual([FRESH_S]);
    // and every stat panel shows the stale marker, never a number.
    for (const [panel, values] of Object.entries(await statValues(shortLookback))) {
      expect(values.map((v) => v.value), panel).toEqual([NaN]);
      expect(values[0]!.metric, panel).toEqual(GROUP);
    }
  });
});

describe('two sinks, a scripted receiver', () => {
  let gateway: TestPushgateway;
  let receiver: TestReceiver;

  beforeAll(async () => {
    [gateway, receiver] = await Promise.all([startOwnPushgateway(), startReceiver('/api/v1/push')]);
  });
  afterAll(async () => {
    await Promise.all([gateway?.stop(), receiver?.stop()]);
  });

  const both = (over: Record<string, string | undefined> = {}) =>
    env({ PUSHGATEWAY_URL: gateway.url, REMOTE_WRITE_URL: receiver.url, PUSH_RETRIES: '2', ...over });

  it('sends the same series to both, with the protocol headers', async () => {
    receiver.requests.length = 0;
    const { result, output } = await invokeCollect(both({ PUSHGATEWAY_GROUPING: 'env=e2e', REMOTE_WRITE_LABELS: undefined }));
    expect(result, output).toMatchObject({ outcome: 'ok' });
    expect(logLine(output)).toMatchObject({ pushed_to: `${gateway.url}/metrics/job/${JOB}/env/e2e`, remote_write_to: receiver.url, remote_write_attempts: 1, push_attempts: 1 });
    const [request] = receiver.requests;
    expect(request?.method).toBe('POST');
    expect(request?.headers).toMatchObject({
      'content-encoding': 'snappy',
      'content-type': 'application/x-protobuf',
      'x-prometheus-remote-write-version': '0.1.0',
    });
    const written = decodeWriteRequest(request!.body);
    const scraped = (await gateway.scrape()).split('\n').filter((l) => l.startsWith('xyn_'));
    // Every series the gateway serves arrived by remote write, with the same labels (the gateway adds instance="").
    expect(written.series).toHaveLength(scraped.length);
    for (const series of written.series) expect(series.labels).toMatchObject(GROUP);
    // Metadata from the help text and type, as the gateway's # HELP lines say (Prometheus 2.42's receiver stores none, so checked here).
    const help = (await gateway.scrape()).match(/^# HELP xyn_collector_up (.+)$/m)?.[1];
    expect(written.metadata.find((m) => m.family === 'xyn_collector_up')).toEqual({ type: 2, family: 'xyn_collector_up', help });
  });

  it('a failing receiver does not stop the push; the log line names it and the tick fails', async () => {
    receiver.requests.length = 0;
    receiver.script.push(500, 503, 502);
    const { error, output } = await invokeCollect(both());
    expect(error).toBeInstanceOf(Error);
    const line = logLine(output);
    expect(line).toMatchObject({ outcome: 'push_failed', sinks: { pushgateway: 'ok', remote_write: 'failed' }, remote_write_attempts: 3, push_attempts: 1 });
    expect(line.error).toMatch(new RegExp(`remote write to ${receiver.url} failed after 3 attempts: HTTP 502`));
    expect(line.pushed_to).toBe(`${gateway.url}/metrics/job/${JOB}`);
    expect(receiver.requests).toHaveLength(3);
  });

  it('never retries a 4xx other than 429', async () => {
    receiver.requests.length = 0;
    receiver.script.push(400);
    const rejected = await invokeCollect(both());
    expect(logLine(rejected.output)).toMatchObject({ outcome: 'push_failed', remote_write_attempts: 1 });
    expect(receiver.requests).toHaveLength(1);

    receiver.requests.length = 0;
    receiver.script.push(429);
    const throttled = await invokeCollect(both());
    expect(logLine(throttled.output)).toMatchObject({ outcome: 'ok', remote_write_attempts: 2 });
    expect(receiver.requests).toHaveLength(2);
  });

  it('a Pushgateway that is down does not stop the remote write', async () => {
    receiver.requests.length = 0;
    const { error, output } = await invokeCollect(both({ PUSHGATEWAY_URL: 'http://127.0.0.1:1', PUSH_RETRIES: '0' }));
    expect(error).toBeInstanceOf(Error);
    expect(logLine(output)).toMatchObject({ outcome: 'push_failed', sinks: { pushgateway: 'failed', remote_write: 'ok' }, remote_write_to: receiver.url });
    expect(receiver.requests).toHaveLength(1);
  });

  it('one deadline covers both: a receiver that never answers is cut, the push still lands', async () => {
    receiver.script.push(0); // 0: hold the request open
    const started = Date.now();
    const { error, output } = await invokeCollect(both({ TICK_TIMEOUT_MS: '3000', PUSH_TIMEOUT_MS: '60000', PUSH_RETRIES: '0' }));
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(error).toBeInstanceOf(Error);
    const line = logLine(output);
    expect(line).toMatchObject({ outcome: 'push_failed', sinks: { pushgateway: 'ok', remote_write: 'failed' } });
    expect(line.error).toMatch(/remote write attempt 1 did not finish within \d+ ms \(tick deadline/);
  });

  it('stamps every sample with the snapshot\'s database time, to the millisecond', async () => {
    receiver.requests.length = 0;
    const result = await runTick(parseConfig(both()), { log: () => {} });
    const written = decodeWriteRequest(receiver.requests[0]!.body);
    const stamps = new Set(written.series.flatMap((s) => s.samples.map((x) => x.timestampMs)));
    expect([...stamps]).toEqual([Math.round(result.snapshot!.dbNowSeconds * 1000)]);
  });

  it('a failed read still writes xyn_collector_up 0 by remote write', async () => {
    receiver.requests.length = 0;
    const { output } = await invokeCollect(both({ RUNS_TABLE: 'no_such_table' }));
    expect(logLine(output)).toMatchObject({ outcome: 'db_failed' });
    const written = decodeWriteRequest(receiver.requests[0]!.body);
    expect(written.series.map((s) => s.labels.__name__).sort()).toEqual(['xyn_collector_duration_seconds', 'xyn_collector_up']);
    expect(written.series.find((s) => s.labels.__name__ === 'xyn_collector_up')?.samples[0]?.value).toBe(0);
  });

  it('SigV4: the receiver verifies the signature for service aps with the role credentials; no secret is logged', async () => {
    receiver.requests.length = 0;
    const credentials = { AWS_ACCESS_KEY_ID: 'ASIATESTKEY', AWS_SECRET_ACCESS_KEY: 'test/Secret+Key0123456789', AWS_SESSION_TOKEN: 'test-session-token-0123' };
    const { result, output } = await invokeCollect(both({ PUSHGATEWAY_URL: undefined, REMOTE_WRITE_SIGV4: 'true', REMOTE_WRITE_REGION: 'eu-west-1', ...credentials }));
    expect(result, output).toMatchObject({ outcome: 'ok' });
    const request = receiver.requests[0]!;
    expect(verifySigV4({ method: request.method, path: request.path, headers: request.headers, body: request.body }, credentials.AWS_SECRET_ACCESS_KEY)).toMatchObject({
      accessKeyId: 'ASIATESTKEY',
      region: 'eu-west-1',
      service: 'aps',
    });
    expect(request.headers['x-amz-security-token']).toBe(credentials.AWS_SESSION_TOKEN);
    for (const secret of [credentials.AWS_SECRET_ACCESS_KEY, credentials.AWS_SESSION_TOKEN]) expect(output).not.toContain(secret);

    // Without credentials no request is made and the error says what is missing.
    receiver.requests.length = 0;
    const missing = await invokeCollect(both({ PUSHGATEWAY_URL: undefined, REMOTE_WRITE_SIGV4: 'true', REMOTE_WRITE_REGION: 'eu-west-1', AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined }));
    expect(logLine(missing.output).error).toMatch(/AWS_ACCESS_KEY_ID\/AWS_SECRET_ACCESS_KEY are not in the environment/);
    expect(receiver.requests).toHaveLength(0);
  });

  it('basic auth and bearer token reach the receiver; the secrets stay out of the log', async () => {
    receiver.requests.length = 0;
    const basic = await invokeCollect(both({ REMOTE_WRITE_USERNAME: 'tenant-1', REMOTE_WRITE_PASSWORD: 'Rw-Pa55word-xyz' }));
    expect(basic.result, basic.output).toMatchObject({ outcome: 'ok' });
    expect(receiver.requests[0]!.headers.authorization).toBe(`Basic ${Buffer.from('tenant-1:Rw-Pa55word-xyz').toString('base64')}`);
    receiver.requests.length = 0;
    receiver.script.push(401);
    const bearer = await invokeCollect(both({ REMOTE_WRITE_TOKEN: 'rw-token-0123456789' }));
    expect(receiver.requests[0]!.headers.authorization).toBe('Bearer rw-token-0123456789');
    expect(logLine(bearer.output)).toMatchObject({ outcome: 'push_failed', remote_write_attempts: 1 });
    for (const output of [basic.output, bearer.output]) {
      expect(output).not.toContain('Rw-Pa55word-xyz');
      expect(output).not.toContain('rw-token-0123456789');
    }
  });

  it('https with a private CA: REMOTE_WRITE_CA_FILE is trusted; a certificate error is never retried', async () => {
    const cert = selfSignedCertificate('IP:127.0.0.1');
    const wrongName = selfSignedCertificate('DNS:other.example');
    const token = 'rw-token-abcdef0123456789';
    const origin = new URL(receiver.url).origin;
    const [front, wrongFront] = await Promise.all([startTlsFront(cert, origin, `Bearer ${token}`), startTlsFront(wrongName, origin, `Bearer ${token}`)]);
    try {
      const tls = (url: string, over: Record<string, string | undefined> = {}) =>
        both({ PUSHGATEWAY_URL: undefined, REMOTE_WRITE_URL: `${url}/api/v1/push`, REMOTE_WRITE_TOKEN: token, ...over });
      const trusted = await invokeCollect(tls(front.url, { REMOTE_WRITE_CA_FILE: cert.certFile }));
      expect(trusted.result, trusted.output).toMatchObject({ outcome: 'ok' });

      const untrusted = await invokeCollect(tls(front.url));
      expect(logLine(untrusted.output)).toMatchObject({ outcome: 'push_failed', remote_write_attempts: 1 });
      expect(logLine(untrusted.output).error).toMatch(/SELF_SIGNED|self[- ]signed/i);

      const misnamed = await invokeCollect(tls(wrongFront.url, { REMOTE_WRITE_CA_FILE: wrongName.certFile }));
      expect(logLine(misnamed.output)).toMatchObject({ outcome: 'push_failed', remote_write_attempts: 1 });
      expect(logLine(misnamed.output).error).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID|altnames/);
      for (const run of [trusted, untrusted, misnamed]) expect(run.output).not.toContain(token);
    } finally {
      await Promise.all([front.close(), wrongFront.close()]);
      cert.dispose();
      wrongName.dispose();
    }
  });
});
