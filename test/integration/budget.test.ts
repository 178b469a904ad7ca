/**
 * One budget for the batch, on a real PostgreSQL. statement_timeout applies
 * to each statement of a simple-query message on its own, so the batch gives
 * each SELECT what is left of its cumulative share (lib/source/sql.ts): the
 * batch as a whole ends within its budget, a slow SELECT cannot take the time
 * of those after it, and time a quick one leaves passes on. Timed on an open
 * session, the batch alone; then three slow SELECTs through the handler.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config/parse';
import { deadlineIn } from '../../lib/core/deadline';
import { openDatabase, type DatabaseSession } from '../../lib/source/connection';
import { snapshotBatch } from '../../lib/source/sql';
import { startBridge, type Bridge } from '../../scripts/bridge/bridge';
import { invokeCollect } from '../support/lambda';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { sample, samples, startPushgateway, type TestPushgateway } from '../support/pushgateway';

let db: TestDatabase;
let bridge: Bridge;
let gateway: TestPushgateway;

beforeAll(async () => {
  [db, bridge, gateway] = await Promise.all([createTestDatabase('budget'), startBridge(), startPushgateway()]);
});
afterAll(async () => {
  await gateway?.stop();
  await bridge?.close();
  await db?.close();
});

/** Time one batch on an open session: the connection's own cost stays out of the figure. */
async function timedBatch(selects: string[], budgetMs: number) {
  const config = parseConfig({ DATABASE_URL: db.url, DATABASE_WS_PROXY: bridge.proxy }, { requireSink: false });
  const deadline = deadlineIn(30_000);
  const session: DatabaseSession = await openDatabase(config.database, deadline);
  try {
    const batch = snapshotBatch(selects, { budgetMs, lockTimeoutMs: 1_000 });
    const started = performance.now();
    const outcome = await session.batch(batch.sql, deadline);
    const ms = performance.now() - started;
    const completed = batch.selectAt.filter((at) => outcome.completed[at] !== undefined).length;
    return { ms, completed, error: outcome.error as { code?: string; message?: string } | undefined };
  } finally {
    await session.close(deadline);
  }
}

describe('the batch fits its budget', () => {
  it('three quick SELECTs pass their unused time on: the slow fourth is cut at the end of the whole budget, not at its own quarter', async () => {
    // Budget 4000 ms over four SELECTs: deadlines at 1000, 2000, 3000 and 4000 ms.
    const { ms, completed, error } = await timedBatch(['SELECT pg_sleep(0.6)', 'SELECT pg_sleep(0.6)', 'SELECT pg_sleep(0.6)', 'SELECT pg_sleep(30)'], 4_000);
    expect(completed).toBe(3);
    expect(error?.code).toBe('57014');
    // Cut at its cumulative deadline: past its own quarter (1.8 s + 1 s), within the whole budget.
    expect(ms).toBeGreaterThan(3_500);
    // Each statement on its own would have had the whole 4 s after 1.8 s: 5.8 s.
    expect(ms).toBeLessThan(4_900);
  });

  it('a slow first SELECT is cut at its own share, so it cannot take the time of those after it', async () => {
    const { ms, completed, error } = await timedBatch(['SELECT pg_sleep(30)', 'SELECT 1', 'SELECT 2'], 3_000);
    expect(completed).toBe(0);
    expect(error?.code).toBe('57014');
    expect(ms).toBeGreaterThan(900);
    expect(ms).toBeLessThan(1_900);
  });

  it('three slow SELECTs that each fit their share all complete, within the budget', async () => {
    const { ms, completed, error } = await timedBatch(['SELECT pg_sleep(0.5)', 'SELECT pg_sleep(0.5)', 'SELECT pg_sleep(0.5)'], 3_000);
    expect(error).toBeUndefined();
    expect(completed).toBe(3);
    expect(ms).toBeGreaterThan(1_400);
    expect(ms).toBeLessThan(3_000);
  });
});

