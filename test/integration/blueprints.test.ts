/**
 * Per-blueprint metrics through the scheduled handler against a real
 * PostgreSQL (real Neon driver, bridge, wire tap) and a real Pushgateway:
 * the counts, the quantiles (hand-computed percentile_cont), the cardinality
 * cap with its pooled "other", and the unconfigured case.
 */

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Bridge } from '../../scripts/bridge/bridge';
import { startExtrasStack, stopExtrasStack } from '../support/extras-stack';
import { invokeCollect } from '../support/lambda';
import type { TestDatabase } from '../support/postgres';
import { sample, samples, type TestPushgateway } from '../support/pushgateway';
import { batchSelects, type WireTap } from '../support/wire';

let db: TestDatabase;
let gateway: TestPushgateway;
let bridge: Bridge;
let tap: WireTap;

beforeAll(async () => {
  ({ db, gateway, bridge, tap } = await startExtrasStack('blueprints'));
});
afterAll(() => stopExtrasStack({ db, gateway, bridge, tap }));
beforeEach(async () => {
  await db.query(`TRUNCATE ${db.table}`);
});

const job = { job: 'xyn_metrics' };
const BLUEPRINT_ENV = {
  BLUEPRINT_COLUMN: 'blueprint',
  RUN_STARTED_COLUMN: 'started_at',
  RUN_FINISHED_COLUMN: 'finished_at',
};

async function invoke(over: Record<string, string | undefined> = {}) {
  const env = {
    DATABASE_URL: tap.url,
    DATABASE_WS_PROXY: bridge.proxy,
    PUSHGATEWAY_URL: gateway.url,
    RUNS_TABLE: db.table,
    ...over,
  };
  const before = tap.queries().length;
  const outcome = await invokeCollect(env);
  return { ...outcome, queries: tap.queries().slice(before) };
}

async function active(blueprint: string, status: 'QUEUED' | 'RUNNING', n: number) {
  await db.query(`INSERT INTO ${db.table} (blueprint, status, run_at) SELECT $1, $2::text::"${db.schema}".run_status, now() FROM generate_series(1, $3::int)`, [blueprint, status, n]);
}

/** Finished runs of the given durations, finished `agoSeconds` before now. */
async function finished(blueprint: string, durations: number[], agoSeconds = 60, status = 'SUCCEEDED') {
  for (const d of durations) {
    await db.query(
      `INSERT INTO ${db.table} (blueprint, status, started_at, finished_at)
       VALUES ($1, $2::text::"${db.schema}".run_status, now() - make_interval(secs => $3::float8 + $4::float8), now() - make_interval(secs => $4::float8))`,
      [blueprint, status, d, agoSeconds],
    );
  }
}

/** Five blueprints with distinct volumes (active + finished in the window). */
async function seedFive() {
  await active('alpha', 'QUEUED', 6); // volume 8
  await active('alpha', 'RUNNING', 2);
  await finished('alpha', [999], 7_200); // outside the window: neither volume nor quantiles
  await active('beta', 'QUEUED', 1); // volume 6
  await active('beta', 'RUNNING', 1);
  await finished('beta', [10, 20, 30], 60);
  await finished('beta', [40], 60, 'FAILED');
  await active('gamma', 'QUEUED', 2); // volume 3
  await finished('gamma', [100]);
  await active('delta', 'RUNNING', 1); // volume 2
  await finished('delta', [200]);
  await finished('epsilon', [300]); // volume 1
  await finished('epsilon', [5_000], 7_200);
}

