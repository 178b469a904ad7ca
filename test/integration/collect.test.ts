/**
 * The collector core against the real services: PostgreSQL through the real
 * Neon driver and the bridge, a real Pushgateway, the handler invoked as Lambda
 * does (a scheduled event and a context).
 */

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startBridge, type Bridge } from '../../scripts/bridge/bridge';
import { invokeCollect } from '../support/lambda';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { sample, samples, startPushgateway, type TestPushgateway } from '../support/pushgateway';

let db: TestDatabase;
let gateway: TestPushgateway;
let bridge: Bridge;

beforeAll(async () => {
  db = await createTestDatabase('collect');
  gateway = await startPushgateway();
  bridge = await startBridge();
});
afterAll(async () => {
  await bridge?.close();
  await gateway?.stop();
  await db?.close();
});
beforeEach(async () => {
  await db.query(`TRUNCATE ${db.table}`);
});

function env(over: Record<string, string | undefined> = {}) {
  return {
    DATABASE_URL: db.url,
    DATABASE_WS_PROXY: bridge.proxy,
    PUSHGATEWAY_URL: gateway.url,
    PUSHGATEWAY_JOB: 'xyn_metrics',
    RUNS_TABLE: db.table,
    ...over,
  };
}

async function invoke(over: Record<string, string | undefined> = {}) {
  return invokeCollect(env(over));
}

/** A known queue: every gauge has a distinct, hand-computed answer. */
async function seedKnownQueue() {
  await db.query(`
    INSERT INTO ${db.table} (status, run_at, queued_at, lease_expires_at) VALUES
      -- ready: 3 (run_at past, or no run_at); oldest queued 600 s ago
      ('QUEUED',    now() - interval '1 minute', now() - interval '600 seconds', NULL),
      ('QUEUED',    now() - interval '5 seconds', now() - interval '30 seconds', NULL),
      ('QUEUED',    NULL,                          now() - interval '60 seconds', NULL),
      -- future: 2
      ('QUEUED',    now() + interval '1 hour',   now() - interval '7200 seconds', NULL),
      ('QUEUED',    now() + interval '1 day',    now(),                           NULL),
      -- running: 2 expired, 3 active, 1 without a lease (counted in neither)
      ('RUNNING',   now(), now(), now() - interval '10 seconds'),
      ('RUNNING',   now(), now(), now() - interval '1 hour'),
      ('RUNNING',   now(), now(), now() + interval '30 seconds'),
      ('RUNNING',   now(), now(), now() + interval '1 minute'),
      ('RUNNING',   now(), now(), now() + interval '2 minutes'),
      ('RUNNING',   now(), now(), NULL),
      ('SUCCEEDED', now(), now(), NULL),
      ('SUCCEEDED', now(), now(), NULL),
      ('SUCCEEDED', now(), now(), NULL),
      ('SUCCEEDED', now(), now(), NULL),
      ('FAILED',    now(), now(), NULL)`);
}

const job = { job: 'xyn_metrics' };