describe('three slow SELECTs through the handler', () => {
  /**
   * Slow on purpose, deterministically: the flow and heartbeat SELECTs read
   * views whose rows each cost a pg_sleep; the queue snapshot's history part
   * reads every terminal run through the same costly gate (degraded.test.ts
   * explains the view). The extras fit their shares, the history part does not.
   */
  beforeAll(async () => {
    const s = `"${db.schema}"`;
    await db.query(`CREATE FUNCTION ${s}.slow(seconds float8) RETURNS boolean LANGUAGE plpgsql VOLATILE COST 1000000 AS $$ BEGIN PERFORM pg_sleep(seconds); RETURN true; END $$`);
    await db.query(`CREATE VIEW ${s}.runs_slow AS
      SELECT * FROM ${db.table} WHERE status IN ('QUEUED', 'RUNNING')
      UNION ALL
      SELECT * FROM ${db.table} WHERE status NOT IN ('QUEUED', 'RUNNING') AND ${s}.slow(0.8)`);
    await db.query(`CREATE TABLE ${s}.beats (worker_id text, heartbeat_at timestamptz)`);
    await db.query(`INSERT INTO ${s}.beats VALUES ('w1', now() + interval '1 hour')`);
    await db.query(`CREATE VIEW ${s}.beats_slow AS SELECT * FROM ${s}.beats WHERE ${s}.slow(0.8)`);
    // One run finished in the window (flow reads it: 0.8 s); nine long ago (the history part reads all ten: 8 s).
    await db.query(`INSERT INTO ${db.table} (status, queued_at, finished_at)
      SELECT 'SUCCEEDED', now(), CASE WHEN g = 1 THEN now() - interval '1 minute' ELSE now() - interval '10 days' END FROM generate_series(1, 10) g`);
    await db.query(`INSERT INTO ${db.table} (status, run_at, queued_at) VALUES ('QUEUED', NULL, now() - interval '30 seconds'), ('QUEUED', now() + interval '1 hour', now())`);
  });

  it('the extras are read, the history part is cut at what is left of the batch share, the alerting figures are re-read: a degraded tick within the budget', async () => {
    const started = Date.now();
    const { output, error } = await invokeCollect({
      DATABASE_URL: db.url,
      DATABASE_WS_PROXY: bridge.proxy,
      PUSHGATEWAY_URL: gateway.url,
      RUNS_TABLE: `${db.schema}.runs_slow`,
      RUN_FINISHED_COLUMN: 'finished_at',
      HEARTBEAT_TABLE: `${db.schema}.beats_slow`,
      // The batch gets 4500 ms: deadlines at 1500, 3000 and 4500 ms; the re-read what is left.
      DB_STATEMENT_TIMEOUT_MS: '6000',
    });
    const elapsed = Date.now() - started;
    expect(error).toBeUndefined();
    const text = await gateway.scrape();
    const job = { job: 'xyn_metrics' };
    expect(sample(text, 'xyn_runs_finished_in_window', { ...job, status: 'SUCCEEDED' })).toBe(1);
    expect(sample(text, 'xyn_workers_alive', job)).toBe(1);
    expect(sample(text, 'xyn_queue_ready_depth', job)).toBe(1);
    expect(sample(text, 'xyn_queue_future_depth', job)).toBe(1);
    expect(sample(text, 'xyn_collector_degraded', job)).toBe(1);
    expect(samples(text, 'xyn_queue_depth', { ...job, status: 'SUCCEEDED' })).toEqual([]);
    const line = JSON.parse(output.trim()) as { msg: string; missing: string[]; degraded: string; db_ms: number };
    expect(line).toMatchObject({ msg: 'tick degraded', missing: ['terminal_counts'] });
    expect(line.degraded).toMatch(/^terminal counts missing: .*statement timeout/);
    // 0.8 + 0.8 s of extras, the history part cut at 4.5 s, a quick re-read: under the 6 s budget
    // even with the connection; each SELECT on its own 4.5 s would have taken 1.6 + 4.5 + 1.5 s.
    expect(line.db_ms).toBeLessThan(6_000);
    expect(elapsed).toBeLessThan(10_000);
  });
});
