/**
 * The collector's statement on a table of a few hundred thousand runs: after
 * ANALYZE alone (a fresh table, visibility map not yet set) and after VACUUM
 * (what autovacuum keeps a live table at), its plan never scans `runs`
 * sequentially, and its counts equal a brute-force reference — exact mode and
 * estimate mode alike. The flow SELECT likewise: a range on the index of each
 * time column, never a sequential scan, and figures equal to a brute force.
 */

import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTableName } from '../../lib/config/identifiers';
import { ensureDataset, type DatasetSpec } from '../../scripts/bench/data';
import { runsSchemaSql } from '../../scripts/support/runs-schema';
import {
  benchFlow,
  checkExactness,
  estimateAllowance,
  explainCollector,
  explainFlow,
  planNodes,
  seqScansOn,
  snapshotDifferences,
  type PlanNode,
} from '../../scripts/bench/db';
import { seedQueries } from '../../scripts/bench/seed';
import { toFlowSnapshot } from '../../lib/source/flow';
import { flowSql } from '../../lib/source/sql';
import { adminClient } from '../support/postgres';

const ROWS = 300_000;
const spec: DatasetSpec = {
  rows: ROWS,
  queued: ROWS / 100,
  running: ROWS / 1000,
  schema: `plan_${randomBytes(5).toString('hex')}`,
  label: 'plan-test',
  shape: 'newest',
};
const table = `${spec.schema}.runs`;
let client: pg.Client;

beforeAll(async () => {
  client = await adminClient();
  await ensureDataset(client, spec, { rebuild: true, vacuum: false });
  // The table stays as each test leaves it: autovacuum must not step in.
  await client.query(`ALTER TABLE ${table} SET (autovacuum_enabled = false)`);
});
afterAll(async () => {
  await client?.query(`DROP SCHEMA IF EXISTS "${spec.schema}" CASCADE`).catch(() => {});
  await client?.end();
});

function describePlan(plan: PlanNode): string {
  return planNodes(plan)
    .map((n) => `${n['Node Type']}${n['Relation Name'] ? ` on ${n['Relation Name']}` : ''}${n['Index Name'] ? ` using ${n['Index Name']}` : ''}`)
    .join('\n');
}

