/**
 * Data the seed never had, through the real handler into a real Pushgateway:
 * statuses outside the seed's set (a text column with odd values, an enum with
 * extra labels), NULL timestamps, queued_at in the future, a very large queue.
 * Every figure is exact.
 */

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { baseEnv, expectOk, invokeCollect, startStack, type Stack } from '../support/faults';
import { sample, samples } from '../support/pushgateway';

let stack: Stack;
const job = 'xyn_faults_data';

beforeAll(async () => {
  stack = await startStack('faultdata');
});
afterAll(async () => {
  await stack?.close();
});
beforeEach(async () => {
  await stack.db.query(`TRUNCATE ${stack.db.table}`);
});

async function tick(over: Record<string, string | undefined> = {}): Promise<string> {
  const run = await invokeCollect({ ...baseEnv(stack, job), ...over });
  expectOk(run);
  return stack.gateway.scrape();
}

function depth(text: string, status: string): number {
  return sample(text, 'xyn_queue_depth', { job, status });
}

function expectConsistent(text: string): void {
  expect(sample(text, 'xyn_queue_ready_depth', { job }) + sample(text, 'xyn_queue_future_depth', { job })).toBe(depth(text, 'QUEUED'));
  expect(sample(text, 'xyn_queue_oldest_ready_seconds', { job })).toBeGreaterThanOrEqual(0);
}

