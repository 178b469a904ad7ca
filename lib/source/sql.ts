/**
 * All SQL the collector sends, in one place.
 *
 * The tick sends one batch in one round trip: a READ ONLY, REPEATABLE READ
 * transaction with its own lock timeout and its SELECTs (the configured extras,
 * then the queue snapshot). One snapshot and one now() mean depth{QUEUED} ==
 * ready + future, and every extra agrees with the queue, in every push.
 *
 * Cost follows the active queue, not the history: ready/future/oldest read only
 * the QUEUED entries of ix_runs_status, the lease figures only the RUNNING ones.
 * Per-status depths use a loose index scan over ix_runs_status (one probe per
 * distinct status) and then one count per status; only terminal statuses grow
 * with history, so those above STATUS_ESTIMATE_ABOVE (default 100000) come from
 * the planner's statistics instead. The extras read ranges of indexed columns
 * (a TTL of heartbeats, a window of start and finish times).
 *
 * One budget for the batch: statement_timeout applies to each statement, so
 * before each SELECT the batch sets it to what is left of that SELECT's
 * cumulative share (batchStatements): the batch as a whole ends within its
 * budget, no SELECT can take the time of those after it, and time one leaves
 * unused passes to the next.
 *
 * A savepoint precedes the SELECTs: when one fails, degradedBatch rolls back
 * to it and reads what is left (the queue's alerting figures first) in the
 * same transaction, and so the same snapshot (a second round trip, only then).
 *
 * Identifiers are validated by config.ts and always double-quoted; numbers are
 * validated integers. Nothing else is spliced in. Label values taken from the
 * data are cut to MAX_LABEL_VALUE_CHARS here already, so no long value ever
 * crosses the wire twice.
 */

import type { BlueprintConfig, DatabaseConfig, ExtrasConfig, FlowConfig, HeartbeatConfig, TableName } from '../config/types';
import { MAX_LABEL_VALUE_CHARS, OTHER_LABEL } from './labels';

export interface SnapshotQueryOptions {
  table: TableName;
  /** Terminal statuses whose estimated count exceeds this are not counted exactly. */
  estimateAbove: number | undefined;
  /**
   * false: the alerting figures only (QUEUED/RUNNING depth, ready, future,
   * oldest ready, leases); terminal_statuses and enum_labels come back NULL.
   */
  history?: boolean;
}

export interface BatchOptions {
  statementTimeoutMs: number;
  lockTimeoutMs: number;
}

/** SQL string literal for a validated value (identifiers only ever reach here). */
function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

function int(value: number): string {
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`not a non-negative integer: ${value}`);
  return String(value);
}

export function queueSnapshotSql({ table, estimateAbove, history = true }: SnapshotQueryOptions): string {
  const t = table.sql;
  if (!history) return alertingSql(t);
  const regclass = `${literal(t)}::regclass`;

  // Exact count per present terminal status, or the planner's estimate above a threshold.
  const exact = `(SELECT count(*) FROM ${t} c WHERE c.status = p.status)`;
  const terminalCount =
    estimateAbove === undefined
      ? `${exact} AS n, false AS estimated`
      : `CASE WHEN e.n > ${int(estimateAbove)} THEN e.n ELSE ${exact} END AS n,
         coalesce(e.n > ${int(estimateAbove)}, false) AS estimated`;
  const estimateJoin =
    estimateAbove === undefined
      ? ''
      : `LEFT JOIN estimates e ON e.status = p.status::text`;
  const estimateCtes =
    estimateAbove === undefined
      ? ''
      : `,
  table_rows AS (
    -- What the planner does: reltuples scaled to the relation's current size.
    SELECT CASE WHEN c.relpages > 0
                THEN c.reltuples / c.relpages * (pg_catalog.pg_relation_size(c.oid) / current_setting('block_size')::float8)
                ELSE greatest(c.reltuples, 0) END AS n,
           ns.nspname, c.relname
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace
    WHERE c.oid = ${regclass}
  ),
  estimates AS (
    -- LATERAL, so pg_stats is looked up by index for this one table, not joined
    -- against every column of the catalog (a seq scan of pg_attribute).
    SELECT mcv.status, round(mcv.freq * r.n)::bigint AS n
    FROM table_rows r
    CROSS JOIN LATERAL (
      SELECT s.most_common_vals, s.most_common_freqs FROM pg_catalog.pg_stats s
      WHERE s.schemaname = r.nspname AND s.tablename = r.relname AND s.attname = 'status' OFFSET 0
    ) st
    CROSS JOIN LATERAL unnest(st.most_common_vals::text::text[], st.most_common_freqs) AS mcv(status, freq)
  )`;

  return `WITH RECURSIVE
  present(status) AS (
    -- Loose index scan over ix_runs_status: one probe per distinct status.
    (SELECT r.status FROM ${t} r WHERE r.status IS NOT NULL ORDER BY r.status LIMIT 1)
    UNION ALL
    SELECT (SELECT r.status FROM ${t} r WHERE r.status > p.status ORDER BY r.status LIMIT 1)
    FROM present p WHERE p.status IS NOT NULL
  ),
  enum_labels AS (
    -- Every label of the status enum, so a status that empties reads 0 (empty for a text column).
    ${enumLabelsSelect(regclass)}
  )${estimateCtes},
  terminal AS (
    SELECT left(p.status::text, ${int(MAX_LABEL_VALUE_CHARS)}) AS status, ${terminalCount}
    FROM present p ${estimateJoin}
    WHERE p.status IS NOT NULL AND p.status::text NOT IN ('QUEUED', 'RUNNING')
  ),
${activeQueueCtes(t)}
SELECT
${ALERTING_COLUMNS},
  (SELECT coalesce(json_agg(json_build_object('status', status, 'count', n, 'estimated', estimated)
                            ORDER BY status), '[]'::json) FROM terminal) AS terminal_statuses,
  (SELECT coalesce(json_agg(status ORDER BY ord), '[]'::json) FROM enum_labels) AS enum_labels
FROM queued, running`;
}

