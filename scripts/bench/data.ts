/**
 * Benchmark data: a realistic `runs` table (the schema and indexes of
 * runs-schema.ts: the seed's four and any the project added) built server-side with generate_series, so a million rows
 * take seconds and nothing crosses the wire.
 *
 * Shape of a dataset:
 * - `rows` runs in all; rows are a few hundred bytes wide (a jsonb payload);
 * - an active queue of about `queued` QUEUED runs (a fifth of them scheduled in
 *   the future, a tenth with no run_at) and `running` RUNNING runs (a tenth of
 *   them with an expired lease);
 * - the rest terminal: about 88% SUCCEEDED, 9% FAILED, 3% CANCELLED.
 * Two shapes of where the active runs sit:
 * - `newest`: among the newest tenth-or-so of ids, i.e. near the physical tail
 *   of the heap, as they do in a table that is appended to and drained in order;
 * - `spread`: anywhere in the history (old stuck runs, retries re-queued in
 *   place), queued when their neighbours were, so the QUEUED rows are scattered
 *   over the whole heap and the oldest ready run is months old.
 * Future run_at and live leases are days ahead so a reused table keeps its
 * shape between runs; the newest terminal runs get fresh start and finish
 * times on every use (refreshFlowTimesSql).
 *
 * A dataset is tagged with a table comment that names its spec; a table whose
 * comment and row count match is reused as is (--rebuild forces a new build).
 */

import type pg from 'pg';
import { runsSchemaSql } from '../support/runs-schema';

export const GENERATOR_VERSION = 1;

export const SHAPES = ['newest', 'spread'] as const;
export type Shape = (typeof SHAPES)[number];

export function parseShape(raw: string): Shape {
  const shape = SHAPES.find((s) => s === raw.trim().toLowerCase());
  if (!shape) throw new Error(`not a data shape: "${raw}" (expected ${SHAPES.join(' or ')})`);
  return shape;
}

export interface DatasetSpec {
  /** Total runs in the table. */
  rows: number;
  /** Approximate QUEUED runs. */
  queued: number;
  /** Approximate RUNNING runs. */
  running: number;
  /** Schema that holds the `runs` table. */
  schema: string;
  /** Short label, e.g. 1m or 10m@100k (the size; the shape is separate). */
  label: string;
  /** Where the active runs sit in the history. */
  shape: Shape;
}

const SUFFIX: Record<string, number> = { '': 1, k: 1_000, m: 1_000_000 };

/** "100k", "1m", "2500000" -> a row count. */
export function parseCount(raw: string): number {
  const match = /^(\d+(?:\.\d+)?)([km]?)$/i.exec(raw.trim());
  if (!match) throw new Error(`not a size: "${raw}" (expected e.g. 100k, 1m, 10m)`);
  const n = Math.round(Number(match[1]) * SUFFIX[match[2]!.toLowerCase()]!);
  if (!Number.isSafeInteger(n) || n < 1_000) throw new Error(`size ${raw} is too small (at least 1k rows)`);
  return n;
}

export function countLabel(n: number): string {
  if (n % 1_000_000 === 0) return `${n / 1_000_000}m`;
  if (n % 1_000 === 0) return `${n / 1_000}k`;
  return String(n);
}

/**
 * A size spec: "1m" (active queue 1% QUEUED, 0.1% RUNNING of the table) or
 * "10m@100k" (10M runs whose active queue is the size of a 100k table's: the
 * history grew, the queue did not).
 */
export function parseSizeSpec(raw: string, schemaPrefix = 'bench', shape: Shape = 'newest'): DatasetSpec {
  const [total, queueOf, ...rest] = raw.trim().toLowerCase().split('@');
  if (total === undefined || rest.length > 0) throw new Error(`not a size spec: "${raw}"`);
  const rows = parseCount(total);
  const queueBase = queueOf === undefined ? rows : parseCount(queueOf);
  if (queueBase > rows) throw new Error(`size spec ${raw}: the queue cannot come from a bigger table`);
  const label = queueOf === undefined ? countLabel(rows) : `${countLabel(rows)}@${countLabel(queueBase)}`;
  return {
    rows,
    queued: Math.round(queueBase * 0.01),
    running: Math.round(queueBase * 0.001),
    schema: `${schemaPrefix}_${label.replace('@', '_q')}${shape === 'newest' ? '' : `_${shape}`}`,
    label,
    shape,
  };
}