describe('data outside the seed: exact figures', () => {
  it('a text status column with odd values reports each one exactly; QUEUED/RUNNING match exactly', async () => {
    const table = `${stack.db.schema}.runs_text`;
    await stack.db.query(`CREATE TABLE ${table} (status text, run_at timestamptz, queued_at timestamptz, lease_expires_at timestamptz)`);
    await stack.db.query(`CREATE INDEX ON ${table} (status)`);
    await stack.db.query(`INSERT INTO ${table} (status, run_at, queued_at) VALUES
      ('QUEUED', NULL, now() - interval '10 seconds'),
      ('queued', NULL, now() - interval '999 seconds'),   -- not QUEUED: case matters
      ('PAUSED', NULL, now()), ('PAUSED', NULL, now()), ('PAUSED', NULL, now()),
      ('Ärger ✓', NULL, now()),
      ('with "quote" and \\ backslash', NULL, now()),
      ('', NULL, now()),                                   -- served as status="" (Prometheus: no status label)
      (E'two\nlines', NULL, now()),
      ('RUNNING', NULL, now()),
      (NULL, NULL, now())`);
    const text = await tick({ RUNS_TABLE: table });
    expect(depth(text, 'QUEUED')).toBe(1);
    expect(depth(text, 'RUNNING')).toBe(1);
    expect(depth(text, 'queued')).toBe(1);
    expect(depth(text, 'PAUSED')).toBe(3);
    expect(depth(text, 'Ärger ✓')).toBe(1);
    expect(depth(text, 'with \\"quote\\" and \\\\ backslash')).toBe(1);
    expect(depth(text, '')).toBe(1);
    expect(depth(text, 'two\\nlines')).toBe(1);
    // The lower-case 'queued' run is not ready work: oldest is the QUEUED one.
    expect(sample(text, 'xyn_queue_ready_depth', { job })).toBe(1);
    const oldest = sample(text, 'xyn_queue_oldest_ready_seconds', { job });
    expect(oldest).toBeGreaterThanOrEqual(10);
    expect(oldest).toBeLessThan(60);
    // NULL statuses belong to no status; nothing else appears.
    expect(samples(text, 'xyn_queue_depth', { job })).toHaveLength(8);
    expectConsistent(text);
  });

  it('an enum with labels the seed does not have reports them, 0 where empty', async () => {
    const type = `"${stack.db.schema}".run_status`;
    await stack.db.query(`ALTER TYPE ${type} ADD VALUE IF NOT EXISTS 'PAUSED'`);
    await stack.db.query(`ALTER TYPE ${type} ADD VALUE IF NOT EXISTS 'ARCHIVED' BEFORE 'QUEUED'`);
    await stack.db.query(`INSERT INTO ${stack.db.table} (status) VALUES ('PAUSED'), ('PAUSED'), ('QUEUED')`);
    const text = await tick();
    expect(depth(text, 'PAUSED')).toBe(2);
    expect(depth(text, 'ARCHIVED')).toBe(0);
    expect(depth(text, 'QUEUED')).toBe(1);
    for (const status of ['RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED']) expect(depth(text, status), status).toBe(0);
    expect(samples(text, 'xyn_queue_depth', { job })).toHaveLength(7);
  });

  it('NULL run_at is ready, NULL queued_at does not count for age, NULL lease is neither expired nor active', async () => {
    await stack.db.query(`INSERT INTO ${stack.db.table} (status, run_at, queued_at, lease_expires_at) VALUES
      ('QUEUED', NULL, now() - interval '100 seconds', NULL),
      ('QUEUED', now() - interval '1 hour', NULL, NULL),
      ('QUEUED', NULL, NULL, NULL),
      ('QUEUED', now() + interval '1 hour', NULL, NULL),
      ('RUNNING', NULL, NULL, NULL),
      ('RUNNING', NULL, NULL, now() - interval '1 second'),
      ('RUNNING', NULL, NULL, now() + interval '1 minute')`);
    let text = await tick();
    expect(sample(text, 'xyn_queue_ready_depth', { job })).toBe(3);
    expect(sample(text, 'xyn_queue_future_depth', { job })).toBe(1);
    const oldest = sample(text, 'xyn_queue_oldest_ready_seconds', { job });
    expect(oldest).toBeGreaterThanOrEqual(100);
    expect(oldest).toBeLessThan(150);
    expect(depth(text, 'RUNNING')).toBe(3);
    expect(sample(text, 'xyn_running_with_expired_lease', { job })).toBe(1);
    expect(sample(text, 'xyn_running_with_active_lease', { job })).toBe(1);
    expectConsistent(text);

    // Only NULL queued_at left among the ready runs: age 0, not NaN, not absent.
    await stack.db.query(`DELETE FROM ${stack.db.table} WHERE queued_at IS NOT NULL`);
    text = await tick();
    expect(sample(text, 'xyn_queue_ready_depth', { job })).toBe(2);
    expect(sample(text, 'xyn_queue_oldest_ready_seconds', { job })).toBe(0);
  });

  it('queued_at in the future (clock skew) never gives a negative age', async () => {
    await stack.db.query(`INSERT INTO ${stack.db.table} (status, run_at, queued_at) VALUES
      ('QUEUED', NULL, now() + interval '1 hour'),
      ('QUEUED', now() - interval '1 minute', now() + interval '5 minutes')`);
    let text = await tick();
    expect(sample(text, 'xyn_queue_ready_depth', { job })).toBe(2);
    expect(sample(text, 'xyn_queue_oldest_ready_seconds', { job })).toBe(0);

    // With one run queued in the past, that one is the oldest.
    await stack.db.query(`INSERT INTO ${stack.db.table} (status, run_at, queued_at) VALUES ('QUEUED', NULL, now() - interval '50 seconds')`);
    text = await tick();
    const oldest = sample(text, 'xyn_queue_oldest_ready_seconds', { job });
    expect(oldest).toBeGreaterThanOrEqual(50);
    expect(oldest).toBeLessThan(100);
  });

  it('a very large queue: 200 000 QUEUED and 1 000 RUNNING, exact', async () => {
    await stack.db.query(`INSERT INTO ${stack.db.table} (status, run_at, queued_at)
      SELECT 'QUEUED',
             CASE WHEN g % 4 = 0 THEN now() + interval '1 hour' WHEN g % 4 = 1 THEN NULL ELSE now() - interval '1 minute' END,
             now() - g * interval '1 millisecond'
      FROM generate_series(1, 200000) g`);
    await stack.db.query(`INSERT INTO ${stack.db.table} (status, lease_expires_at)
      SELECT 'RUNNING', CASE WHEN g <= 7 THEN now() - interval '1 minute' ELSE now() + interval '1 minute' END FROM generate_series(1, 1000) g`);
    await stack.db.query(`ANALYZE ${stack.db.table}`);
    const started = Date.now();
    const text = await tick();
    const ms = Date.now() - started;
    expect(depth(text, 'QUEUED')).toBe(200_000);
    expect(sample(text, 'xyn_queue_future_depth', { job })).toBe(50_000);
    expect(sample(text, 'xyn_queue_ready_depth', { job })).toBe(150_000);
    expect(depth(text, 'RUNNING')).toBe(1_000);
    expect(sample(text, 'xyn_running_with_expired_lease', { job })).toBe(7);
    expect(sample(text, 'xyn_running_with_active_lease', { job })).toBe(993);
    const oldest = sample(text, 'xyn_queue_oldest_ready_seconds', { job });
    expect(oldest).toBeGreaterThanOrEqual(199);
    expect(oldest).toBeLessThan(260);
    expectConsistent(text);
    console.log(`large queue: one tick over 201 000 runs took ${ms} ms`);
  });
});
