import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/config/errors';
import { parseTableName } from '../../lib/config/identifiers';
import { degradedBatch, flowSql, isPermanentSqlError, queueSnapshotSql, snapshotBatch } from '../../lib/source/sql';

describe('queueSnapshotSql', () => {
  it('quotes the table everywhere it appears', () => {
    const sql = queueSnapshotSql({ table: parseTableName('xyn.runs'), estimateAbove: undefined });
    expect(sql).toContain('FROM "xyn"."runs" q WHERE q.status = \'QUEUED\'');
    expect(sql).toContain(`'"xyn"."runs"'::regclass`);
    expect(sql).not.toMatch(/FROM xyn\.runs/);
  });

  it('never scans the table without a status predicate (no seed-style FILTER over all rows)', () => {
    const sql = queueSnapshotSql({ table: parseTableName('runs'), estimateAbove: undefined });
    const fromRuns = [...sql.matchAll(/FROM "runs" (\w+)( WHERE [^\n]*)?/g)];
    expect(fromRuns.length).toBeGreaterThan(0);
    for (const match of fromRuns) expect(match[2], match[0]).toMatch(/status/);
  });

  it('adds the planner-estimate path only when asked', () => {
    const exact = queueSnapshotSql({ table: parseTableName('runs'), estimateAbove: undefined });
    const estimated = queueSnapshotSql({ table: parseTableName('runs'), estimateAbove: 100_000 });
    expect(exact).not.toContain('pg_stats');
    expect(estimated).toContain('pg_stats');
    expect(estimated).toContain('e.n > 100000');
  });

  it('reads the due age and the runs without a lease from the rows the active queue fetches anyway', () => {
    const sql = queueSnapshotSql({ table: parseTableName('runs'), estimateAbove: undefined, history: false });
    expect(sql).toContain('min(greatest(q.queued_at, q.run_at)) FILTER (WHERE q.run_at <= now() OR q.run_at IS NULL) AS oldest_due_at');
    expect(sql).toContain('count(*) FILTER (WHERE l.lease_expires_at IS NULL) AS without_lease');
    expect(sql).toContain('AS oldest_due_seconds');
    expect(sql).toContain('running.without_lease AS running_without_lease');
  });

  it('cuts status labels to 128 characters where it reads them', () => {
    const sql = queueSnapshotSql({ table: parseTableName('runs'), estimateAbove: undefined });
    expect(sql).toContain('SELECT left(p.status::text, 128) AS status');
    expect(sql).toContain('SELECT left(e.enumlabel::text, 128) AS status');
  });

  it('reads only the active queue, no history and no statistics, for a degraded tick', () => {
    const sql = queueSnapshotSql({ table: parseTableName('runs'), estimateAbove: 100_000, history: false });
    expect(sql).not.toMatch(/pg_stats|present|enum_labels AS/);
    expect(sql).toContain('NULL::json AS terminal_statuses');
    const fromRuns = [...sql.matchAll(/FROM "runs" (\w+)( WHERE [^\n]*)?/g)].map((m) => m[2]);
    expect(fromRuns).toEqual([" WHERE q.status = 'QUEUED'", " WHERE l.status = 'RUNNING'"]);
  });

  it('cannot be handed SQL as a table name', () => {
    expect(() => parseTableName('runs; DROP TABLE runs')).toThrow(ConfigError);
    expect(() => parseTableName('runs"--')).toThrow(ConfigError);
    expect(() => parseTableName('a.b.c')).toThrow(/RUNS_TABLE/);
  });
});

const share = (deadline: number) =>
  `SELECT set_config('statement_timeout', greatest(1, ${deadline} - floor(1000 * extract(epoch FROM clock_timestamp() - statement_timestamp())))::bigint::text, true)`;

describe('snapshotBatch', () => {
  it('wraps the selects in one read-only repeatable-read transaction, each SELECT under its share of the budget', () => {
    const batch = snapshotBatch(['SELECT 1', 'SELECT 2', 'SELECT 3'], { budgetMs: 3000, lockTimeoutMs: 1500 });
    expect(batch.sql.split(';\n')).toEqual([
      'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY',
      'SET LOCAL statement_timeout = 3000',
      'SET LOCAL lock_timeout = 1500',
      'SET LOCAL idle_in_transaction_session_timeout = 4500',
      'SET LOCAL jit = off',
      'SAVEPOINT before_reads',
      // Cumulative deadlines: what is left of 1/3, 2/3 and all of the budget when each starts.
      share(1000),
      'SELECT 1',
      share(2000),
      'SELECT 2',
      share(3000),
      'SELECT 3',
      'COMMIT',
    ]);
    expect(batch.selectAt).toEqual([7, 9, 11]);
    expect(batch.selectAt.map((i) => batch.sql.split(';\n')[i])).toEqual(['SELECT 1', 'SELECT 2', 'SELECT 3']);
  });

  it('degradedBatch rolls back to the savepoint and continues the same transaction under a budget of its own', () => {
    const batch = degradedBatch(['SELECT 2'], { budgetMs: 900, lockTimeoutMs: 800 });
    expect(batch.sql.split(';\n')).toEqual(['ROLLBACK TO SAVEPOINT before_reads', 'SET LOCAL lock_timeout = 800', share(900), 'SELECT 2', 'COMMIT']);
    expect(batch.selectAt).toEqual([3]);
  });

  it('refuses a budget that is not a whole number', () => {
    expect(() => snapshotBatch(['SELECT 1'], { budgetMs: 1.5, lockTimeoutMs: 1 })).toThrow();
  });

  it('knows the errors a second try cannot fix', () => {
    for (const code of ['42P01', '42703', '42501']) expect(isPermanentSqlError({ code }), code).toBe(true);
    for (const code of ['55P03', '57014', '40001', undefined]) expect(isPermanentSqlError({ code }), String(code)).toBe(false);
    expect(isPermanentSqlError(undefined)).toBe(false);
  });
});

describe('flowSql', () => {
  const column = (name: string) => ({ name, sql: `"${name}"` });

  it('reads each configured figure as a range of its own column over the window, and NULL for the other', () => {
    const both = flowSql(parseTableName('xyn.runs'), { startedColumn: column('started_at'), finishedColumn: column('finished_at'), windowSeconds: 300 });
    expect(both).toContain(`WHERE f."finished_at" > now() - interval '300 seconds' AND f."finished_at" <= now()`);
    expect(both).toContain(`WHERE s."started_at" > now() - interval '300 seconds' AND s."started_at" <= now()`);
    expect(both).toContain('greatest(s.queued_at, s.run_at)');
    // Every read of the table has a bounding range.
    for (const match of both.matchAll(/FROM "xyn"\."runs" (\w+)\s*(WHERE [^\n]*)?/g)) expect(match[2], match[0]).toMatch(/> now\(\) - interval/);
    const finishedOnly = flowSql(parseTableName('runs'), { startedColumn: undefined, finishedColumn: column('done_at'), windowSeconds: 60 });
    expect(finishedOnly).toContain('NULL::bigint AS started_in_window');
    expect(finishedOnly).not.toContain('started_at');
    const startedOnly = flowSql(parseTableName('runs'), { startedColumn: column('began'), finishedColumn: undefined, windowSeconds: 60 });
    expect(startedOnly).toContain('NULL::json AS finished_in_window');
    expect(startedOnly).toContain(`s."began" > now() - interval '60 seconds'`);
  });
});