function tag(spec: DatasetSpec): string {
  const shape = spec.shape === 'newest' ? '' : ` shape=${spec.shape}`;
  return `xyn-metrics bench v${GENERATOR_VERSION}: rows=${spec.rows} queued=${spec.queued} running=${spec.running}${shape}`;
}

/**
 * The INSERT that fills an empty runs table. Deterministic in shape, random in
 * detail (setseed makes it repeatable too).
 */
export function fillRunsSql(spec: DatasetSpec): string {
  const t = `"${spec.schema}"."runs"`;
  const active = spec.queued + spec.running;
  // The window of newest ids the active runs are drawn from: ten times their number, or the whole history.
  const window = spec.shape === 'spread' ? spec.rows : Math.min(spec.rows, Math.max(active * 10, 1));
  // Newest: queued in the last days. Spread: queued when their neighbours in the history were.
  const queuedAt = spec.shape === 'spread' ? 'g.queued_at' : "g.t0 - g.w * interval '6 hours' - interval '1 minute'";
  const pQueued = spec.queued / window;
  const pActive = active / window;
  const span = 365 * 86_400; // a year of history, seconds
  return `
SELECT setseed(0.4242);
INSERT INTO ${t} (id, blueprint, status, run_at, queued_at, lease_expires_at, worker_id, started_at, finished_at, payload)
SELECT g.i, g.blueprint, g.status,
  CASE g.status
    WHEN 'QUEUED' THEN CASE WHEN g.v < 0.2 THEN g.t0 + interval '1 day' + g.w * interval '30 days'
                            WHEN g.v < 0.3 THEN NULL
                            ELSE ${queuedAt} + interval '1 minute' END
    ELSE g.queued_at END,
  CASE g.status WHEN 'QUEUED' THEN ${queuedAt} ELSE g.queued_at END,
  CASE g.status
    WHEN 'QUEUED' THEN NULL
    WHEN 'RUNNING' THEN CASE WHEN g.v < 0.1 THEN g.t0 - g.w * interval '1 hour'
                             ELSE g.t0 + interval '1 day' + g.w * interval '30 days' END
    ELSE g.queued_at + interval '5 minutes' END,
  CASE WHEN g.status <> 'QUEUED' THEN 'worker-' || (i % 16) END,
  CASE WHEN g.status <> 'QUEUED' THEN g.queued_at + interval '2 seconds' END,
  CASE WHEN g.status NOT IN ('QUEUED', 'RUNNING') THEN g.queued_at + (2 + g.w * 600) * interval '1 second' END,
  jsonb_build_object(
    'blueprint', g.blueprint,
    'trigger', CASE WHEN i % 3 = 0 THEN 'schedule' ELSE 'webhook' END,
    'inputs', jsonb_build_object('repo', 'acme/service-' || (i % 500), 'ref', md5(i::text),
                                 'args', md5((i * 7)::text) || md5((i * 13)::text)),
    'trace_id', md5((i * 31)::text),
    'attempt', 1 + i % 3,
    'tags', jsonb_build_array('ci', 'nightly', 'team-' || (i % 12)))
FROM (
  SELECT s.i, s.t0, s.u, s.v, s.w,
    'bp_' || (s.i % 40) AS blueprint,
    s.t0 - (${spec.rows} - s.i) * interval '${span / spec.rows} seconds' AS queued_at,
    (CASE WHEN s.i > ${spec.rows - window} AND s.u < ${pQueued} THEN 'QUEUED'
          WHEN s.i > ${spec.rows - window} AND s.u < ${pActive} THEN 'RUNNING'
          WHEN s.v < 0.88 THEN 'SUCCEEDED'
          WHEN s.v < 0.97 THEN 'FAILED'
          ELSE 'CANCELLED' END)::"${spec.schema}".run_status AS status
  FROM (SELECT i, now() AS t0, random() AS u, random() AS v, random() AS w
        FROM generate_series(1, ${spec.rows}) AS i OFFSET 0) s
) g;
SELECT setval(pg_get_serial_sequence('${t}', 'id'), ${spec.rows});
COMMENT ON TABLE ${t} IS '${tag(spec)}';
`;
}