/** Every label of the status enum with its order; no row for a text column. */
function enumLabelsSelect(regclass: string): string {
  return `SELECT left(e.enumlabel::text, ${int(MAX_LABEL_VALUE_CHARS)}) AS status, e.enumsortorder AS ord
    FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_enum e ON e.enumtypid = a.atttypid
    WHERE a.attrelid = ${regclass} AND a.attname = 'status' AND NOT a.attisdropped`;
}

/**
 * The active queue: QUEUED and RUNNING entries of ix_runs_status only. The
 * due time and the lease test read the columns these rows are fetched for
 * anyway (run_at, queued_at, lease_expires_at), so they cost nothing more.
 */
function activeQueueCtes(t: string): string {
  return `  queued AS (
    SELECT count(*) AS n,
           count(*) FILTER (WHERE q.run_at > now()) AS future,
           min(q.queued_at) FILTER (WHERE q.run_at <= now() OR q.run_at IS NULL) AS oldest_queued_at,
           -- Due: when the run could first start (greatest() skips a NULL run_at).
           min(greatest(q.queued_at, q.run_at)) FILTER (WHERE q.run_at <= now() OR q.run_at IS NULL) AS oldest_due_at
    FROM ${t} q WHERE q.status = 'QUEUED'
  ),
  running AS (
    SELECT count(*) AS n,
           count(*) FILTER (WHERE l.lease_expires_at < now()) AS expired,
           count(*) FILTER (WHERE l.lease_expires_at >= now()) AS active,
           count(*) FILTER (WHERE l.lease_expires_at IS NULL) AS without_lease
    FROM ${t} l WHERE l.status = 'RUNNING'
  )`;
}

const ALERTING_COLUMNS = `  extract(epoch FROM now())::float8 AS db_now_seconds,
  queued.n AS queued,
  queued.n - queued.future AS ready,
  queued.future AS future,
  greatest(0, coalesce(extract(epoch FROM now() - queued.oldest_queued_at), 0))::float8 AS oldest_ready_seconds,
  greatest(0, coalesce(extract(epoch FROM now() - queued.oldest_due_at), 0))::float8 AS oldest_due_seconds,
  running.n AS running,
  running.expired AS expired_leases,
  running.active AS active_leases,
  running.without_lease AS running_without_lease`;

/** The degraded read: the alerting figures, without the history part (no terminal counts, no estimates). */
function alertingSql(t: string): string {
  return `WITH
${activeQueueCtes(t)}
SELECT
${ALERTING_COLUMNS},
  NULL::json AS terminal_statuses,
  NULL::json AS enum_labels
FROM queued, running`;
}

/** Where a failed SELECT is rolled back to (snapshotBatch sets it, degradedBatch uses it). */
const READS_SAVEPOINT = 'before_reads';

