/**
 * Extras degrade a tick, never blind it: against a real PostgreSQL (Neon
 * driver, bridge, wire tap) and a real Pushgateway, an extra whose table is
 * locked by another session, or missing, is absent from the tick while every
 * alerting gauge is pushed, exact, with xyn_collector_degraded 1 and the log
 * line naming the extra; the extras the batch had not reached are re-read.
 * An error a second try cannot fix in the queue snapshot itself (a missing
 * RUNS_TABLE) fails the tick at once, with no second round trip.
 */

import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Bridge } from '../../scripts/bridge/bridge';
import { startExtrasStack, stopExtrasStack } from '../support/extras-stack';
import { expectKnownAlertingGauges, seedKnownQueue, waitFor } from '../support/faults';
import { invokeCollect } from '../support/lambda';
import { adminClient, type TestDatabase } from '../support/postgres';
import { sample, samples, type TestPushgateway } from '../support/pushgateway';
import type { WireTap } from '../support/wire';

let db: TestDatabase;
let gateway: TestPushgateway;
let bridge: Bridge;
let tap: WireTap;
let heartbeats: string;

const JOB = 'xyn_metrics';
const job = { job: JOB };

beforeAll(async () => {
  ({ db, gateway, bridge, tap } = await startExtrasStack('degrade'));
  heartbeats = `${db.schema}.heartbeats`;
  await db.query(`CREATE TABLE ${heartbeats} (worker_id text, heartbeat_at timestamptz)`);
  await db.query(`INSERT INTO ${heartbeats} VALUES ('w1', now() + interval '1 hour')`);
  await seedKnownQueue(db);
  // For the flow and blueprint extras: one run finished a minute ago.
  await db.query(`UPDATE ${db.table} SET started_at = now() - interval '90 seconds', finished_at = now() - interval '60 seconds' WHERE status = 'FAILED'`);
});
afterAll(() => stopExtrasStack({ db, gateway, bridge, tap }));

/** Every extra: flow before the heartbeat in the batch, blueprints after it. */
const EXTRAS = {
  RUN_STARTED_COLUMN: 'started_at',
  RUN_FINISHED_COLUMN: 'finished_at',
  BLUEPRINT_COLUMN: 'blueprint',
  DB_LOCK_TIMEOUT_MS: '500',
};

async function invoke(over: Record<string, string | undefined>) {
  const before = tap.queries().length;
  const run = await invokeCollect({ DATABASE_URL: tap.url, DATABASE_WS_PROXY: bridge.proxy, PUSHGATEWAY_URL: gateway.url, PUSHGATEWAY_JOB: JOB, RUNS_TABLE: db.table, ...over });
  const lines = run.output.trim().split('\n');
  expect(lines, run.output).toHaveLength(1);
  return { ...run, line: JSON.parse(lines[0]!) as Record<string, unknown>, queries: tap.queries().slice(before), text: await gateway.scrape() };
}

/** The extras that were not the one failing: read, in the batch or in the re-read. */
function expectOtherExtras(text: string): void {
  expect(sample(text, 'xyn_runs_finished_in_window', { ...job, status: 'FAILED' })).toBe(1);
  expect(sample(text, 'xyn_runs_started_in_window', job)).toBe(1);
  expect(samples(text, 'xyn_blueprint_run_count', { ...job, blueprint: 'default', status: 'QUEUED' })).toEqual([5]);
}

