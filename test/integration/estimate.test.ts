/**
 * STATUS_ESTIMATE_ABOVE against a real PostgreSQL: a terminal status whose
 * estimated count is above the threshold comes from the planner's estimate
 * (flagged as such), one at or below it is counted exactly, and QUEUED,
 * RUNNING and every alerting gauge stay exact even when they are above the
 * threshold and the statistics are stale.
 */

import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type Bridge } from '../../scripts/bridge/bridge';
import { parseConfig } from '../../lib/config/parse';
import type { LogRecord } from '../../lib/core/log';
import type { QueueSnapshot } from '../../lib/source/snapshot';
import { runTick } from '../../lib/runtime/tick';
import { checkExactness, snapshotDifferences, type PlanNode } from '../../scripts/bench/db';
import { adminClient, createTestDatabase, type TestDatabase } from '../support/postgres';

const THRESHOLD = 5_000;
/** An estimate may be off by this fraction of the true count (ANALYZE samples rows). */
const TOLERANCE = 0.1;

let db: TestDatabase;
let bridge: Bridge;
let client: pg.Client;

/** What the planner itself estimates for `status = <status>`. */
async function plannerRows(status: string): Promise<number> {
  const rows = await db.query(`EXPLAIN (FORMAT JSON) SELECT * FROM ${db.table} WHERE status = '${status}'`);
  return ((rows[0]!['QUERY PLAN'] as [{ Plan: PlanNode }])[0].Plan['Plan Rows'] as number);
}

function status(snapshot: QueueSnapshot, name: string) {
  const found = snapshot.statuses.find((s) => s.status === name);
  if (!found) throw new Error(`no status ${name} in ${JSON.stringify(snapshot.statuses)}`);
  return found;
}

beforeAll(async () => {
  db = await createTestDatabase('estimate');
  client = await adminClient();
  bridge = await startBridge();
  // Statistics change only when this test says so.
  await db.query(`ALTER TABLE ${db.table} SET (autovacuum_enabled = false)`);
  await db.query(`
    INSERT INTO ${db.table} (status, run_at, queued_at, lease_expires_at)
    SELECT u.status::"${db.schema}".run_status, u.run_at, u.queued_at, u.lease_expires_at FROM (
    SELECT 'SUCCEEDED' AS status, now() - i * interval '1 minute', now() - i * interval '1 minute', NULL::timestamptz FROM generate_series(1, 60000) i
    UNION ALL
    SELECT 'FAILED', now() - i * interval '1 minute', now() - i * interval '1 minute', NULL FROM generate_series(1, 3000) i
    UNION ALL -- QUEUED, above the threshold: 5500 ready, 500 ready without run_at, 2000 future
    SELECT 'QUEUED', now() - i * interval '1 second', now() - i * interval '1 second' - interval '1 minute', NULL FROM generate_series(1, 5500) i
    UNION ALL
    SELECT 'QUEUED', NULL, now() - i * interval '1 second', NULL FROM generate_series(1, 500) i
    UNION ALL
    SELECT 'QUEUED', now() + i * interval '1 minute', now(), NULL FROM generate_series(1, 2000) i
    UNION ALL -- RUNNING, above the threshold: 1000 expired leases, 5000 active
    SELECT 'RUNNING', now(), now(), now() - i * interval '1 second' FROM generate_series(1, 1000) i
    UNION ALL
    SELECT 'RUNNING', now(), now(), now() + interval '1 hour' FROM generate_series(1, 5000) i
    ) u(status, run_at, queued_at, lease_expires_at)`);
  await db.query(`VACUUM (ANALYZE) ${db.table}`);
  // After the statistics were taken: the history and the queue move on.
  await db.query(`DELETE FROM ${db.table} WHERE id IN (SELECT id FROM ${db.table} WHERE status = 'SUCCEEDED' ORDER BY id LIMIT 2400)`);
  await db.query(`DELETE FROM ${db.table} WHERE id IN (SELECT id FROM ${db.table} WHERE status = 'FAILED' ORDER BY id LIMIT 100)`);
  await db.query(`UPDATE ${db.table} SET status = 'RUNNING', lease_expires_at = now() - interval '5 seconds'
                  WHERE id IN (SELECT id FROM ${db.table} WHERE status = 'QUEUED' AND run_at IS NULL ORDER BY id LIMIT 300)`);
});
afterAll(async () => {
  await bridge?.close();
  await client?.end();
  await db?.close();
});

