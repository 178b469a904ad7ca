/**
 * The flow figures, the due age and the runs without a lease through the
 * scheduled handler against a real PostgreSQL (real Neon driver, bridge, wire
 * tap) and a real Pushgateway, on a table whose every answer is computed by
 * hand: start and finish times in and out of the window (and ahead of the
 * clock), runs scheduled ahead of when they were queued, NULL leases and NULL
 * times. Each time column works alone; unconfigured, the batch is the queue
 * snapshot alone.
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
  ({ db, gateway, bridge, tap } = await startExtrasStack('flow'));
});
afterAll(() => stopExtrasStack({ db, gateway, bridge, tap }));
beforeEach(async () => {
  await db.query(`TRUNCATE ${db.table}`);
});

const job = { job: 'xyn_metrics' };
const FLOW_ENV = { RUN_STARTED_COLUMN: 'started_at', RUN_FINISHED_COLUMN: 'finished_at' };

async function invoke(over: Record<string, string | undefined> = {}) {
  const env = { DATABASE_URL: tap.url, DATABASE_WS_PROXY: bridge.proxy, PUSHGATEWAY_URL: gateway.url, RUNS_TABLE: db.table, ...over };
  const before = tap.queries().length;
  const outcome = await invokeCollect(env);
  return { ...outcome, queries: tap.queries().slice(before), text: await gateway.scrape() };
}

/**
 * Times in seconds before the insert's now() (negative: ahead of it). The tick
 * runs seconds later, so nothing sits within a minute of the 300 s window's edge.
 */
const ROWS: [status: string, queued: number | null, runAt: number | null, started: number | null, finished: number | null, lease: number | null][] = [
  ['SUCCEEDED', 100, null, 20, 10, null], //    in both windows, wait 80 (due = queued)
  ['SUCCEEDED', 400, 250, 200, 100, null], //   in both, wait 50 (due = run_at, after queued_at)
  ['FAILED', 230, 205, 210, 200, null], //      in both, started before it was due: wait 0
  ['FAILED', 30, null, 25, 5, null], //         in both, wait 5
  ['CANCELLED', 900, null, 800, 500, null], //  finished before the window: neither
  ['SUCCEEDED', 50, null, 40, -3600, null], //  finish ahead of the clock: started only, wait 10
  ['RUNNING', 120, null, 60, null, null], //    started, wait 60, no lease
  ['RUNNING', 1000, 700, 600, null, 10], //     started before the window, lease expired
  ['RUNNING', 90, 90, 30, null, -60], //        started, wait 60, lease active
  ['RUNNING', null, null, 15, null, null], //   started, no due time at all: no wait, no lease
  ['QUEUED', 3600, 120, null, null, null], //   ready: queued an hour ago, due only 120 s ago
  ['QUEUED', 45, null, null, null, null], //    ready, due 45 s ago
  ['QUEUED', 10, -600, null, null, null], //    scheduled ahead: future
];

async function seed(rows = ROWS) {
  const at = (s: number | null) => (s === null ? 'NULL' : `now() - make_interval(secs => ${s})`);
  const values = rows.map(([status, ...times]) => `('${status}', ${times.map(at).join(', ')})`).join(',\n');
  await db.query(`INSERT INTO ${db.table} (status, queued_at, run_at, started_at, finished_at, lease_expires_at) VALUES ${values}`);
}

