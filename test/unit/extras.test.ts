/** The extras' pure parts: settings, SQL text, row parsing, registry, token check. */

import { describe, expect, it } from 'vitest';
import { bearerToken, tokenMatches } from '../../functions/metrics';
import { toBlueprintSnapshot } from '../../lib/source/blueprints';
import { ConfigError } from '../../lib/config/errors';
import { parseConfig } from '../../lib/config/parse';
import type { Env } from '../../lib/config/read';
import { METRICS } from '../../lib/metrics/definitions';
import { buildRegistry } from '../../lib/metrics/registry';
import { blueprintSql, queueSnapshotSql, snapshotBatch, tickSelects, workersAliveSql } from '../../lib/source/sql';
import { toFlowSnapshot } from '../../lib/source/flow';
import type { QueueSnapshot } from '../../lib/source/snapshot';
import { toWorkersAlive } from '../../lib/source/workers';

const BASE: Env = { DATABASE_URL: 'postgresql://u:secret-pw@db.example:5432/xyn', PUSH_DRY_RUN: 'true' };
const parse = (env: Env) => parseConfig({ ...BASE, ...env }, { requireSink: false });
const BLUEPRINTS: Env = { BLUEPRINT_COLUMN: 'blueprint', RUN_STARTED_COLUMN: 'started_at', RUN_FINISHED_COLUMN: 'finished_at' };

