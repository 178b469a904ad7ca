/**
 * All SQL the collector sends, in one place.
 *
 * The tick sends one batch in one round trip: a READ ONLY, REPEATABLE READ
 * transaction with its own statement and lock timeouts and one SELECT. One
 * snapshot and one now() mean depth{QUEUED} == ready + future in every push.
 *
 * Cost follows the active queue, not the history: ready/future/oldest read only
 * the QUEUED entries of ix_runs_status, the lease figures only the RUNNING ones.
 * Per-status depths use a loose index scan over ix_runs_status (one probe per
 * distinct status) and then one count per status; only terminal statuses grow
 * with history, so those above STATUS_ESTIMATE_ABOVE (default 100000) come from
 * the planner's statistics instead.
 *
 * The history part (the terminal counts) is the one part that can outgrow its
 * budget, so the batch sets a savepoint before the SELECT: when the SELECT
 * fails, degradedBatchSql rolls back to it and reads the alerting figures
 * alone, in the same transaction and so the same snapshot (a second round trip,
 * only then).
 *
 * Identifiers are validated by config.ts and always double-quoted; numbers are
 * validated integers. Nothing else is spliced in.
 */

import type { BlueprintConfig, DatabaseConfig, ExtrasConfig, HeartbeatConfig, TableName } from '../config/types';

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
    SELECT e.enumlabel::text AS status, e.enumsortorder AS ord
    FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_enum e ON e.enumtypid = a.atttypid
    WHERE a.attrelid = ${regclass} AND a.attname = 'status' AND NOT a.attisdropped
  )${estimateCtes},
  terminal AS (
    SELECT p.status::text AS status, ${terminalCount}
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

/** The active queue: QUEUED and RUNNING entries of ix_runs_status only. */
function activeQueueCtes(t: string): string {
  return `  queued AS (
    SELECT count(*) AS n,
           count(*) FILTER (WHERE q.run_at > now()) AS future,
           min(q.queued_at) FILTER (WHERE q.run_at <= now() OR q.run_at IS NULL) AS oldest_queued_at
    FROM ${t} q WHERE q.status = 'QUEUED'
  ),
  running AS (
    SELECT count(*) AS n,
           count(*) FILTER (WHERE l.lease_expires_at < now()) AS expired,
           count(*) FILTER (WHERE l.lease_expires_at >= now()) AS active
    FROM ${t} l WHERE l.status = 'RUNNING'
  )`;
}

const ALERTING_COLUMNS = `  extract(epoch FROM now())::float8 AS db_now_seconds,
  queued.n AS queued,
  queued.n - queued.future AS ready,
  queued.future AS future,
  greatest(0, coalesce(extract(epoch FROM now() - queued.oldest_queued_at), 0))::float8 AS oldest_ready_seconds,
  running.n AS running,
  running.expired AS expired_leases,
  running.active AS active_leases`;

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

/** Where a failed history part is rolled back to (snapshotBatchSql sets it, degradedBatchSql uses it). */
const HISTORY_SAVEPOINT = 'before_history';

/**
 * The whole tick's database work as one simple-protocol batch (one round trip).
 * `selects` run in order inside one snapshot; their results come back in order.
 * A savepoint precedes them so degradedBatchSql can continue the transaction
 * after one of them failed.
 */
export function snapshotBatchSql(selects: string[], { statementTimeoutMs, lockTimeoutMs }: BatchOptions): string {
  return [
    'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY',
    `SET LOCAL statement_timeout = ${int(statementTimeoutMs)}`,
    `SET LOCAL lock_timeout = ${int(lockTimeoutMs)}`,
    `SET LOCAL idle_in_transaction_session_timeout = ${int(statementTimeoutMs + lockTimeoutMs)}`,
    // The planner cannot know the loose index scan finds a handful of statuses,
    // so it over-costs the per-status counts and turns JIT on; compiling costs
    // more than the whole statement (measured: docs/benchmarks.md).
    'SET LOCAL jit = off',
    `SAVEPOINT ${HISTORY_SAVEPOINT}`,
    ...selects,
    'COMMIT',
  ].join(';\n');
}

/**
 * The second round trip of a degraded tick, on the connection whose
 * snapshotBatchSql failed: back to the savepoint (the transaction, and so the
 * REPEATABLE READ snapshot and now(), carry on) and `selects` again under a
 * fresh statement timeout.
 */
export function degradedBatchSql(selects: string[], { statementTimeoutMs, lockTimeoutMs }: BatchOptions): string {
  return [
    `ROLLBACK TO SAVEPOINT ${HISTORY_SAVEPOINT}`,
    `SET LOCAL statement_timeout = ${int(statementTimeoutMs)}`,
    `SET LOCAL lock_timeout = ${int(lockTimeoutMs)}`,
    ...selects,
    'COMMIT',
  ].join(';\n');
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
export const OTHER_BLUEPRINT = 'other';

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
 * named "other" go to "other".
 */
export function blueprintSql(table: TableName, config: BlueprintConfig): string {
  const t = table.sql;
  const bp = config.column.sql;
  const started = config.startedColumn.sql;
  const finished = config.finishedColumn.sql;
  const other = literal(OTHER_BLUEPRINT);
  return `WITH
  active AS (
    SELECT coalesce(a.${bp}::text, ${other}) AS blueprint, a.status::text AS status, count(*) AS n
    FROM ${t} a WHERE a.status IN ('QUEUED', 'RUNNING')
    GROUP BY 1, 2
  ),
  finished AS (
    SELECT coalesce(f.${bp}::text, ${other}) AS blueprint,
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
 * Every SELECT of a tick, in batch order: the queue snapshot, then the opt-in
 * extras. All run in one batch, one round trip, one snapshot; an extra that is
 * not configured adds nothing to the batch. `history: false` is a degraded
 * tick's re-read: the queue snapshot without the terminal counts.
 */
export function tickSelects(database: DatabaseConfig, extras: ExtrasConfig, { history = true } = {}): string[] {
  return [
    queueSnapshotSql({ table: database.runsTable, estimateAbove: database.statusEstimateAbove, history }),
    ...(extras.heartbeat ? [workersAliveSql(extras.heartbeat)] : []),
    ...(extras.blueprints ? [blueprintSql(database.runsTable, extras.blueprints)] : []),
  ];
}
