/**
 * What the extras cost (docs/extras.md): the database time of each SELECT in
 * the tick's batch on a production-shaped table, with and without the index
 * on the finish column, and the whole tick through the real Neon driver and
 * the bridge with the extras off and on.
 *
 *   npx tsx scripts/bench/extras.ts            # 1,000,000 finished runs
 *   BENCH_HISTORY=200000 npx tsx scripts/bench/extras.ts
 *
 * Uses TEST_DATABASE_URL (default postgres@127.0.0.1:5432); works in a schema
 * of its own and drops it at the end.
 */

import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { startBridge } from '../bridge/bridge';
import { parseConfig } from '../../lib/config/parse';
import type { Env } from '../../lib/config/read';
import { deadlineIn } from '../../lib/core/deadline';
import { blueprintSql, flowSql, queueSnapshotSql, workersAliveSql } from '../../lib/source/sql';
import { runTick } from '../../lib/runtime/tick';
import { runsSchemaSql } from '../support/runs-schema';

const ADMIN_URL = process.env.TEST_DATABASE_URL ?? 'postgresql://postgres:postgres@127.0.0.1:5432/postgres';
const HISTORY = Number(process.env.BENCH_HISTORY ?? 1_000_000);
const BLUEPRINTS = 200;
const WORKERS = 50;
const REPEAT = 15;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const ms = (n: number) => `${n.toFixed(n < 10 ? 2 : 1)} ms`;

