import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/config/errors';
import { parseTableName } from '../../lib/config/identifiers';
import { degradedBatchSql, queueSnapshotSql, snapshotBatchSql } from '../../lib/source/sql';

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

describe('snapshotBatchSql', () => {
  it('wraps the selects in one read-only repeatable-read transaction with its own timeouts', () => {
    const batch = snapshotBatchSql(['SELECT 1', 'SELECT 2'], { statementTimeoutMs: 4000, lockTimeoutMs: 1500 });
    expect(batch.split(';\n')).toEqual([
      'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY',
      'SET LOCAL statement_timeout = 4000',
      'SET LOCAL lock_timeout = 1500',
      'SET LOCAL idle_in_transaction_session_timeout = 5500',
      'SET LOCAL jit = off',
      'SAVEPOINT before_history',
      'SELECT 1',
      'SELECT 2',
      'COMMIT',
    ]);
  });

  it('sets a savepoint that degradedBatchSql rolls back to, continuing the same transaction under a fresh timeout', () => {
    expect(snapshotBatchSql(['SELECT 1'], { statementTimeoutMs: 4000, lockTimeoutMs: 1500 })).toContain('SAVEPOINT before_history;\nSELECT 1');
    expect(degradedBatchSql(['SELECT 2'], { statementTimeoutMs: 900, lockTimeoutMs: 800 }).split(';\n')).toEqual([
      'ROLLBACK TO SAVEPOINT before_history',
      'SET LOCAL statement_timeout = 900',
      'SET LOCAL lock_timeout = 800',
      'SELECT 2',
      'COMMIT',
    ]);
  });

  it('refuses a timeout that is not a whole number', () => {
    expect(() => snapshotBatchSql([], { statementTimeoutMs: 1.5, lockTimeoutMs: 1 })).toThrow();
  });
});
