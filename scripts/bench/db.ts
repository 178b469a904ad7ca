/**
 * Database time per tick, measured on the server, and the exactness check.
 *
 * Time is taken from EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON): planning time
 * plus execution time as the server reports them, so neither the network nor
 * the driver is in the figure. TIMING OFF keeps the per-row clock calls out of
 * the run (they would inflate row-heavy plans such as the seed's scans).
 * pg_stat_statements would do as well but needs shared_preload_libraries, i.e.
 * a server restart, so the benchmark does not depend on it.
 *
 * The collector's statement is explained inside the very batch the tick sends
 * (snapshotBatch: same transaction mode and SET LOCALs), so the figure is
 * for what production runs.
 */

import type pg from 'pg';
import { parseTableName } from '../../lib/config/identifiers';
import type { TableName } from '../../lib/config/types';
import { flowSql, queueSnapshotSql, snapshotBatch } from '../../lib/source/sql';
import type { FlowConfig } from '../../lib/config/types';
import { toFlowSnapshot } from '../../lib/source/flow';
import { toQueueSnapshot, type QueueSnapshot } from '../../lib/source/snapshot';
import { seedQueries } from './seed';

export interface ServerTime {
  /** Planning + execution, ms. */
  totalMs: number;
  planningMs: number;
  executionMs: number;
  /** The JSON plan (the top "Plan" node). */
  plan: PlanNode;
}

export interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  Alias?: string;
  Plans?: PlanNode[];
  [key: string]: unknown;
}

const BATCH = { budgetMs: 600_000, lockTimeoutMs: 2_000 };

type Explained = [{ Plan: PlanNode; 'Planning Time'?: number; 'Execution Time'?: number }];

function explainRows(results: pg.QueryResult | pg.QueryResult[]): Explained {
  const list = Array.isArray(results) ? results : [results];
  const explain = list.find((r) => r.command === 'EXPLAIN');
  const value = explain?.rows[0]?.['QUERY PLAN'] as Explained | string | undefined;
  if (value === undefined) throw new Error('EXPLAIN returned nothing');
  return typeof value === 'string' ? (JSON.parse(value) as Explained) : value;
}

function serverTime(explained: Explained): ServerTime {
  const [top] = explained;
  const planningMs = top['Planning Time'] ?? 0;
  const executionMs = top['Execution Time'] ?? 0;
  return { totalMs: planningMs + executionMs, planningMs, executionMs, plan: top.Plan };
}

export function collectorSql(table: TableName, estimateAbove: number | undefined): string {
  return queueSnapshotSql({ table, estimateAbove });
}

/** EXPLAIN of the collector's statement (optionally without ANALYZE), inside the tick's batch. */
export async function explainCollector(
  client: pg.Client,
  table: string | TableName,
  estimateAbove: number | undefined,
  analyze = true,
): Promise<ServerTime> {
  const name = typeof table === 'string' ? parseTableName(table) : table;
  const options = analyze ? 'ANALYZE, TIMING OFF, FORMAT JSON' : 'FORMAT JSON';
  const batch = snapshotBatch([`EXPLAIN (${options}) ${collectorSql(name, estimateAbove)}`], BATCH).sql;
  return serverTime(explainRows(await client.query(batch)));
}

/** EXPLAIN ANALYZE of a degraded tick's re-read: the alerting figures alone, no history part. */
export async function explainAlerting(client: pg.Client, table: string): Promise<ServerTime> {
  const sql = queueSnapshotSql({ table: parseTableName(table), estimateAbove: undefined, history: false });
  return serverTime(explainRows(await client.query(snapshotBatch([`EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) ${sql}`], BATCH).sql)));
}

/** The flow extra as the bench and the plan test read it: both columns of the seed schema, the default window. */
export function benchFlow(windowSeconds = 300): FlowConfig {
  return { startedColumn: { name: 'started_at', sql: '"started_at"' }, finishedColumn: { name: 'finished_at', sql: '"finished_at"' }, windowSeconds };
}

/** EXPLAIN (optionally without ANALYZE) of the flow SELECT, inside the tick's batch. */
export async function explainFlow(client: pg.Client, table: string, flow: FlowConfig = benchFlow(), analyze = true): Promise<ServerTime> {
  const options = analyze ? 'ANALYZE, TIMING OFF, FORMAT JSON' : 'FORMAT JSON';
  const sql = flowSql(parseTableName(table), flow);
  return serverTime(explainRows(await client.query(snapshotBatch([`EXPLAIN (${options}) ${sql}`], BATCH).sql)));
}

/** EXPLAIN ANALYZE of each of the seed's four queries, each on its own as the seed sends them. */
export async function explainSeed(client: pg.Client, table: string): Promise<{ totalMs: number; perQueryMs: number[] }> {
  const perQueryMs: number[] = [];
  for (const sql of seedQueries(parseTableName(table))) {
    perQueryMs.push(serverTime(explainRows(await client.query(`EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) ${sql}`))).totalMs);
  }
  return { totalMs: perQueryMs.reduce((a, b) => a + b, 0), perQueryMs };
}