/**
 * The flow SELECT counts runs started and finished in the last minutes of the
 * database clock, and a reused table's times are those of the day it was
 * built. So on every use the newest terminal runs get fresh times: a steady
 * stream of FLOW_STREAM_PER_SECOND finishes (each started 20 s before it
 * finished, after a wait of 0-89 s) from an hour ago to FLOW_STREAM_AHEAD_SECONDS
 * ahead: the times ahead enter the window as the clock reaches them, so every
 * window up to an hour holds the same number of runs for as long as the
 * measurements take (the window ends at now(); a time ahead is not read).
 * Busier than the tables' own history (a year of 1M or 10M runs is 0.03 or
 * 0.3 a second), so the flow's cost is measured at a busy queue's window.
 */
export const FLOW_STREAM_PER_SECOND = 2;
export const FLOW_STREAM_AHEAD_SECONDS = 3_600;
export const FLOW_STREAM_SECONDS = 3_600 + FLOW_STREAM_AHEAD_SECONDS;

export function refreshFlowTimesSql(spec: DatasetSpec): string {
  const t = `"${spec.schema}"."runs"`;
  const n = FLOW_STREAM_PER_SECOND * FLOW_STREAM_SECONDS;
  return `
WITH recent AS (
  SELECT id, row_number() OVER (ORDER BY id DESC) AS k
  FROM (SELECT id FROM ${t} WHERE id > ${Math.max(0, spec.rows - 4 * n)} AND status::text NOT IN ('QUEUED', 'RUNNING') ORDER BY id DESC LIMIT ${n}) newest
),
times AS (
  SELECT id, k, now() + interval '${FLOW_STREAM_AHEAD_SECONDS} seconds' - (k::float8 / ${FLOW_STREAM_PER_SECOND}) * interval '1 second' AS finished FROM recent
)
UPDATE ${t} r
SET finished_at = t.finished,
    started_at = t.finished - interval '20 seconds',
    queued_at = t.finished - interval '20 seconds' - (t.k % 90) * interval '1 second',
    run_at = t.finished - interval '20 seconds' - (t.k % 90) * interval '1 second'
FROM times t WHERE r.id = t.id`;
}

export interface DatasetInfo {
  reused: boolean;
  buildSeconds: number;
  tableBytes: number;
  indexBytes: number;
  /** Average width of a heap row (table bytes / rows). */
  bytesPerRow: number;
  /**
   * Share of heap pages VACUUM marked all-visible (index-only scans skip the
   * heap only there). Below 1 when a concurrent transaction held the xmin horizon back.
   */
  allVisible: number;
  counts: Record<string, number>;
}

async function isBuilt(client: pg.Client, spec: DatasetSpec): Promise<boolean> {
  const { rows } = await client.query<{ comment: string | null }>(
    `SELECT obj_description(c.oid, 'pg_class') AS comment
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relname = 'runs'`,
    [spec.schema],
  );
  if (rows[0]?.comment !== tag(spec)) return false;
  const count = await client.query<{ n: string }>(`SELECT count(*) AS n FROM "${spec.schema}".runs`);
  return Number(count.rows[0]!.n) === spec.rows;
}