async function main(): Promise<void> {
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  const schema = `bench_extras_${randomBytes(4).toString('hex')}`;
  const table = `"${schema}"."runs"`;
  const heartbeats = `"${schema}"."worker_heartbeats"`;
  try {
    process.stderr.write(`building ${schema}: ${HISTORY} finished runs, ${BLUEPRINTS} blueprints, ${WORKERS} workers...\n`);
    await admin.query(runsSchemaSql(schema));
    // History: finished over the last 30 days, blueprint popularity skewed (a few dominate).
    await admin.query(`
      INSERT INTO ${table} (blueprint, status, queued_at, started_at, finished_at)
      SELECT 'bp_' || floor(${BLUEPRINTS} * power(random(), 3))::int,
             (ARRAY['SUCCEEDED','SUCCEEDED','SUCCEEDED','FAILED','CANCELLED'])[1 + floor(random() * 5)::int]::"${schema}".run_status,
             f - interval '10 minutes', f - random() * interval '10 minutes', f
      FROM (SELECT now() - random() * interval '30 days' AS f FROM generate_series(1, ${HISTORY})) s`);
    await admin.query(`
      INSERT INTO ${table} (blueprint, status, run_at, queued_at, lease_expires_at, started_at)
      SELECT 'bp_' || floor(${BLUEPRINTS} * power(random(), 3))::int,
             CASE WHEN g % 5 = 0 THEN 'RUNNING' ELSE 'QUEUED' END::"${schema}".run_status,
             now() + (random() - 0.8) * interval '1 hour', now() - random() * interval '1 hour',
             CASE WHEN g % 5 = 0 THEN now() + interval '1 minute' END, CASE WHEN g % 5 = 0 THEN now() END
      FROM generate_series(1, 2500) g`);
    // An append-only heartbeat log: every worker every 10 s for a day.
    await admin.query(`CREATE TABLE ${heartbeats} (worker_id text NOT NULL, heartbeat_at timestamptz NOT NULL)`);
    await admin.query(`
      INSERT INTO ${heartbeats}
      SELECT 'worker-' || w, now() - s * interval '10 seconds'
      FROM generate_series(1, ${WORKERS}) w, generate_series(0, 8639) s`);
    await admin.query(`CREATE INDEX ix_heartbeat_at ON ${heartbeats} (heartbeat_at)`);
    await admin.query(`ANALYZE ${table}; ANALYZE ${heartbeats}`);
    const sizes = (await admin.query(`SELECT (SELECT count(*) FROM ${table}) AS runs, (SELECT count(*) FROM ${heartbeats}) AS heartbeats`)).rows[0];

    // Terminal counts from planner statistics, so the base tick's own cost does not drown the extras'.
    const env: Env = {
      DATABASE_URL: ADMIN_URL,
      PUSH_DRY_RUN: 'true',
      RUNS_TABLE: `${schema}.runs`,
      STATUS_ESTIMATE_ABOVE: '100000',
    };
    const extrasEnv: Env = {
      ...env,
      HEARTBEAT_TABLE: `${schema}.worker_heartbeats`,
      HEARTBEAT_TTL_SECONDS: '60',
      BLUEPRINT_COLUMN: 'blueprint',
      RUN_STARTED_COLUMN: 'started_at',
      RUN_FINISHED_COLUMN: 'finished_at',
    };
    const config = parseConfig(extrasEnv, { requireSink: false });

    const selects: [string, string][] = [
      ['queue snapshot (the base tick), exact terminal counts', queueSnapshotSql({ table: config.database.runsTable, estimateAbove: undefined })],
      ['queue snapshot, STATUS_ESTIMATE_ABOVE=100000', queueSnapshotSql({ table: config.database.runsTable, estimateAbove: 100_000 })],
      ['workers alive (TTL 60 s)', workersAliveSql(config.extras.heartbeat!)],
      ['blueprints (K 20, window 3600 s)', blueprintSql(config.database.runsTable, config.extras.blueprints!)],
      ['flow (window 300 s)', flowSql(config.database.runsTable, config.extras.flow!)],
    ];

    /** Wall time of the SELECT itself on a local connection (EXPLAIN ANALYZE's per-row timing would inflate it); the plan from EXPLAIN. */
    async function timeSelect(sql: string): Promise<{ ms: number; plan: string }> {
      const times: number[] = [];
      await admin.query(sql); // warm the cache: a tick every minute keeps these pages hot
      for (let i = 0; i < REPEAT; i++) {
        const started = process.hrtime.bigint();
        await admin.query(sql);
        times.push(Number(process.hrtime.bigint() - started) / 1e6);
      }
      const plan = JSON.stringify((await admin.query(`EXPLAIN (FORMAT JSON) ${sql}`)).rows[0]['QUERY PLAN'][0].Plan);
      return { ms: median(times), plan };
    }

    const lines: string[] = [];
    lines.push(`Table: ${sizes.runs} runs (${HISTORY} finished over 30 days, 2500 active, ${BLUEPRINTS} blueprints); ${sizes.heartbeats} heartbeat rows (${WORKERS} workers every 10 s for a day).`);
    lines.push('', '| SELECT | time (median of ' + REPEAT + ', local connection) | indexes in the plan |', '|---|---|---|');
    for (const [name, sql] of selects) {
      const { ms: t, plan } = await timeSelect(sql);
      const indexes = [...new Set([...plan.matchAll(/"Index Name":"([^"]+)"/g)].map((m) => m[1]))].join(', ') || 'none (sequential scan)';
      lines.push(`| ${name} | ${ms(t)} | ${indexes} |`);
    }
    await admin.query(`DROP INDEX "${schema}".ix_runs_finished_at`);
    const { ms: noIndex, plan: noIndexPlan } = await timeSelect(selects[3]![1]);
    const scans = /"Node Type":"Seq Scan"/.test(noIndexPlan) ? 'sequential scan of runs' : 'no sequential scan';
    lines.push(`| blueprints, without ix_runs_finished_at | ${ms(noIndex)} | ${scans} |`);
    await admin.query(`CREATE INDEX ix_runs_finished_at ON ${table} (finished_at)`);

    // Whole ticks through the real driver and the bridge, extras off and on.
    const bridge = await startBridge();
    const tickMs = async (e: Env) => {
      const c = parseConfig({ ...e, DATABASE_WS_PROXY: bridge.proxy }, { requireSink: false });
      const times: number[] = [];
      const db: number[] = [];
      for (let i = 0; i < REPEAT; i++) {
        const r = await runTick(c, { deadline: deadlineIn(20_000), log: () => {} });
        times.push(r.durationMs);
        db.push(r.dbMs);
      }
      return { total: median(times), db: median(db) };
    };
    const off = await tickMs(env);
    const on = await tickMs(extrasEnv);
    await bridge.close();
    lines.push('', `| whole tick (Neon driver + local bridge, dry run, STATUS_ESTIMATE_ABOVE=100000), median of ${REPEAT} | duration | of which database |`, '|---|---|---|');
    lines.push(`| extras off | ${ms(off.total)} | ${ms(off.db)} |`);
    lines.push(`| heartbeat + blueprints on | ${ms(on.total)} | ${ms(on.db)} |`);
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench-extras: ${(error as Error).message}\n`);
  process.exit(1);
});