export interface BatchBudget {
  /** Statement time the SELECTs of this round trip may take together, ms. */
  budgetMs: number;
  lockTimeoutMs: number;
}

/** A batch's SQL and where its SELECTs sit among its statements (the driver answers per statement). */
export interface Batch {
  sql: string;
  /** The statement number (0-based, in the message) of each SELECT given, in order. */
  selectAt: number[];
}

/**
 * Each SELECT i of n gets the cumulative deadline budget * (i + 1) / n, counted
 * from the moment the server received the message (statement_timestamp() is
 * that time for every statement of a simple-query message). Before it, its
 * statement_timeout is set to what is left until that deadline, at least 1 ms
 * (0 would mean no timeout). So the SELECTs together end within the budget,
 * none eats the share of those after it, and time left unused rolls forward.
 * PostgreSQL 13 and later time each statement of a message on its own, with
 * the statement_timeout current when it starts.
 */
function budgetedSelects(selects: string[], budgetMs: number, first: number): { statements: string[]; selectAt: number[] } {
  const statements: string[] = [];
  const selectAt: number[] = [];
  selects.forEach((select, i) => {
    const deadline = Math.floor((budgetMs * (i + 1)) / selects.length);
    statements.push(
      `SELECT set_config('statement_timeout', greatest(1, ${int(deadline)} - floor(1000 * extract(epoch FROM clock_timestamp() - statement_timestamp())))::bigint::text, true)`,
    );
    selectAt.push(first + statements.length);
    statements.push(select);
  });
  return { statements, selectAt };
}

/**
 * The whole tick's database work as one simple-protocol batch (one round trip).
 * `selects` run in order inside one snapshot, each under its share of the
 * budget; a savepoint precedes them so degradedBatch can continue the
 * transaction after one of them failed.
 */
export function snapshotBatch(selects: string[], { budgetMs, lockTimeoutMs }: BatchBudget, idleMs = budgetMs + lockTimeoutMs): Batch {
  const head = [
    'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY',
    // For the statements before the first SELECT; each SELECT gets its own below.
    `SET LOCAL statement_timeout = ${int(budgetMs)}`,
    `SET LOCAL lock_timeout = ${int(lockTimeoutMs)}`,
    `SET LOCAL idle_in_transaction_session_timeout = ${int(idleMs)}`,
    // The planner cannot know the loose index scan finds a handful of statuses,
    // so it over-costs the per-status counts and turns JIT on; compiling costs
    // more than the whole statement (measured: docs/benchmarks.md).
    'SET LOCAL jit = off',
    `SAVEPOINT ${READS_SAVEPOINT}`,
  ];
  const { statements, selectAt } = budgetedSelects(selects, budgetMs, head.length);
  return { sql: [...head, ...statements, 'COMMIT'].join(';\n'), selectAt };
}

/**
 * The second round trip of a degraded tick, on the connection whose
 * snapshotBatch failed: back to the savepoint (the transaction, and so the
 * REPEATABLE READ snapshot and now(), carry on) and `selects` under a budget
 * of their own.
 */
export function degradedBatch(selects: string[], { budgetMs, lockTimeoutMs }: BatchBudget): Batch {
  const head = [`ROLLBACK TO SAVEPOINT ${READS_SAVEPOINT}`, `SET LOCAL lock_timeout = ${int(lockTimeoutMs)}`];
  const { statements, selectAt } = budgetedSelects(selects, budgetMs, head.length);
  return { sql: [...head, ...statements, 'COMMIT'].join(';\n'), selectAt };
}

/**
 * Errors a second try in the same transaction cannot fix: a table or column
 * that does not exist, a privilege not granted. A SELECT failing so is never
 * read again in the same tick.
 */
const PERMANENT_SQLSTATES = new Set(['42P01', '42703', '42501']);

export function isPermanentSqlError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && PERMANENT_SQLSTATES.has(code);
}

/**
 * Worker liveness (opt-in, HEARTBEAT_TABLE): distinct workers whose latest
 * heartbeat is within the TTL of the database clock. The WHERE bounds the read
 * to the last TTL seconds of heartbeats (an index on the timestamp column makes
 * it a range scan); it works for a one-row-per-worker table and for an
 * append-only log alike. One number, never a per-worker label.
 */
