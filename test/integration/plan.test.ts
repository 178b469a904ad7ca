/**
 * The collector's statement on a table of a few hundred thousand runs: after
 * ANALYZE alone (a fresh table, visibility map not yet set) and after VACUUM
 * (what autovacuum keeps a live table at), its plan never scans `runs`
 * sequentially, and its counts equal a brute-force reference — exact mode and
 * estimate mode alike.
 */

import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTableName } from '../../lib/config/identifiers';
import { ensureDataset, type DatasetSpec } from '../../scripts/bench/data';
import { runsSchemaSql } from '../../scripts/support/runs-schema';
import {
  checkExactness,
  estimateAllowance,
  explainCollector,
  planNodes,
  seqScansOn,
  snapshotDifferences,
  type PlanNode,
} from '../../scripts/bench/db';
import { seedQueries } from '../../scripts/bench/seed';
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