/**
 * Build (or reuse) the dataset. Indexes are created after the insert, which is
 * several times faster than maintaining them row by row; VACUUM ANALYZE then
 * sets the visibility map (index-only scans) and the planner statistics.
 */
export async function ensureDataset(
  client: pg.Client,
  spec: DatasetSpec,
  options: {
    rebuild: boolean;
    log?: (line: string) => void;
    /** false: ANALYZE only, leaving the visibility map unset (a table autovacuum has not reached yet). */
    vacuum?: boolean;
  },
): Promise<DatasetInfo> {
  const log = options.log ?? (() => {});
  const started = Date.now();
  const reused = !options.rebuild && (await isBuilt(client, spec));
  if (!reused) {
    log(`building ${spec.label}: ${spec.rows} runs in schema ${spec.schema} …`);
    await client.query(`DROP SCHEMA IF EXISTS "${spec.schema}" CASCADE`);
    await client.query(runsSchemaSql(spec.schema));
    // Every secondary index goes, and comes back after the insert (runsSchemaSql again).
    const indexes = await client.query<{ name: string }>(
      `SELECT indexname AS name FROM pg_indexes WHERE schemaname = $1 AND tablename = 'runs' AND indexname <> 'runs_pkey'`,
      [spec.schema],
    );
    for (const { name } of indexes.rows) await client.query(`DROP INDEX "${spec.schema}"."${name}"`);
    await client.query(`ALTER TABLE "${spec.schema}".runs DROP CONSTRAINT runs_pkey`);
    await client.query(`SET synchronous_commit = off`);
    await client.query(`SET maintenance_work_mem = '512MB'`);
    await client.query(fillRunsSql(spec));
    log(`  inserted in ${((Date.now() - started) / 1000).toFixed(1)} s; indexing …`);
    await client.query(`ALTER TABLE "${spec.schema}".runs ADD PRIMARY KEY (id)`);
    // The indexes exactly as runs-schema.ts declares them (the seed's four and any added since).
    await client.query(runsSchemaSql(spec.schema));
    await client.query(refreshFlowTimesSql(spec));
    log(`  indexed in ${((Date.now() - started) / 1000).toFixed(1)} s; vacuuming …`);
    await client.query(`${options.vacuum === false ? 'ANALYZE' : 'VACUUM (ANALYZE)'} "${spec.schema}".runs`);
    await client.query(`RESET maintenance_work_mem`);
    await client.query(`RESET synchronous_commit`);
    log(`  built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } else {
    // Indexes runs-schema.ts gained since the table was built; then, cheap when
    // nothing changed, VACUUM keeps the visibility map and statistics fresh.
    await client.query(`SET maintenance_work_mem = '512MB'`);
    await client.query(runsSchemaSql(spec.schema));
    await client.query(`RESET maintenance_work_mem`);
    await client.query(refreshFlowTimesSql(spec));
    await client.query(`VACUUM (ANALYZE) "${spec.schema}".runs`);
  }
  const sizes = await client.query<{ table_bytes: string; index_bytes: string; all_visible: number }>(
    `SELECT pg_table_size(c.oid) AS table_bytes, pg_indexes_size(c.oid) AS index_bytes,
            c.relallvisible::float8 / greatest(c.relpages, 1) AS all_visible
     FROM pg_class c WHERE c.oid = '"${spec.schema}"."runs"'::regclass`,
  );
  const counts = await client.query<{ status: string; n: string }>(
    `SELECT status::text AS status, count(*) AS n FROM "${spec.schema}".runs GROUP BY status`,
  );
  const tableBytes = Number(sizes.rows[0]!.table_bytes);
  return {
    reused,
    buildSeconds: (Date.now() - started) / 1000,
    tableBytes,
    indexBytes: Number(sizes.rows[0]!.index_bytes),
    bytesPerRow: Math.round(tableBytes / spec.rows),
    allVisible: Number(sizes.rows[0]!.all_visible),
    counts: Object.fromEntries(counts.rows.map((r) => [r.status, Number(r.n)])),
  };
}