export function workersAliveSql({ table, workerColumn, atColumn, ttlSeconds }: HeartbeatConfig): string {
  return `SELECT count(DISTINCT h.${workerColumn.sql}) AS workers_alive
FROM ${table.sql} h
WHERE h.${atColumn.sql} >= now() - interval '${int(ttlSeconds)} seconds'`;
}

/** The bucket every blueprint outside the top K is summed under. */
export const OTHER_BLUEPRINT = OTHER_LABEL;

/**
 * Per-blueprint figures (opt-in, BLUEPRINT_COLUMN): QUEUED/RUNNING counts per
 * blueprint and duration quantiles over runs finished in the window.
 *
 * Bounded reads only: the active runs come from ix_runs_status (QUEUED and
 * RUNNING entries, the same rows the queue snapshot reads); finished runs come
 * from a range on the finish column over the last windowSeconds (index it:
 * docs/extras.md). Cardinality is capped in SQL, where the pooled quantiles of
 * "other" can be computed: the top K blueprints by volume (active + finished
 * in the window) keep their name, the rest, NULL and a blueprint literally
 * named "other" go to "other". Names are cut to MAX_LABEL_VALUE_CHARS first,
 * so two that differ only after the cut count as one.
 */
export function blueprintSql(table: TableName, config: BlueprintConfig): string {
  const t = table.sql;
  const bp = config.column.sql;
  const started = config.startedColumn.sql;
  const finished = config.finishedColumn.sql;
  const other = literal(OTHER_BLUEPRINT);
  const cut = int(MAX_LABEL_VALUE_CHARS);
  return `WITH
  active AS (
    SELECT coalesce(left(a.${bp}::text, ${cut}), ${other}) AS blueprint, a.status::text AS status, count(*) AS n
    FROM ${t} a WHERE a.status IN ('QUEUED', 'RUNNING')
    GROUP BY 1, 2
  ),
  finished AS (
    SELECT coalesce(left(f.${bp}::text, ${cut}), ${other}) AS blueprint,
           greatest(0, extract(epoch FROM f.${finished} - f.${started}))::float8 AS seconds
    FROM ${t} f
    WHERE f.${finished} >= now() - interval '${int(config.windowSeconds)} seconds'
      AND f.${started} IS NOT NULL
  ),
  volume AS (
    SELECT blueprint, sum(n) AS n
    FROM (SELECT blueprint, n FROM active UNION ALL SELECT blueprint, count(*) FROM finished GROUP BY blueprint) v
    GROUP BY blueprint
  ),
  ranked AS (
    -- "other" sorts last so it never takes one of the K named places.
    SELECT blueprint,
           CASE WHEN blueprint <> ${other}
                 AND row_number() OVER (ORDER BY blueprint = ${other}, n DESC, blueprint) <= ${int(config.topK)}
                THEN blueprint ELSE ${other} END AS label
    FROM volume
  ),
  counts AS (
    SELECT r.label,
           coalesce(sum(a.n) FILTER (WHERE a.status = 'QUEUED'), 0) AS queued,
           coalesce(sum(a.n) FILTER (WHERE a.status = 'RUNNING'), 0) AS running
    FROM ranked r LEFT JOIN active a ON a.blueprint = r.blueprint
    GROUP BY r.label
  ),
  durations AS (
    SELECT r.label, count(*) AS finished,
           percentile_cont(ARRAY[0.5, 0.9, 0.99]::float8[]) WITHIN GROUP (ORDER BY f.seconds) AS quantiles
    FROM finished f JOIN ranked r ON r.blueprint = f.blueprint
    GROUP BY r.label
  )
SELECT
  (SELECT coalesce(json_agg(json_build_object('blueprint', label, 'queued', queued, 'running', running)
                            ORDER BY label), '[]'::json) FROM counts) AS blueprint_counts,
  (SELECT coalesce(json_agg(json_build_object('blueprint', label, 'finished', finished, 'quantiles', quantiles)
                            ORDER BY label), '[]'::json) FROM durations) AS blueprint_durations`;
}

/**
 * Flow (opt-in, RUN_FINISHED_COLUMN and/or RUN_STARTED_COLUMN): runs finished
 * per terminal status and runs started within the last windowSeconds of the
 * database clock, and the quantiles of their wait from due
 * (greatest(queued_at, run_at)) to start. Each part is a range over the
 * window on its own column, so an index on it makes it a range scan of the
 * runs in the window (docs/metrics.md); an unconfigured part reads NULL.
 * The window is (now() - window, now()]: a time ahead of the database clock
 * is not counted yet.
 */