describe('per-blueprint metrics against PostgreSQL and a Pushgateway', () => {
  it('caps cardinality at K = 2 names + "other", with correct sums and pooled quantiles', async () => {
    await seedFive();
    const { error, output, queries } = await invoke({ ...BLUEPRINT_ENV, BLUEPRINT_TOP_K: '2' });
    expect(error).toBeUndefined();
    const text = await gateway.scrape();

    const count = (blueprint: string, status: string) => sample(text, 'xyn_blueprint_run_count', { ...job, blueprint, status });
    expect([count('alpha', 'QUEUED'), count('alpha', 'RUNNING')]).toEqual([6, 2]);
    expect([count('beta', 'QUEUED'), count('beta', 'RUNNING')]).toEqual([1, 1]);
    // gamma + delta + epsilon
    expect([count('other', 'QUEUED'), count('other', 'RUNNING')]).toEqual([2, 1]);
    expect(samples(text, 'xyn_blueprint_run_count', job)).toHaveLength(6);
    for (const name of ['gamma', 'delta', 'epsilon']) expect(text).not.toContain(`blueprint="${name}"`);

    // The same snapshot as the queue gauges: the per-blueprint counts add up to the depth.
    const queued = samples(text, 'xyn_blueprint_run_count', { ...job, status: 'QUEUED' }).reduce((a, b) => a + b, 0);
    expect(queued).toBe(sample(text, 'xyn_queue_depth', { ...job, status: 'QUEUED' }));

    // percentile_cont by hand: beta [10 20 30 40] (any terminal status), other pooled [100 200 300].
    const q = (blueprint: string, quantile: string) => sample(text, 'xyn_blueprint_duration_seconds', { ...job, blueprint, quantile });
    expect(q('beta', '0.5')).toBeCloseTo(25, 6);
    expect(q('beta', '0.9')).toBeCloseTo(37, 6);
    expect(q('beta', '0.99')).toBeCloseTo(39.7, 6);
    expect(q('other', '0.5')).toBeCloseTo(200, 6);
    expect(q('other', '0.9')).toBeCloseTo(280, 6);
    expect(q('other', '0.99')).toBeCloseTo(298, 6);
    // alpha finished nothing in the window: no quantiles (absent, not NaN).
    expect(samples(text, 'xyn_blueprint_duration_seconds', { ...job, blueprint: 'alpha' })).toEqual([]);
    expect(samples(text, 'xyn_blueprint_duration_seconds', job)).toHaveLength(6);

    expect(JSON.parse(output.trim())).toMatchObject({ outcome: 'ok', figures: { blueprint_labels: 3 } });
    expect(queries).toHaveLength(1);
    // The two time columns also give the flow figures: flow, blueprints, queue.
    expect(batchSelects(queries[0]!)).toHaveLength(3);
    expect(sample(text, 'xyn_runs_finished_in_window', { ...job, status: 'SUCCEEDED' })).toBe(6);
  });

  it('keeps every name when they fit in K, and a blueprint called "other" never takes a named place', async () => {
    await active('other', 'QUEUED', 10);
    await active('alpha', 'QUEUED', 3);
    await active('beta', 'RUNNING', 1);
    await invoke({ ...BLUEPRINT_ENV, BLUEPRINT_TOP_K: '2' });
    const text = await gateway.scrape();
    expect(sample(text, 'xyn_blueprint_run_count', { ...job, blueprint: 'alpha', status: 'QUEUED' })).toBe(3);
    expect(sample(text, 'xyn_blueprint_run_count', { ...job, blueprint: 'beta', status: 'RUNNING' })).toBe(1);
    expect(sample(text, 'xyn_blueprint_run_count', { ...job, blueprint: 'other', status: 'QUEUED' })).toBe(10);

    await invoke({ ...BLUEPRINT_ENV }); // default K = 20: alpha, beta and the real "other", each with both statuses
    const all = await gateway.scrape();
    expect(all.match(/xyn_blueprint_run_count\{/g)).toHaveLength(6);
    expect(sample(all, 'xyn_blueprint_run_count', { ...job, blueprint: 'beta', status: 'QUEUED' })).toBe(0);
  });

  it('honours BLUEPRINT_WINDOW_SECONDS', async () => {
    await finished('alpha', [1], 30);
    await finished('alpha', [1_000], 600);
    await invoke({ ...BLUEPRINT_ENV, BLUEPRINT_WINDOW_SECONDS: '300' });
    const text = await gateway.scrape();
    expect(sample(text, 'xyn_blueprint_duration_seconds', { ...job, blueprint: 'alpha', quantile: '0.99' })).toBeCloseTo(1, 6);
  });

  it('without BLUEPRINT_COLUMN: no blueprint metric and the batch holds the queue snapshot alone', async () => {
    await seedFive();
    const { error, output, queries } = await invoke();
    expect(error).toBeUndefined();
    const text = await gateway.scrape();
    expect(text).not.toContain('xyn_blueprint_');
    expect(sample(text, 'xyn_queue_depth', { ...job, status: 'QUEUED' })).toBe(9);
    expect(JSON.parse(output.trim()).figures).not.toHaveProperty('blueprint_labels');
    expect(queries).toHaveLength(1);
    expect(batchSelects(queries[0]!)).toHaveLength(1);
    expect(queries[0]).not.toContain('finished_at');
  });

  it('needs all three columns, and says which one is missing', async () => {
    const { error, queries } = await invoke({ BLUEPRINT_COLUMN: 'blueprint', RUN_STARTED_COLUMN: 'started_at' });
    expect(String(error)).toMatch(/RUN_FINISHED_COLUMN is not set; per-blueprint metrics need all of/);
    expect(queries).toHaveLength(0);
  });
});