describe(`the collector's statement on ${ROWS.toLocaleString('en-US')} runs`, () => {
  it('the table is what the test means: the right size, analyzed, with the seed indexes', async () => {
    const [stats] = await client.query<{ n: string; reltuples: number; indexes: string[] }>(
      `SELECT (SELECT count(*) FROM ${table}) AS n, c.reltuples,
              (SELECT array_agg(indexname::text ORDER BY indexname) FROM pg_indexes WHERE schemaname = $1 AND tablename = 'runs') AS indexes
       FROM pg_class c WHERE c.oid = '${table}'::regclass`,
      [spec.schema],
    ).then((r) => r.rows);
    expect(Number(stats!.n)).toBe(ROWS);
    expect(stats!.reltuples).toBeGreaterThan(ROWS * 0.9);
    // The seed's four indexes (and whatever runs-schema.ts declares besides), nothing else.
    const declared = [...runsSchemaSql(spec.schema).matchAll(/CREATE INDEX IF NOT EXISTS (\w+)/g)].map((m) => m[1]);
    expect(declared).toEqual(expect.arrayContaining(['ix_runs_status', 'ix_runs_run_at', 'ix_runs_queued_at', 'ix_runs_lease_expires_at']));
    expect(stats!.indexes).toEqual([...declared, 'runs_pkey'].sort());
  });

  it('the plan walker finds a sequential scan where there is one (the seed\'s ready/future query)', async () => {
    const [, readyFuture] = seedQueries(parseTableName(table));
    const { rows } = await client.query(`EXPLAIN (FORMAT JSON) ${readyFuture}`);
    const plan = (rows[0]['QUERY PLAN'] as [{ Plan: PlanNode }])[0].Plan;
    expect(seqScansOn(plan, 'runs').length, describePlan(plan)).toBeGreaterThan(0);
  });

  const modes = [
    ['exact', undefined],
    ['estimate mode (STATUS_ESTIMATE_ABOVE=100000)', 100_000],
  ] as const;

  async function expectNoSeqScan(estimateAbove: number | undefined) {
    for (const analyze of [false, true]) {
      const { plan } = await explainCollector(client, table, estimateAbove, analyze);
      const nodes = planNodes(plan);
      expect(seqScansOn(plan, 'runs'), describePlan(plan)).toEqual([]);
      // The statement does read runs, through ix_runs_status.
      expect(nodes.some((n) => n['Relation Name'] === 'runs' && n['Index Name'] === 'ix_runs_status'), describePlan(plan)).toBe(true);
    }
  }

  /** The flow SELECT reads runs only by a range on ix_runs_finished_at and ix_runs_started_at. */
  async function expectFlowByIndex(windowSeconds: number) {
    for (const analyze of [false, true]) {
      const { plan } = await explainFlow(client, table, benchFlow(windowSeconds), analyze);
      const nodes = planNodes(plan);
      expect(seqScansOn(plan, 'runs'), describePlan(plan)).toEqual([]);
      const onRuns = nodes.filter((n) => n['Relation Name'] === 'runs');
      expect(onRuns.map((n) => n['Index Name']).sort(), describePlan(plan)).toEqual(['ix_runs_finished_at', 'ix_runs_started_at']);
      for (const node of onRuns) expect(JSON.stringify(node['Index Cond']), describePlan(plan)).toMatch(/> \(now\(\) - /);
    }
  }

  it('after ANALYZE alone: the flow SELECT is an index range on each time column, at the default window and at a day', async () => {
    await expectFlowByIndex(300);
    await expectFlowByIndex(86_400);
  });

  for (const [mode, estimateAbove] of modes) {
    it(`after ANALYZE alone (no visibility map yet), ${mode}: no sequential scan on runs, in the plan or as executed`, async () => {
      const [{ relallvisible }] = (await client.query(`SELECT relallvisible FROM pg_class WHERE oid = '${table}'::regclass`)).rows;
      expect(relallvisible).toBe(0);
      await expectNoSeqScan(estimateAbove);
    });
  }

  it('VACUUM (sets the visibility map, unless a concurrent transaction holds the xmin horizon back)', async () => {
    await client.query(`VACUUM ${table}`);
    const [{ n }] = (await client.query(`SELECT count(*)::int AS n FROM ${table}`)).rows;
    expect(n).toBe(ROWS);
  });

  it('after VACUUM: the flow SELECT is still an index range on each time column, and equals a brute force over a day', async () => {
    await expectFlowByIndex(300);
    const flow = benchFlow(86_400);
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    try {
      const row = (await client.query(flowSql(parseTableName(table), flow))).rows[0] as Record<string, unknown>;
      const collected = toFlowSnapshot(row, flow, 200);
      await client.query('SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_indexonlyscan = off');
      const finished = await client.query<{ status: string; n: string }>(
        `SELECT status::text AS status, count(*) AS n FROM ${table} WHERE finished_at > now() - interval '1 day' AND finished_at <= now() AND status::text NOT IN ('QUEUED', 'RUNNING') GROUP BY 1`,
      );
      const [started] = (await client.query<{ n: string; p50: number; p90: number; p99: number }>(`
        SELECT count(*) AS n,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY w) AS p50, percentile_cont(0.9) WITHIN GROUP (ORDER BY w) AS p90, percentile_cont(0.99) WITHIN GROUP (ORDER BY w) AS p99
        FROM (SELECT CASE WHEN queued_at IS NULL AND run_at IS NULL THEN NULL
                          ELSE greatest(0, extract(epoch FROM started_at - CASE WHEN run_at IS NULL OR queued_at > run_at THEN queued_at ELSE run_at END)) END AS w
              FROM ${table} WHERE started_at > now() - interval '1 day' AND started_at <= now()) s`)).rows;
      const truth = Object.fromEntries(finished.rows.map((r) => [r.status, Number(r.n)]));
      expect(Object.values(truth).reduce((a, b) => a + b, 0)).toBeGreaterThan(100);
      expect(Object.fromEntries(collected.finished!.filter((f) => f.count > 0).map((f) => [f.status, f.count]))).toEqual(truth);
      expect(collected.started).toBe(Number(started!.n));
      expect(collected.waitSeconds!['0.5']).toBeCloseTo(started!.p50, 6);
      expect(collected.waitSeconds!['0.9']).toBeCloseTo(started!.p90, 6);
      expect(collected.waitSeconds!['0.99']).toBeCloseTo(started!.p99, 6);
    } finally {
      await client.query('COMMIT');
    }
  });

  for (const [mode, estimateAbove] of modes) {
    it(`after VACUUM, ${mode}: no sequential scan on runs, in the plan or as executed`, async () => {
      await expectNoSeqScan(estimateAbove);
    });

    it(`${mode}: counts equal a brute-force reference`, async () => {
      const { collector, reference } = await checkExactness(client, table, estimateAbove);
      // A non-trivial table: every status present, a future and a ready queue, both lease kinds.
      expect(reference.statuses.every((s) => s.count > 0)).toBe(true);
      expect(reference.ready).toBeGreaterThan(0);
      expect(reference.future).toBeGreaterThan(0);
      expect(reference.expiredLeases).toBeGreaterThan(0);
      expect(reference.activeLeases).toBeGreaterThan(0);
      expect(snapshotDifferences(collector, reference, estimateAllowance(ROWS))).toEqual([]);
      const estimated = collector.statuses.filter((s) => s.estimated).map((s) => s.status);
      // ~88% of 300k SUCCEEDED is above 100000; FAILED (~9%) and CANCELLED (~3%) are not.
      expect(estimated).toEqual(estimateAbove === undefined ? [] : ['SUCCEEDED']);
    });
  }
});