describe('STATUS_ESTIMATE_ABOVE', () => {
  it('estimates only a terminal status above the threshold; everything else equals a brute-force count', async () => {
    const { collector, reference } = await checkExactness(client, db.table, THRESHOLD);
    expect(snapshotDifferences(collector, reference, 57_600 * TOLERANCE)).toEqual([]);

    // The queue moved after ANALYZE; QUEUED and RUNNING (both above the threshold) are still exact.
    expect(status(collector, 'QUEUED')).toEqual({ status: 'QUEUED', count: 7_700, estimated: false });
    expect(status(collector, 'RUNNING')).toEqual({ status: 'RUNNING', count: 6_300, estimated: false });
    // Every alerting gauge exact.
    expect(collector.ready).toBe(5_700);
    expect(collector.future).toBe(2_000);
    expect(collector.expiredLeases).toBe(1_300);
    expect(collector.activeLeases).toBe(5_000);
    expect(collector.oldestReadySeconds).toBe(reference.oldestReadySeconds);
    // Below the threshold: exact, and current.
    expect(status(collector, 'FAILED')).toEqual({ status: 'FAILED', count: 2_900, estimated: false });
    // An empty status is 0, exact.
    expect(status(collector, 'CANCELLED')).toEqual({ status: 'CANCELLED', count: 0, estimated: false });

    // Above the threshold: the planner's own estimate, not a count (the 2400 deleted rows do not show).
    const succeeded = status(collector, 'SUCCEEDED');
    expect(succeeded.estimated).toBe(true);
    expect(Math.abs(succeeded.count - (await plannerRows('SUCCEEDED')))).toBeLessThanOrEqual(1);
    expect(succeeded.count).not.toBe(57_600);
    expect(Math.abs(succeeded.count - 57_600)).toBeLessThanOrEqual(57_600 * TOLERANCE);
  });

  it('without the setting every status is counted exactly', async () => {
    const { collector } = await checkExactness(client, db.table, undefined);
    expect(collector.statuses).toEqual([
      { status: 'CANCELLED', count: 0, estimated: false },
      { status: 'FAILED', count: 2_900, estimated: false },
      { status: 'QUEUED', count: 7_700, estimated: false },
      { status: 'RUNNING', count: 6_300, estimated: false },
      { status: 'SUCCEEDED', count: 57_600, estimated: false },
    ]);
  });

  it('a tick through the Neon driver reports the flag in its snapshot and names the estimated statuses in its log line', async () => {
    const config = parseConfig(
      {
        DATABASE_URL: db.url,
        DATABASE_WS_PROXY: bridge.proxy,
        PUSH_DRY_RUN: 'true',
        RUNS_TABLE: db.table,
        STATUS_ESTIMATE_ABOVE: String(THRESHOLD),
      },
      { requireSink: false },
    );
    const records: LogRecord[] = [];
    const result = await runTick(config, { log: (r) => records.push(r) });
    expect(result.snapshot!.statuses.filter((s) => s.estimated).map((s) => s.status)).toEqual(['SUCCEEDED']);
    expect(status(result.snapshot!, 'QUEUED').count).toBe(7_700);
    expect(result.snapshot!.expiredLeases).toBe(1_300);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ outcome: 'ok', estimated_statuses: ['SUCCEEDED'] });
    // The pushed text carries the estimate as a plain depth sample.
    expect(result.exposition).toMatch(new RegExp(`xyn_queue_depth\\{status="SUCCEEDED"\\} ${status(result.snapshot!, 'SUCCEEDED').count}\\n`));
    // ... and marks it so a dashboard can tell: 1 for the estimate, 0 for every count.
    expect(result.exposition).toContain('xyn_queue_depth_estimated{status="SUCCEEDED"} 1\n');
    for (const counted of ['CANCELLED', 'FAILED', 'QUEUED', 'RUNNING']) {
      expect(result.exposition).toContain(`xyn_queue_depth_estimated{status="${counted}"} 0\n`);
    }
  });
});