export function flowSql(table: TableName, { startedColumn, finishedColumn, windowSeconds }: FlowConfig): string {
  const t = table.sql;
  const since = `now() - interval '${int(windowSeconds)} seconds'`;
  const ctes: string[] = [];
  const columns: string[] = [];
  if (finishedColumn) {
    const finished = finishedColumn.sql;
    ctes.push(`finished AS (
    SELECT left(f.status::text, ${int(MAX_LABEL_VALUE_CHARS)}) AS status, count(*) AS n
    FROM ${t} f
    WHERE f.${finished} > ${since} AND f.${finished} <= now()
      AND f.status::text NOT IN ('QUEUED', 'RUNNING')
    GROUP BY 1
  )`);
    ctes.push(`enum_labels AS (
    ${enumLabelsSelect(`${literal(t)}::regclass`)}
  )`);
    columns.push(
      `(SELECT coalesce(json_agg(json_build_object('status', status, 'count', n) ORDER BY status), '[]'::json) FROM finished) AS finished_in_window`,
      `(SELECT coalesce(json_agg(status ORDER BY ord), '[]'::json) FROM enum_labels WHERE status NOT IN ('QUEUED', 'RUNNING')) AS terminal_labels`,
    );
  } else {
    columns.push('NULL::json AS finished_in_window', 'NULL::json AS terminal_labels');
  }
  if (startedColumn) {
    const started = startedColumn.sql;
    // A run started before it was due (re-queued, or taken early) waited 0; one with neither time has
    // no wait (greatest() skips NULLs, so the CASE keeps a NULL a NULL).
    ctes.push(`started AS (
    SELECT CASE WHEN greatest(s.queued_at, s.run_at) IS NOT NULL
                THEN greatest(0, extract(epoch FROM s.${started} - greatest(s.queued_at, s.run_at)))::float8 END AS wait
    FROM ${t} s
    WHERE s.${started} > ${since} AND s.${started} <= now()
  )`);
    ctes.push(`waits AS (
    SELECT count(*) AS n, percentile_cont(ARRAY[0.5, 0.9, 0.99]::float8[]) WITHIN GROUP (ORDER BY wait) AS q FROM started
  )`);
    columns.push(
      '(SELECT n FROM waits) AS started_in_window',
      '(SELECT q[1] FROM waits) AS wait_p50',
      '(SELECT q[2] FROM waits) AS wait_p90',
      '(SELECT q[3] FROM waits) AS wait_p99',
    );
  } else {
    columns.push('NULL::bigint AS started_in_window', 'NULL::float8 AS wait_p50', 'NULL::float8 AS wait_p90', 'NULL::float8 AS wait_p99');
  }
  return `WITH
  ${ctes.join(',\n  ')}
SELECT
  ${columns.join(',\n  ')}`;
}

/** What one SELECT of the batch reads: the queue snapshot or one of the extras. */
export type ReadPart = 'flow' | 'heartbeat' | 'blueprints' | 'queue';

export interface TickSelect {
  part: ReadPart;
  sql: string;
}

/**
 * Every SELECT of a tick, in batch order: the opt-in extras (flow, heartbeat,
 * blueprints), then the queue snapshot. All run in one batch, one round trip,
 * one snapshot; an extra that is not configured adds nothing to the batch.
 * The queue comes last, so the costliest part (its terminal counts) may use
 * whatever time the cheap extras left unused, and when it fails the extras
 * are already read and the re-read is the alerting figures alone.
 */
export function tickSelects(database: DatabaseConfig, extras: ExtrasConfig): TickSelect[] {
  return [
    ...(extras.flow ? [{ part: 'flow' as const, sql: flowSql(database.runsTable, extras.flow) }] : []),
    ...(extras.heartbeat ? [{ part: 'heartbeat' as const, sql: workersAliveSql(extras.heartbeat) }] : []),
    ...(extras.blueprints ? [{ part: 'blueprints' as const, sql: blueprintSql(database.runsTable, extras.blueprints) }] : []),
    { part: 'queue', sql: queueSnapshotSql({ table: database.runsTable, estimateAbove: database.statusEstimateAbove }) },
  ];
}

/** The queue snapshot's alerting figures alone: what a degraded tick re-reads first. */
export function alertingSelect(database: DatabaseConfig): TickSelect {
  return { part: 'queue', sql: queueSnapshotSql({ table: database.runsTable, estimateAbove: undefined, history: false }) };
}