function configError(env: Env): string {
  try {
    parse(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('extras settings', () => {
  it('leaves every extra off by default, with one sample per invocation', () => {
    const config = parse({});
    expect(config).toMatchObject({ sampling: { samplesPerInvocation: 1, schedulePeriodSeconds: 60 }, metricsBearerToken: undefined, extras: { heartbeat: undefined, blueprints: undefined, flow: undefined } });
    expect(config.database.statusTopK).toBe(20);
  });

  it('parses the heartbeat settings with defaults, quoting identifiers', () => {
    const config = parse({ HEARTBEAT_TABLE: 'ops.worker_heartbeats' });
    expect(config.extras.heartbeat).toEqual({
      table: { schema: 'ops', name: 'worker_heartbeats', sql: '"ops"."worker_heartbeats"', display: 'ops.worker_heartbeats' },
      workerColumn: { name: 'worker_id', sql: '"worker_id"' },
      atColumn: { name: 'heartbeat_at', sql: '"heartbeat_at"' },
      ttlSeconds: 60,
    });
  });

  it('parses the blueprint settings with defaults', () => {
    expect(parse(BLUEPRINTS).extras.blueprints).toMatchObject({ column: { sql: '"blueprint"' }, windowSeconds: 3600, topK: 20 });
    expect(parse({ ...BLUEPRINTS, BLUEPRINT_TOP_K: '5', BLUEPRINT_WINDOW_SECONDS: '600' }).extras.blueprints).toMatchObject({ topK: 5, windowSeconds: 600 });
  });

  it('takes either time column alone for the flow figures, without a blueprint column; the blueprint rules stay', () => {
    expect(parse({ RUN_STARTED_COLUMN: 'started_at' }).extras).toMatchObject({
      flow: { startedColumn: { sql: '"started_at"' }, finishedColumn: undefined, windowSeconds: 300 },
      blueprints: undefined,
    });
    expect(parse({ RUN_FINISHED_COLUMN: 'done', FLOW_WINDOW_SECONDS: '120' }).extras.flow).toEqual({
      startedColumn: undefined,
      finishedColumn: { name: 'done', sql: '"done"' },
      windowSeconds: 120,
    });
    // All three: per-blueprint metrics and the flow figures from the same two columns.
    const both = parse(BLUEPRINTS).extras;
    expect(both.blueprints).toMatchObject({ startedColumn: { sql: '"started_at"' }, finishedColumn: { sql: '"finished_at"' } });
    expect(both.flow).toMatchObject({ startedColumn: { sql: '"started_at"' }, finishedColumn: { sql: '"finished_at"' } });
    expect(parse({ STATUS_TOP_K: '5' }).database.statusTopK).toBe(5);
  });

  it('names the variable of every bad or half-given setting', () => {
    expect(configError({ HEARTBEAT_TABLE: 'a.b.c' })).toMatch(/^HEARTBEAT_TABLE /);
    expect(configError({ HEARTBEAT_TABLE: 'hb', HEARTBEAT_WORKER_COLUMN: 'w"--' })).toMatch(/^HEARTBEAT_WORKER_COLUMN /);
    expect(configError({ HEARTBEAT_TABLE: 'hb', HEARTBEAT_TTL_SECONDS: '0' })).toMatch(/^HEARTBEAT_TTL_SECONDS must be between 1/);
    expect(configError({ HEARTBEAT_AT_COLUMN: 'at' })).toMatch(/^HEARTBEAT_AT_COLUMN is set but HEARTBEAT_TABLE is not/);
    expect(configError({ BLUEPRINT_COLUMN: 'blueprint' })).toMatch(/^RUN_STARTED_COLUMN is not set/);
    expect(configError({ BLUEPRINT_TOP_K: '3' })).toMatch(/^BLUEPRINT_TOP_K is set but BLUEPRINT_COLUMN is not/);
    expect(configError({ ...BLUEPRINTS, BLUEPRINT_TOP_K: '0' })).toMatch(/^BLUEPRINT_TOP_K must be between 1 and 200/);
    expect(configError({ ...BLUEPRINTS, RUN_FINISHED_COLUMN: 'finished at' })).toMatch(/^RUN_FINISHED_COLUMN /);
    expect(configError({ SAMPLES_PER_INVOCATION: '0' })).toMatch(/^SAMPLES_PER_INVOCATION must be between 1 and 60/);
    expect(configError({ SAMPLES_PER_INVOCATION: '12', SCHEDULE_PERIOD_SECONDS: '10' })).toMatch(/^SAMPLES_PER_INVOCATION must leave at least 1 second/);
    expect(configError({ SCHEDULE_PERIOD_SECONDS: 'minute' })).toMatch(/^SCHEDULE_PERIOD_SECONDS must be a whole number/);
    expect(configError({ FLOW_WINDOW_SECONDS: '300' })).toMatch(/^FLOW_WINDOW_SECONDS is set but neither RUN_STARTED_COLUMN nor RUN_FINISHED_COLUMN is/);
    expect(configError({ RUN_STARTED_COLUMN: 'started_at', FLOW_WINDOW_SECONDS: '5' })).toMatch(/^FLOW_WINDOW_SECONDS must be between 10 and 86400/);
    expect(configError({ RUN_STARTED_COLUMN: 'started at' })).toMatch(/^RUN_STARTED_COLUMN must be a column name/);
    expect(configError({ BLUEPRINT_COLUMN: 'blueprint', RUN_FINISHED_COLUMN: 'finished_at' })).toMatch(/^RUN_STARTED_COLUMN is not set; per-blueprint metrics need all of/);
    expect(configError({ STATUS_TOP_K: '0' })).toMatch(/^STATUS_TOP_K must be between 1 and 200/);
  });

  it('demands a long bearer token, never echoes it, and redacts it as a secret', () => {
    const short = configError({ METRICS_BEARER_TOKEN: 'short-tok' });
    expect(short).toMatch(/^METRICS_BEARER_TOKEN must be at least 16 characters/);
    expect(short).not.toContain('short-tok');
    const token = 'x'.repeat(15) + 'y z';
    expect(configError({ METRICS_BEARER_TOKEN: token })).not.toContain(token);
    const config = parse({ METRICS_BEARER_TOKEN: 'a-long-enough-token-1234' });
    expect(config.metricsBearerToken).toBe('a-long-enough-token-1234');
    expect(config.secrets).toContain('a-long-enough-token-1234');
  });
});

describe('extras SQL', () => {
  it('bounds the heartbeat read by the TTL on the quoted timestamp column', () => {
    const sql = workersAliveSql(parse({ HEARTBEAT_TABLE: 'ops.hb', HEARTBEAT_WORKER_COLUMN: 'worker', HEARTBEAT_AT_COLUMN: 'seen_at', HEARTBEAT_TTL_SECONDS: '45' }).extras.heartbeat!);
    expect(sql).toContain('count(DISTINCT h."worker")');
    expect(sql).toContain('FROM "ops"."hb" h');
    expect(sql).toContain(`WHERE h."seen_at" >= now() - interval '45 seconds'`);
  });

  it('reads active runs through the status predicate and finished runs through a window on the finish column', () => {
    const config = parse({ ...BLUEPRINTS, RUNS_TABLE: 'xyn.runs', BLUEPRINT_TOP_K: '7', BLUEPRINT_WINDOW_SECONDS: '900' });
    const sql = blueprintSql(config.database.runsTable, config.extras.blueprints!);
    expect(sql).toContain(`FROM "xyn"."runs" a WHERE a.status IN ('QUEUED', 'RUNNING')`);
    expect(sql).toContain(`WHERE f."finished_at" >= now() - interval '900 seconds'`);
    expect(sql).toContain('<= 7');
    expect(sql).toContain('percentile_cont(ARRAY[0.5, 0.9, 0.99]');
    // Every read of the table has a bounding predicate.
    for (const match of sql.matchAll(/FROM "xyn"\."runs" (\w+)\s*(WHERE [^\n]*)?/g)) expect(match[2], match[0]).toBeTruthy();
  });

  it('adds one SELECT per configured extra to the one batch, and none otherwise; the queue snapshot comes last', () => {
    const selects = (config: ReturnType<typeof parse>) => tickSelects(config.database, config.extras);
    const plain = parse({});
    expect(selects(plain)).toEqual([{ part: 'queue', sql: queueSnapshotSql({ table: plain.database.runsTable, estimateAbove: plain.database.statusEstimateAbove }) }]);
    expect(selects(parse({ HEARTBEAT_TABLE: 'hb' })).map((s) => s.part)).toEqual(['heartbeat', 'queue']);
    const all = selects(parse({ HEARTBEAT_TABLE: 'hb', ...BLUEPRINTS }));
    expect(all.map((s) => s.part)).toEqual(['flow', 'heartbeat', 'blueprints', 'queue']);
    expect(all[0]!.sql).toContain('finished_in_window');
    expect(all[1]!.sql).toContain('workers_alive');
    expect(all[2]!.sql).toContain('blueprint_counts');
    const batch = snapshotBatch(all.map((s) => s.sql), { budgetMs: 1000, lockTimeoutMs: 500 }).sql;
    expect(batch.match(/^BEGIN/gm)).toHaveLength(1);
    expect(batch.match(/^COMMIT$/gm)).toHaveLength(1);
  });

  it('cuts blueprint names to 128 characters before it ranks them', () => {
    const config = parse(BLUEPRINTS);
    const sql = blueprintSql(config.database.runsTable, config.extras.blueprints!);
    expect(sql).toContain(`coalesce(left(a."blueprint"::text, 128), 'other')`);
    expect(sql).toContain(`coalesce(left(f."blueprint"::text, 128), 'other')`);
  });
});

describe('extras rows', () => {
  it('reads the worker count and refuses a missing or negative one', () => {
    expect(toWorkersAlive({ workers_alive: '3' })).toBe(3);
    expect(() => toWorkersAlive(undefined)).toThrow(/heartbeat query returned no row/);
    expect(() => toWorkersAlive({ workers_alive: -1 })).toThrow(/workers_alive/);
  });

  const row = {
    blueprint_counts: [
      { blueprint: 'build', queued: 4, running: 1 },
      { blueprint: 'other', queued: 2, running: 0 },
    ],
    blueprint_durations: JSON.stringify([{ blueprint: 'build', finished: 9, quantiles: [1.5, 4, 9.75] }]),
  };

  it('reads counts and quantiles (json or text)', () => {
    expect(toBlueprintSnapshot(row, 1)).toEqual({
      counts: row.blueprint_counts,
      durations: [{ blueprint: 'build', finished: 9, quantiles: { '0.5': 1.5, '0.9': 4, '0.99': 9.75 } }],
    });
  });

  it('refuses more labels than K + 1, duplicates and malformed quantiles', () => {
    expect(() => toBlueprintSnapshot(row, 0)).toThrow(/more than BLUEPRINT_TOP_K \+ 1 = 1/);
    const twice = { ...row, blueprint_counts: [row.blueprint_counts[0], row.blueprint_counts[0]] };
    expect(() => toBlueprintSnapshot(twice, 5)).toThrow(/names a blueprint twice/);
    const bad = { ...row, blueprint_durations: [{ blueprint: 'build', finished: 1, quantiles: [1] }] };
    expect(() => toBlueprintSnapshot(bad, 5)).toThrow(/unexpected quantiles of build/);
  });
});

describe('flow rows', () => {
  const flow = parse(BLUEPRINTS).extras.flow!;
  const row = {
    finished_in_window: '[{"status":"SUCCEEDED","count":7},{"status":"PAUSED","count":1}]',
    terminal_labels: '["SUCCEEDED","FAILED","CANCELLED","ARCHIVED"]',
    started_in_window: '9',
    wait_p50: '1.5',
    wait_p90: '4',
    wait_p99: '9.75',
  };

  it('zero-fills every known terminal status, keeps unknown ones, and reads the wait quantiles', () => {
    expect(toFlowSnapshot(row, flow, 20)).toEqual({
      windowSeconds: 300,
      finished: [
        { status: 'ARCHIVED', count: 0 },
        { status: 'CANCELLED', count: 0 },
        { status: 'FAILED', count: 0 },
        { status: 'PAUSED', count: 1 },
        { status: 'SUCCEEDED', count: 7 },
      ],
      started: 9,
      waitSeconds: { '0.5': 1.5, '0.9': 4, '0.99': 9.75 },
    });
  });

  it('has no wait quantiles when no run started (absent, not 0), and only the configured parts', () => {
    const none = { ...row, started_in_window: '0', wait_p50: null, wait_p90: null, wait_p99: null };
    expect(toFlowSnapshot(none, flow, 20)).not.toHaveProperty('waitSeconds');
    expect(toFlowSnapshot(none, flow, 20).started).toBe(0);
    const finishedOnly = toFlowSnapshot({ ...row, started_in_window: null }, { ...flow, startedColumn: undefined }, 20);
    expect(finishedOnly).not.toHaveProperty('started');
    expect(toFlowSnapshot(row, { ...flow, finishedColumn: undefined }, 20)).not.toHaveProperty('finished');
  });

  it('caps the finished statuses like the depths, the runtime terminal statuses always named', () => {
    const statuses = Array.from({ length: 50 }, (_, i) => ({ status: `S${i}${'x'.repeat(300)}`, count: 100 + i }));
    const capped = toFlowSnapshot({ ...row, finished_in_window: JSON.stringify(statuses), terminal_labels: '[]' }, flow, 5);
    expect(capped.finished!.map((f) => f.status.slice(0, 3))).toEqual(['CAN', 'FAI', 'S45', 'S46', 'S47', 'S48', 'S49', 'SUC', 'oth']);
    for (const f of capped.finished!) expect(f.status.length).toBeLessThanOrEqual(128);
    expect(capped.finished!.find((f) => f.status === 'other')!.count).toBe(statuses.slice(0, 45).reduce((n, s) => n + s.count, 0));
  });

  it('refuses half a set of quantiles, or quantiles with no run started', () => {
    expect(() => toFlowSnapshot({ ...row, wait_p99: null }, flow, 20)).toThrow(/unexpected wait quantiles/);
    expect(() => toFlowSnapshot({ ...row, started_in_window: '0' }, flow, 20)).toThrow(/without a run started/);
    expect(() => toFlowSnapshot(undefined, flow, 20)).toThrow(/flow query returned no row/);
  });
});

describe('buildRegistry with extras', () => {
  const snapshot: QueueSnapshot = {
    dbNowSeconds: 1_800_000_000,
    statuses: [{ status: 'QUEUED', count: 6, estimated: false }],
    ready: 6,
    future: 0,
    oldestReadySeconds: 1,
    oldestDueSeconds: 1,
    expiredLeases: 0,
    activeLeases: 0,
    runningWithoutLease: 0,
  };

  it('adds nothing when no extra is configured', async () => {
    const text = await buildRegistry(snapshot, { up: true, durationSeconds: 0.1 }).metrics();
    expect(text).not.toMatch(/xyn_workers_alive|xyn_blueprint_/);
  });

  it('renders the three extra metrics under the names the alerts expect', async () => {
    const text = await buildRegistry(
      {
        ...snapshot,
        workersAlive: 4,
        blueprints: {
          counts: [{ blueprint: 'build', queued: 6, running: 0 }],
          durations: [{ blueprint: 'build', finished: 2, quantiles: { '0.5': 1, '0.9': 2, '0.99': 3 } }],
        },
      },
      { up: true, durationSeconds: 0.1 },
    ).metrics();
    expect(METRICS.workersAlive.name).toBe('xyn_workers_alive');
    expect(METRICS.blueprintRunCount.name).toBe('xyn_blueprint_run_count');
    expect(METRICS.blueprintDuration.name).toBe('xyn_blueprint_duration_seconds');
    expect(text).toContain('# TYPE xyn_workers_alive gauge\nxyn_workers_alive 4\n');
    expect(text).toContain('xyn_blueprint_run_count{blueprint="build",status="QUEUED"} 6\n');
    expect(text).toContain('xyn_blueprint_run_count{blueprint="build",status="RUNNING"} 0\n');
    expect(text).toContain('xyn_blueprint_duration_seconds{blueprint="build",quantile="0.5"} 1\n');
    expect(text).toContain('xyn_blueprint_duration_seconds{blueprint="build",quantile="0.9"} 2\n');
    expect(text).toContain('xyn_blueprint_duration_seconds{blueprint="build",quantile="0.99"} 3\n');
  });

  it('renders the flow figures under their contract names, the wait quantiles only when a run started', async () => {
    const flow = { windowSeconds: 300, finished: [{ status: 'FAILED', count: 2 }, { status: 'SUCCEEDED', count: 8 }], started: 11, waitSeconds: { '0.5': 1, '0.9': 2.5, '0.99': 7 } };
    const text = await buildRegistry({ ...snapshot, flow }, { up: true, durationSeconds: 0.1 }).metrics();
    expect(text).toContain('xyn_flow_window_seconds 300\n');
    expect(text).toContain('xyn_runs_finished_in_window{status="FAILED"} 2\n');
    expect(text).toContain('xyn_runs_finished_in_window{status="SUCCEEDED"} 8\n');
    expect(text).toContain('xyn_runs_started_in_window 11\n');
    expect(text).toContain('xyn_queue_wait_seconds{quantile="0.5"} 1\n');
    expect(text).toContain('xyn_queue_wait_seconds{quantile="0.9"} 2.5\n');
    expect(text).toContain('xyn_queue_wait_seconds{quantile="0.99"} 7\n');
    const idle = await buildRegistry({ ...snapshot, flow: { windowSeconds: 300, started: 0 } }, { up: true, durationSeconds: 0.1 }).metrics();
    expect(idle).toContain('xyn_runs_started_in_window 0\n');
    expect(idle).not.toMatch(/^(xyn_queue_wait_seconds|xyn_runs_finished_in_window)/m);
    expect(await buildRegistry(snapshot, { up: true, durationSeconds: 0.1 }).metrics()).not.toMatch(/^# TYPE (xyn_flow_|xyn_runs_|xyn_queue_wait)/m);
  });

  it('drops every extra with the queue figures when the database could not be read', async () => {
    const text = await buildRegistry(undefined, { up: false, durationSeconds: 0.1 }).metrics();
    expect(text).not.toMatch(/xyn_workers_alive|xyn_blueprint_/);
  });
});

describe('bearer token check', () => {
  const token = 'a-long-enough-token-1234';
  it('takes the token from an Authorization: Bearer header, any case', () => {
    expect(bearerToken({ authorization: `Bearer ${token}` })).toBe(token);
    expect(bearerToken({ Authorization: `bearer  ${token} ` })).toBe(token);
    expect(bearerToken({ authorization: `Basic ${token}` })).toBeUndefined();
    expect(bearerToken({ authorization: token })).toBeUndefined();
    expect(bearerToken({})).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });
  it('matches only the exact token', () => {
    expect(tokenMatches(token, token)).toBe(true);
    expect(tokenMatches(`${token}x`, token)).toBe(false);
    expect(tokenMatches(token.slice(0, -1), token)).toBe(false);
    expect(tokenMatches('', token)).toBe(false);
    expect(tokenMatches(undefined, token)).toBe(false);
  });
});