/** EXPLAIN ANALYZE of the statement that gives a SELECT its share of the budget (one before each SELECT of the batch). */
export async function explainBudgetStatement(client: pg.Client): Promise<ServerTime> {
  const batch = snapshotBatch(['SELECT 1'], BATCH);
  const budget = batch.sql.split(';\n')[batch.selectAt[0]! - 1]!;
  return serverTime(explainRows(await client.query(snapshotBatch([`EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) ${budget}`], BATCH).sql)));
}

/** Runs started and finished within the last `windowSeconds` (what the flow SELECT reads). */
export async function flowRows(client: pg.Client, table: string, windowSeconds: number): Promise<{ started: number; finished: number }> {
  const t = parseTableName(table).sql;
  const since = `now() - interval '${windowSeconds} seconds'`;
  const { rows } = await client.query<{ started: string; finished: string }>(
    `SELECT (SELECT count(*) FROM ${t} WHERE started_at > ${since} AND started_at <= now()) AS started,
            (SELECT count(*) FROM ${t} WHERE finished_at > ${since} AND finished_at <= now()) AS finished`,
  );
  return { started: Number(rows[0]!.started), finished: Number(rows[0]!.finished) };
}

/**
 * Where the flow SELECT's figures differ from a brute force over the whole
 * table (index scans off, due computed without greatest()), in one snapshot.
 */
export async function checkFlow(client: pg.Client, table: string, flow: FlowConfig = benchFlow()): Promise<string[]> {
  const name = parseTableName(table);
  const t = name.sql;
  const since = `now() - interval '${flow.windowSeconds} seconds'`;
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    const collected = toFlowSnapshot((await client.query(flowSql(name, flow))).rows[0] as Record<string, unknown>, flow, ALL_STATUSES);
    await client.query('SET LOCAL enable_indexscan = off; SET LOCAL enable_indexonlyscan = off; SET LOCAL enable_bitmapscan = off');
    const finished = await client.query<{ status: string; n: string }>(
      `SELECT status::text AS status, count(*) AS n FROM ${t} WHERE finished_at > ${since} AND finished_at <= now() AND status::text NOT IN ('QUEUED', 'RUNNING') GROUP BY 1`,
    );
    const [started] = (
      await client.query<{ n: string; p50: number | null; p90: number | null; p99: number | null }>(`
        SELECT count(*) AS n, percentile_cont(0.5) WITHIN GROUP (ORDER BY w) AS p50,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY w) AS p90, percentile_cont(0.99) WITHIN GROUP (ORDER BY w) AS p99
        FROM (SELECT CASE WHEN queued_at IS NULL AND run_at IS NULL THEN NULL
                          ELSE greatest(0, extract(epoch FROM started_at - CASE WHEN run_at IS NULL OR queued_at > run_at THEN queued_at ELSE run_at END)) END AS w
              FROM ${t} WHERE started_at > ${since} AND started_at <= now()) s`)
    ).rows;
    const out: string[] = [];
    const truth = new Map(finished.rows.map((r) => [r.status, Number(r.n)]));
    for (const f of collected.finished ?? []) if (f.count !== (truth.get(f.status) ?? 0)) out.push(`finished ${f.status}: ${f.count} != ${truth.get(f.status) ?? 0}`);
    if (collected.started !== Number(started!.n)) out.push(`started: ${collected.started} != ${started!.n}`);
    for (const [q, value] of [['0.5', started!.p50], ['0.9', started!.p90], ['0.99', started!.p99]] as const) {
      const got = collected.waitSeconds?.[q];
      if (value === null ? got !== undefined : got === undefined || Math.abs(got - value) > 1e-6) out.push(`wait p${q}: ${got} != ${value}`);
    }
    return out;
  } finally {
    await client.query('COMMIT');
  }
}

/** Every plan node, depth first. */
export function planNodes(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(planNodes)];
}

/** Sequential scans (plain or parallel) of `relation` anywhere in the plan. */
export function seqScansOn(plan: PlanNode, relation: string): PlanNode[] {
  return planNodes(plan).filter((n) => /Seq Scan/.test(n['Node Type']) && n['Relation Name'] === relation);
}

/** The collector's snapshot and the brute-force reference, read in one snapshot with one now(). */
export interface ExactnessCheck {
  collector: QueueSnapshot;
  reference: QueueSnapshot;
}

/**
 * The obvious, unoptimised answer: every figure from whole-table aggregates
 * with index use switched off, so it shares no plan shape with the collector.
 */