describe('flow, due age and leases against PostgreSQL and a Pushgateway', () => {
  it('equals the hand-computed truth, in one round trip', async () => {
    await seed();
    const { error, output, queries, text } = await invoke(FLOW_ENV);
    expect(error).toBeUndefined();

    expect(sample(text, 'xyn_flow_window_seconds', job)).toBe(300);
    const finished = (status: string) => sample(text, 'xyn_runs_finished_in_window', { ...job, status });
    expect([finished('SUCCEEDED'), finished('FAILED'), finished('CANCELLED')]).toEqual([2, 2, 0]);
    expect(samples(text, 'xyn_runs_finished_in_window', job)).toHaveLength(3);
    expect(sample(text, 'xyn_runs_started_in_window', job)).toBe(8);
    // percentile_cont over the 7 waits with a due time: [0, 5, 10, 50, 60, 60, 80].
    const wait = (quantile: string) => sample(text, 'xyn_queue_wait_seconds', { ...job, quantile });
    expect(wait('0.5')).toBeCloseTo(50, 6);
    expect(wait('0.9')).toBeCloseTo(68, 6);
    expect(wait('0.99')).toBeCloseTo(78.8, 6);

    // Due against queued: the scheduled run waited 120 s, not an hour.
    const due = sample(text, 'xyn_queue_oldest_due_seconds', job);
    expect(due).toBeGreaterThanOrEqual(120);
    expect(due).toBeLessThan(180);
    expect(sample(text, 'xyn_queue_oldest_ready_seconds', job)).toBeGreaterThanOrEqual(3600);
    expect(sample(text, 'xyn_queue_ready_depth', job)).toBe(2);
    expect(sample(text, 'xyn_queue_future_depth', job)).toBe(1);

    // expired + active + without = depth{RUNNING}
    expect(sample(text, 'xyn_running_with_expired_lease', job)).toBe(1);
    expect(sample(text, 'xyn_running_with_active_lease', job)).toBe(1);
    expect(sample(text, 'xyn_running_without_lease', job)).toBe(2);
    expect(sample(text, 'xyn_queue_depth', { ...job, status: 'RUNNING' })).toBe(4);

    expect(JSON.parse(output.trim())).toMatchObject({
      outcome: 'ok',
      figures: { flow_window_seconds: 300, finished_in_window: { SUCCEEDED: 2, FAILED: 2, CANCELLED: 0 }, started_in_window: 8, running_without_lease: 2 },
    });
    expect(queries).toHaveLength(1);
    const selects = batchSelects(queries[0]!);
    expect(selects).toHaveLength(2);
    expect(selects[0]).toContain('finished_in_window');
  });

  it('agrees with a brute-force count over the whole table', async () => {
    await seed();
    const { text } = await invoke(FLOW_ENV);
    const [truth] = await db.query<{ finished: string; started: string; without: string }>(`
      SELECT count(*) FILTER (WHERE finished_at > now() - interval '300 seconds' AND finished_at <= now() AND status::text NOT IN ('QUEUED', 'RUNNING')) AS finished,
             count(*) FILTER (WHERE started_at > now() - interval '300 seconds' AND started_at <= now()) AS started,
             count(*) FILTER (WHERE status = 'RUNNING' AND lease_expires_at IS NULL) AS without
      FROM ${db.table}`);
    const finished = samples(text, 'xyn_runs_finished_in_window', job).reduce((a, b) => a + b, 0);
    expect([finished, sample(text, 'xyn_runs_started_in_window', job), sample(text, 'xyn_running_without_lease', job)]).toEqual([
      Number(truth!.finished),
      Number(truth!.started),
      Number(truth!.without),
    ]);
  });

  it('each column alone gives its own figures; FLOW_WINDOW_SECONDS moves the window', async () => {
    await seed();
    const finishedOnly = await invoke({ RUN_FINISHED_COLUMN: 'finished_at', FLOW_WINDOW_SECONDS: '600' });
    expect(finishedOnly.error).toBeUndefined();
    expect(sample(finishedOnly.text, 'xyn_runs_finished_in_window', { ...job, status: 'CANCELLED' })).toBe(1);
    expect(sample(finishedOnly.text, 'xyn_flow_window_seconds', job)).toBe(600);
    expect(samples(finishedOnly.text, 'xyn_runs_started_in_window', job)).toEqual([]);
    expect(samples(finishedOnly.text, 'xyn_queue_wait_seconds', job)).toEqual([]);
    expect(finishedOnly.queries[0]).not.toContain('started_at');

    const startedOnly = await invoke({ RUN_STARTED_COLUMN: 'started_at' });
    expect(sample(startedOnly.text, 'xyn_runs_started_in_window', job)).toBe(8);
    expect(samples(startedOnly.text, 'xyn_runs_finished_in_window', job)).toEqual([]);
    expect(startedOnly.queries[0]).not.toContain('finished_at');
  });

  it('with no run started in the window: started 0 and no wait quantiles (absent, not 0)', async () => {
    await seed(ROWS.filter(([, , , started]) => started === null || started > 300));
    const { error, text } = await invoke(FLOW_ENV);
    expect(error).toBeUndefined();
    expect(sample(text, 'xyn_runs_started_in_window', job)).toBe(0);
    expect(samples(text, 'xyn_queue_wait_seconds', job)).toEqual([]);
    expect(samples(text, 'xyn_runs_finished_in_window', job)).toEqual([0, 0, 0]);
  });

  it('without the time columns: no flow series, and the batch holds the queue snapshot alone', async () => {
    await seed();
    const { error, queries, text } = await invoke();
    expect(error).toBeUndefined();
    expect(text).not.toMatch(/^xyn_(runs_|flow_|queue_wait)/m);
    // The always-on figures are there either way.
    expect(sample(text, 'xyn_running_without_lease', job)).toBe(2);
    expect(queries).toHaveLength(1);
    expect(batchSelects(queries[0]!)).toHaveLength(1);
  });
});