describe('an extra that cannot be read degrades the tick', () => {
  it('(the control) all extras read, in one round trip', async () => {
    const { error, text, queries, line } = await invoke({ ...EXTRAS, HEARTBEAT_TABLE: heartbeats });
    expect(error).toBeUndefined();
    expect(queries).toHaveLength(1);
    expect(line).toMatchObject({ level: 'info', msg: 'tick' });
    expect(sample(text, 'xyn_workers_alive', job)).toBe(1);
    expect(sample(text, 'xyn_collector_degraded', job)).toBe(0);
    expectOtherExtras(text);
  });

  it('HEARTBEAT_TABLE locked by another session (ACCESS EXCLUSIVE): every alerting gauge pushed, the heartbeat absent and named', async () => {
    const locker: pg.Client = await adminClient();
    try {
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE ${heartbeats} IN ACCESS EXCLUSIVE MODE`);
      const { error, result, text, queries, line } = await invoke({ ...EXTRAS, HEARTBEAT_TABLE: heartbeats });
      expect(error).toBeUndefined();
      expect(result).toMatchObject({ outcome: 'ok' });
      expectKnownAlertingGauges(text, JOB);
      expect(sample(text, 'xyn_collector_degraded', job)).toBe(1);
      expect(samples(text, 'xyn_workers_alive', job)).toEqual([]);
      expectOtherExtras(text);
      expect(line).toMatchObject({ level: 'warn', msg: 'tick degraded', outcome: 'ok', missing: ['heartbeat', 'terminal_counts'] });
      expect(line.degraded).toMatch(/^workers alive \(HEARTBEAT_TABLE\) missing: database .*lock timeout/);
      // The batch, then the re-read of the alerting figures and the blueprints it had not reached.
      expect(queries).toHaveLength(2);
      expect(queries[1]).toMatch(/^ROLLBACK TO SAVEPOINT/);
      expect(queries[1]).not.toContain('heartbeat');
      expect(queries[1]).toContain('blueprint_counts');
    } finally {
      await locker.query('ROLLBACK').catch(() => {});
      await locker.end();
    }
  });

  it('HEARTBEAT_TABLE missing: degraded, not failed, and the log says which table', async () => {
    const { error, text, line } = await invoke({ ...EXTRAS, HEARTBEAT_TABLE: `${db.schema}.no_such_table` });
    expect(error).toBeUndefined();
    expectKnownAlertingGauges(text, JOB);
    expect(samples(text, 'xyn_workers_alive', job)).toEqual([]);
    expectOtherExtras(text);
    expect(line).toMatchObject({ msg: 'tick degraded', missing: ['heartbeat', 'terminal_counts'] });
    expect(line.degraded).toMatch(/HEARTBEAT_TABLE\) missing: .*relation "[^"]*no_such_table" does not exist/);
  });

  it('a flow column that does not exist: the flow absent, the rest read', async () => {
    const { error, text, line } = await invoke({ ...EXTRAS, RUN_FINISHED_COLUMN: 'no_such_column', BLUEPRINT_COLUMN: undefined, HEARTBEAT_TABLE: heartbeats });
    expect(error).toBeUndefined();
    expectKnownAlertingGauges(text, JOB);
    expect(text).not.toMatch(/^xyn_runs_/m);
    expect(sample(text, 'xyn_workers_alive', job)).toBe(1);
    expect(line).toMatchObject({ missing: ['flow', 'terminal_counts'] });
    expect(line.degraded).toMatch(/^flow \(RUN_STARTED_COLUMN, RUN_FINISHED_COLUMN\) missing: .*column .*no_such_column.* does not exist/);
  });
});

describe('the queue snapshot itself', () => {
  it('a RUNS_TABLE that does not exist fails the tick at once: no second round trip for what a retry cannot fix', async () => {
    const { error, text, queries, line } = await invoke({ RUNS_TABLE: `${db.schema}.no_such_runs` });
    expect(String(error)).toMatch(/relation "[^"]*no_such_runs" does not exist/);
    expect(queries).toHaveLength(1);
    expect(line).toMatchObject({ level: 'error', outcome: 'db_failed' });
    expect(sample(text, 'xyn_collector_up', job)).toBe(0);
  });

  it('while the runs table itself is locked, the re-read is tried, and the tick fails only when the alerting figures cannot be read', async () => {
    const locker: pg.Client = await adminClient();
    try {
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE ${db.table} IN ACCESS EXCLUSIVE MODE`);
      const { error, queries, line } = await invoke({ DB_LOCK_TIMEOUT_MS: '300' });
      expect(String(error)).toMatch(/lock timeout/);
      expect(queries).toHaveLength(2);
      expect(line).toMatchObject({ outcome: 'db_failed' });
    } finally {
      await locker.query('ROLLBACK').catch(() => {});
      await locker.end();
    }
    // And once the lock is gone, the next tick is whole.
    await waitFor('a whole tick', async () => ((await invoke({})).line.msg === 'tick' ? true : undefined), 15_000);
  });
});