describe('collect (scheduled Lambda) against PostgreSQL and a Pushgateway', () => {
  it('pushes the right value for every gauge and logs one JSON line', async () => {
    await seedKnownQueue();
    const { output, result, error } = await invoke();
    expect(error).toBeUndefined();
    expect(result).toMatchObject({ outcome: 'ok' });

    const text = await gateway.scrape();
    expect(sample(text, 'xyn_queue_depth', { ...job, status: 'QUEUED' })).toBe(5);
    expect(sample(text, 'xyn_queue_depth', { ...job, status: 'RUNNING' })).toBe(6);
    expect(sample(text, 'xyn_queue_depth', { ...job, status: 'SUCCEEDED' })).toBe(4);
    expect(sample(text, 'xyn_queue_depth', { ...job, status: 'FAILED' })).toBe(1);
    expect(sample(text, 'xyn_queue_depth', { ...job, status: 'CANCELLED' })).toBe(0);
    expect(sample(text, 'xyn_queue_ready_depth', job)).toBe(3);
    expect(sample(text, 'xyn_queue_future_depth', job)).toBe(2);
    const oldest = sample(text, 'xyn_queue_oldest_ready_seconds', job);
    expect(oldest).toBeGreaterThanOrEqual(600);
    expect(oldest).toBeLessThan(620);
    expect(sample(text, 'xyn_running_with_expired_lease', job)).toBe(2);
    expect(sample(text, 'xyn_running_with_active_lease', job)).toBe(3);
    expect(sample(text, 'xyn_collector_up', job)).toBe(1);
    expect(sample(text, 'xyn_collector_duration_seconds', job)).toBeGreaterThan(0);

    const lines = output.trim().split('\n');
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]!);
    expect(line).toMatchObject({
      level: 'info',
      outcome: 'ok',
      figures: { ready: 3, future: 2, expired_leases: 2, active_leases: 3, depth: { QUEUED: 5, RUNNING: 6 } },
    });
    expect(line.pushed_to).toBe(`${gateway.url}/metrics/job/xyn_metrics`);
  });

  it('keeps depth{QUEUED} == ready + future in the pushed group', async () => {
    await db.query(`INSERT INTO ${db.table} (status, run_at, queued_at)
      SELECT 'QUEUED', now() + (g % 7 - 3) * interval '1 minute', now() - g * interval '1 second' FROM generate_series(1, 500) g`);
    await invoke();
    const text = await gateway.scrape();
    const depth = sample(text, 'xyn_queue_depth', { ...job, status: 'QUEUED' });
    expect(depth).toBe(500);
    expect(sample(text, 'xyn_queue_ready_depth', job) + sample(text, 'xyn_queue_future_depth', job)).toBe(depth);
  });

  it('reads 0 for a status that empties instead of dropping the series', async () => {
    await db.query(`INSERT INTO ${db.table} (status) VALUES ('FAILED'), ('FAILED')`);
    await invoke();
    expect(sample(await gateway.scrape(), 'xyn_queue_depth', { ...job, status: 'FAILED' })).toBe(2);
    await db.query(`DELETE FROM ${db.table} WHERE status = 'FAILED'`);
    await invoke();
    expect(sample(await gateway.scrape(), 'xyn_queue_depth', { ...job, status: 'FAILED' })).toBe(0);
  });

  it('reports an empty queue as zeros with oldest age 0', async () => {
    await invoke();
    const text = await gateway.scrape();
    for (const name of ['xyn_queue_ready_depth', 'xyn_queue_future_depth', 'xyn_queue_oldest_ready_seconds', 'xyn_running_with_expired_lease', 'xyn_running_with_active_lease']) {
      expect(sample(text, name, job), name).toBe(0);
    }
    expect(samples(text, 'xyn_queue_depth', job)).toEqual([0, 0, 0, 0, 0]);
  });

  it('replaces the group: a second push removes what only the first had', async () => {
    // A plain-text status column reports the statuses present; one that disappears must vanish.
    const textTable = `${db.schema}.runs_text`;
    await db.query(`CREATE TABLE ${textTable} (status text, run_at timestamptz, queued_at timestamptz, lease_expires_at timestamptz)`);
    await db.query(`CREATE INDEX ON ${textTable} (status)`);
    await db.query(`INSERT INTO ${textTable} VALUES ('ARCHIVED', NULL, now(), NULL), ('QUEUED', now(), now(), NULL)`);
    await invoke({ RUNS_TABLE: textTable });
    expect(sample(await gateway.scrape(), 'xyn_queue_depth', { ...job, status: 'ARCHIVED' })).toBe(1);

    await db.query(`DELETE FROM ${textTable} WHERE status = 'ARCHIVED'`);
    await invoke({ RUNS_TABLE: textTable });
    const text = await gateway.scrape();
    expect(samples(text, 'xyn_queue_depth', { ...job, status: 'ARCHIVED' })).toEqual([]);
    expect(sample(text, 'xyn_queue_depth', { ...job, status: 'QUEUED' })).toBe(1);
    expect(sample(text, 'xyn_queue_depth', { ...job, status: 'RUNNING' })).toBe(0);
  });

  it('pushes to one group with static grouping labels, never a per-invocation one', async () => {
    await invoke({ PUSHGATEWAY_JOB: 'xyn_grouped', PUSHGATEWAY_GROUPING: 'env=test,region=local' });
    await invoke({ PUSHGATEWAY_JOB: 'xyn_grouped', PUSHGATEWAY_GROUPING: 'env=test,region=local' });
    const text = await gateway.scrape();
    expect(samples(text, 'xyn_collector_up', { job: 'xyn_grouped' })).toHaveLength(1);
    expect(sample(text, 'xyn_collector_up', { job: 'xyn_grouped', env: 'test', region: 'local' })).toBe(1);
  });

  it('when the database is down: pushes xyn_collector_up 0 alone, fails the invocation, leaks no credentials', async () => {
    await seedKnownQueue();
    await invoke();
    expect(sample(await gateway.scrape(), 'xyn_queue_ready_depth', job)).toBe(3);

    const password = 'Sup3r-Secret-DB-pass';
    const downUrl = `postgresql://postgres:${password}@127.0.0.1:1/postgres`;
    const { output, error } = await invoke({ DATABASE_URL: downUrl, PUSHGATEWAY_URL: gateway.url.replace('http://', 'http://pusher:Gw-Secret-99@') });
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/database 127\.0\.0\.1: .*(ECONNREFUSED|connect|closed)/i);
    expect((error as Error).message.split('\n')).toHaveLength(1);

    const text = await gateway.scrape();
    expect(sample(text, 'xyn_collector_up', job)).toBe(0);
    for (const name of ['xyn_queue_depth', 'xyn_queue_ready_depth', 'xyn_queue_future_depth', 'xyn_queue_oldest_ready_seconds', 'xyn_running_with_expired_lease', 'xyn_running_with_active_lease']) {
      expect(samples(text, name, job), name).toEqual([]);
    }

    const everything = `${output}\n${(error as Error).message}\n${(error as Error).stack}`;
    expect(everything).not.toContain(password);
    expect(everything).not.toContain('Gw-Secret-99');
    const line = JSON.parse(output.trim().split('\n').at(-1)!);
    expect(line).toMatchObject({ level: 'error', outcome: 'db_failed' });

    // The next healthy tick restores everything.
    await invoke();
    expect(sample(await gateway.scrape(), 'xyn_queue_ready_depth', job)).toBe(3);
  });
});