export function referenceSql(table: TableName): string {
  const t = table.sql;
  return `
SELECT
  extract(epoch FROM now())::float8 AS db_now_seconds,
  count(*) FILTER (WHERE status = 'QUEUED') AS queued,
  count(*) FILTER (WHERE status = 'QUEUED' AND (run_at <= now() OR run_at IS NULL)) AS ready,
  count(*) FILTER (WHERE status = 'QUEUED' AND run_at > now()) AS future,
  greatest(0, coalesce(extract(epoch FROM now() - min(queued_at) FILTER (
    WHERE status = 'QUEUED' AND (run_at <= now() OR run_at IS NULL))), 0))::float8 AS oldest_ready_seconds,
  greatest(0, coalesce(extract(epoch FROM now() - min(CASE WHEN run_at IS NULL OR queued_at > run_at THEN queued_at ELSE run_at END) FILTER (
    WHERE status = 'QUEUED' AND (run_at <= now() OR run_at IS NULL))), 0))::float8 AS oldest_due_seconds,
  count(*) FILTER (WHERE status = 'RUNNING') AS running,
  count(*) FILTER (WHERE status = 'RUNNING' AND lease_expires_at < now()) AS expired_leases,
  count(*) FILTER (WHERE status = 'RUNNING' AND lease_expires_at >= now()) AS active_leases,
  count(*) FILTER (WHERE status = 'RUNNING' AND lease_expires_at IS NULL) AS running_without_lease,
  (SELECT coalesce(json_agg(json_build_object('status', s, 'count', n, 'estimated', false) ORDER BY s), '[]')
     FROM (SELECT status::text AS s, count(*) AS n FROM ${t}
           WHERE status::text NOT IN ('QUEUED', 'RUNNING') GROUP BY status) g) AS terminal_statuses,
  (SELECT coalesce(json_agg(e.enumlabel ORDER BY e.enumsortorder), '[]')
     FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_enum e ON e.enumtypid = a.atttypid
     WHERE a.attrelid = '${t.replace(/'/g, "''")}'::regclass AND a.attname = 'status') AS enum_labels
FROM ${t}`;
}

/** Largest relative error among the estimated statuses (0 when none is estimated). */
export function largestEstimateError(actual: QueueSnapshot, reference: QueueSnapshot): { status: string; error: number } | undefined {
  const ref = new Map(reference.statuses.map((s) => [s.status, s.count]));
  let worst: { status: string; error: number } | undefined;
  for (const s of actual.statuses.filter((x) => x.estimated)) {
    const truth = ref.get(s.status) ?? 0;
    const error = truth === 0 ? Infinity : Math.abs(s.count - truth) / truth;
    if (!worst || error > worst.error) worst = { status: s.status, error };
  }
  return worst;
}

/** The bench's tables hold five statuses; no cap applies when they are compared. */
const ALL_STATUSES = 200;

/** Run the collector's statement and the reference in one REPEATABLE READ transaction. */
export async function checkExactness(
  client: pg.Client,
  table: string,
  estimateAbove: number | undefined,
): Promise<ExactnessCheck> {
  const name = parseTableName(table);
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    const collector = toQueueSnapshot((await client.query(collectorSql(name, estimateAbove))).rows[0] as Record<string, unknown>, ALL_STATUSES);
    await client.query('SET LOCAL enable_indexscan = off; SET LOCAL enable_indexonlyscan = off; SET LOCAL enable_bitmapscan = off');
    const reference = toQueueSnapshot((await client.query(referenceSql(name))).rows[0] as Record<string, unknown>, ALL_STATUSES);
    return { collector, reference };
  } finally {
    await client.query('COMMIT');
  }
}

/**
 * How far a planner estimate may be from the truth: ANALYZE samples a fixed
 * 300 x statistics target rows (30,000 by default) whatever the table's size,
 * so a status's share is known to about ±sqrt(p(1-p)/30000) <= ±0.3% of the
 * table. 1% of the table's rows is more than three standard errors for any
 * status share.
 */
export function estimateAllowance(tableRows: number): number {
  return Math.ceil(tableRows * 0.01);
}

/**
 * Where two snapshots differ. Estimated statuses may be off by `allowance`
 * runs (see estimateAllowance); everything else must be equal.
 */
export function snapshotDifferences(actual: QueueSnapshot, reference: QueueSnapshot, allowance = 0): string[] {
  const out: string[] = [];
  for (const key of ['dbNowSeconds', 'ready', 'future', 'oldestReadySeconds', 'oldestDueSeconds', 'expiredLeases', 'activeLeases', 'runningWithoutLease'] as const) {
    if (actual[key] !== reference[key]) out.push(`${key}: ${actual[key]} != ${reference[key]}`);
  }
  const ref = new Map(reference.statuses.map((s) => [s.status, s.count]));
  if (actual.statuses.length !== reference.statuses.length) {
    out.push(`statuses: ${actual.statuses.map((s) => s.status)} != ${[...ref.keys()]}`);
  }
  for (const s of actual.statuses) {
    const expected = ref.get(s.status);
    if (expected === undefined) out.push(`status ${s.status} not in the reference`);
    else if (s.estimated ? Math.abs(s.count - expected) > allowance : s.count !== expected) {
      out.push(`${s.status}: ${s.count}${s.estimated ? ' (estimated)' : ''} != ${expected}`);
    }
  }
  return out;
}
