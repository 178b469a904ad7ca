/**
 * A degraded tick against the real services (PostgreSQL through the Neon
 * driver and the bridge, a real Pushgateway, the handler as Lambda invokes it):
 * when the part of the read that counts the history fails, the tick still
 * pushes every alerting gauge, exact, and says the terminal counts are missing.
 *
 * To make only the history part slow (or failing), deterministically, RUNS_TABLE
 * is a view over the real runs table: the active runs as they are, the terminal
 * ones only through a function that sleeps (or raises) for every row it lets
 * through. The function is declared very costly, so PostgreSQL evaluates it last
 * and only for rows whose status matched: the alerting part (status = 'QUEUED'
 * or 'RUNNING') never calls it, the terminal counts call it for every
 * terminal run.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type Bridge } from '../../scripts/bridge/bridge';
import { expectKnownAlertingGauges, seedKnownQueue, waitFor } from '../support/faults';
import { invokeCollect } from '../support/lambda';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { sample, samples, startPushgateway, type TestPushgateway } from '../support/pushgateway';

let db: TestDatabase;
let gateway: TestPushgateway;
let bridge: Bridge;
let view: string;

/** What the function does for each terminal run the history part reads. */
async function historyReads(body: string): Promise<void> {
  await db.query(`CREATE OR REPLACE FUNCTION "${db.schema}".history_gate(id bigint) RETURNS boolean
    LANGUAGE plpgsql VOLATILE COST 1000000 AS $$ BEGIN ${body} RETURN true; END $$`);
}

beforeAll(async () => {
  db = await createTestDatabase('degraded');
  gateway = await startPushgateway();
  bridge = await startBridge();
  // 5 QUEUED (3 ready, 2 future), 6 RUNNING (2 expired, 3 active leases), 2 SUCCEEDED, 1 FAILED.
  await seedKnownQueue(db);
  await historyReads('');
  view = `${db.schema}.runs_gated`;
  await db.query(`CREATE VIEW ${view} AS
    SELECT * FROM ${db.table} WHERE status IN ('QUEUED', 'RUNNING')
    UNION ALL
    SELECT * FROM ${db.table} WHERE status NOT IN ('QUEUED', 'RUNNING') AND "${db.schema}".history_gate(id)`);
});
afterAll(async () => {
  await bridge?.close();
  await gateway?.stop();
  await db?.close();
});

const job = { job: 'xyn_metrics' };

function invoke() {
  return invokeCollect({
    DATABASE_URL: db.url,
    DATABASE_WS_PROXY: bridge.proxy,
    PUSHGATEWAY_URL: gateway.url,
    PUSHGATEWAY_JOB: job.job,
    RUNS_TABLE: view,
    // The whole read gets 3/4 of this (3 s), the alerting re-read what is left of it.
    DB_STATEMENT_TIMEOUT_MS: '4000',
  });
}

/** Every alerting gauge, exact: the known queue's hand-computed answers. */
function expectAlertingGauges(text: string): void {
  expectKnownAlertingGauges(text, job.job);
  expect(sample(text, 'xyn_queue_depth_estimated', { ...job, status: 'QUEUED' })).toBe(0);
  expect(sample(text, 'xyn_queue_depth_estimated', { ...job, status: 'RUNNING' })).toBe(0);
}

function logLine(output: string): Record<string, unknown> {
  const lines = output.trim().split('\n');
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]!) as Record<string, unknown>;
}

describe('a degraded tick: the history part fails, the alerting gauges are still pushed', () => {
  it('reads the whole view in one piece while the history part is quick (the control)', async () => {
    await historyReads('');
    const { output, error } = await invoke();
    expect(error).toBeUndefined();
    const text = await gateway.scrape();
    expectAlertingGauges(text);
    expect(sample(text, 'xyn_queue_depth', { ...job, status: 'SUCCEEDED' })).toBe(2);
    expect(sample(text, 'xyn_queue_depth', { ...job, status: 'FAILED' })).toBe(1);
    expect(sample(text, 'xyn_queue_depth', { ...job, status: 'CANCELLED' })).toBe(0);
    expect(sample(text, 'xyn_collector_degraded', job)).toBe(0);
    expect(logLine(output)).toMatchObject({ level: 'info', msg: 'tick', outcome: 'ok' });
  });

  it('pushes exact alerting gauges, from the same snapshot, when the terminal counts run over their statement budget', async () => {
    // Each terminal run costs the history part 5 s: far over its 3 s budget.
    await historyReads('PERFORM pg_sleep(5);');
    const started = Date.now();
    const tick = invoke();
    // While the history part is stuck (its snapshot taken), a new ready run is committed. The
    // re-read must not see it: it continues the same transaction, so the same snapshot.
    await waitFor('the tick inside its history part', async () => {
      const rows = await db.query(`SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND backend_xmin IS NOT NULL
        AND position('runs_gated' in query) > 0 AND position($1 in query) > 0`, [db.schema]);
      return rows.length > 0 ? true : undefined;
    }, 10_000);
    await db.query(`INSERT INTO ${db.table} (status, run_at, queued_at) VALUES ('QUEUED', now(), now())`);
    const { output, error, result } = await tick;
    await db.query(`DELETE FROM ${db.table} WHERE id = (SELECT max(id) FROM ${db.table})`);
    expect(error).toBeUndefined();
    expect(result).toMatchObject({ outcome: 'ok' });
    const text = await gateway.scrape();
    expectAlertingGauges(text);
    expect(sample(text, 'xyn_collector_degraded', job)).toBe(1);
    // Missing, not zero: no terminal series at all.
    for (const status of ['SUCCEEDED', 'FAILED', 'CANCELLED']) {
      expect(samples(text, 'xyn_queue_depth', { ...job, status }), status).toEqual([]);
      expect(samples(text, 'xyn_queue_depth_estimated', { ...job, status }), status).toEqual([]);
    }
    const line = logLine(output);
    expect(line).toMatchObject({ level: 'warn', msg: 'tick degraded', outcome: 'ok', missing: ['terminal_counts'], figures: { depth: { QUEUED: 5, RUNNING: 6 } } });
    expect(line.degraded).toMatch(/terminal counts missing: .*statement timeout/);
    // The history part was cut at its budget, not waited out (5 s per terminal run).
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('pushes exact alerting gauges when the history part raises an error', async () => {
    await historyReads(`RAISE EXCEPTION 'history unreadable';`);
    const { output, error } = await invoke();
    expect(error).toBeUndefined();
    const text = await gateway.scrape();
    expectAlertingGauges(text);
    expect(sample(text, 'xyn_collector_degraded', job)).toBe(1);
    expect(samples(text, 'xyn_queue_depth', { ...job, status: 'SUCCEEDED' })).toEqual([]);
    expect(logLine(output).degraded).toMatch(/terminal counts missing: .*history unreadable/);
  });
});
