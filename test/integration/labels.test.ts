/**
 * Bounded labels from the data, through the scheduled handler against a real
 * PostgreSQL and both sinks (a real Pushgateway, a recording remote-write
 * receiver): a text status column holding 500 distinct statuses of 3,000
 * characters (the case that once gave 502 series, 3,047-character lines and
 * a receiver's 400) gives QUEUED, RUNNING, the top STATUS_TOP_K others and
 * "other", each value cut to 128 characters, the sums intact, and a write
 * within Mimir's default limits; blueprint names are cut the same way.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type Bridge } from '../../scripts/bridge/bridge';
import { invokeCollect } from '../support/lambda';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { samples, startPushgateway, type TestPushgateway } from '../support/pushgateway';
import { decodeWriteRequest, mimirLimitViolations, startReceiver, type TestReceiver } from '../support/remote-write';

let db: TestDatabase;
let gateway: TestPushgateway;
let bridge: Bridge;
let receiver: TestReceiver;
let table: string;

const job = { job: 'xyn_metrics' };
const STATUSES = 500;
/** Status i (0-based) has 1 + i % 10 runs, each finished a minute ago. */
const runsOf = (i: number) => 1 + (i % 10);

beforeAll(async () => {
  [db, gateway, bridge, receiver] = await Promise.all([createTestDatabase('labels'), startPushgateway(), startBridge(), startReceiver()]);
  table = `${db.schema}.runs_text`;
  await db.query(`CREATE TABLE ${table} (status text, blueprint text, run_at timestamptz, queued_at timestamptz, lease_expires_at timestamptz, started_at timestamptz, finished_at timestamptz)`);
  await db.query(`CREATE INDEX ON ${table} (status)`);
  await db.query(`CREATE INDEX ON ${table} (finished_at)`);
  await db.query(`CREATE INDEX ON ${table} (started_at)`);
  // 3,000 characters each, distinct in their first four: 'S000sss…', 'S001sss…', …
  await db.query(`
    INSERT INTO ${table} (status, blueprint, queued_at, started_at, finished_at)
    SELECT 'S' || lpad(i::text, 3, '0') || repeat('s', 2996), repeat('b', 2999) || (i % 3), now() - interval '2 minutes', now() - interval '90 seconds', now() - interval '1 minute'
    FROM generate_series(0, ${STATUSES - 1}) i, generate_series(1, 10) r
    WHERE r <= 1 + i % 10`);
  await db.query(`INSERT INTO ${table} (status, blueprint, queued_at, lease_expires_at) VALUES
    ('QUEUED', 'q', now() - interval '5 seconds', NULL), ('RUNNING', 'r', now(), now() + interval '1 minute')`);
  await db.query(`ANALYZE ${table}`);
});
afterAll(async () => {
  await receiver?.stop();
  await bridge?.close();
  await gateway?.stop();
  await db?.close();
});

const terminalRuns = Array.from({ length: STATUSES }, (_, i) => runsOf(i)).reduce((a, b) => a + b, 0);

describe('a 500-status text column of 3,000-character statuses', () => {
  it('stays within the cap and the length bound, on the Pushgateway, in the log line and in a remote write Mimir would accept', async () => {
    const { error, output } = await invokeCollect({
      DATABASE_URL: db.url,
      DATABASE_WS_PROXY: bridge.proxy,
      PUSHGATEWAY_URL: gateway.url,
      REMOTE_WRITE_URL: receiver.url,
      REMOTE_WRITE_LABELS: 'env=prod,region=eu-west-1',
      RUNS_TABLE: table,
      RUN_STARTED_COLUMN: 'started_at',
      RUN_FINISHED_COLUMN: 'finished_at',
      BLUEPRINT_COLUMN: 'blueprint',
    });
    expect(error).toBeUndefined();
    const text = await gateway.scrape();

    // The cap: QUEUED, RUNNING, the top 20 by count, "other".
    const depth = [...text.matchAll(/^xyn_queue_depth\{[^}]*status="([^"]*)"[^}]*\} (\S+)$/gm)].map((m) => ({ status: m[1]!, count: Number(m[2]) }));
    expect(depth).toHaveLength(23);
    expect(depth.map((d) => d.status)).toEqual(expect.arrayContaining(['QUEUED', 'RUNNING', 'other']));
    expect(depth.reduce((n, d) => n + d.count, 0)).toBe(terminalRuns + 2);
    // The top 20 all have 10 runs (i % 10 == 9), ties broken by name: S009, S019, … S199.
    const named = depth.filter((d) => !['QUEUED', 'RUNNING', 'other'].includes(d.status));
    expect(named.every((d) => d.count === 10)).toBe(true);
    expect(named.map((d) => d.status.slice(0, 4)).sort()).toEqual(Array.from({ length: 20 }, (_, k) => `S${String(10 * k + 9).padStart(3, '0')}`));

    const finished = [...text.matchAll(/^xyn_runs_finished_in_window\{[^}]*status="([^"]*)"[^}]*\} (\S+)$/gm)].map((m) => ({ status: m[1]!, count: Number(m[2]) }));
    // The runtime's three terminal statuses (0 here), the top 20 and "other".
    expect(finished).toHaveLength(24);
    expect(finished.reduce((n, d) => n + d.count, 0)).toBe(terminalRuns);

    // The length bound, on every label value and every line.
    for (const m of text.matchAll(/="((?:[^"\\]|\\.)*)"/g)) expect(m[1]!.length).toBeLessThanOrEqual(128);
    const longest = Math.max(...text.split('\n').filter((l) => !l.startsWith('#')).map((l) => l.length));
    expect(longest).toBeLessThan(300);
    const blueprints = samples(text, 'xyn_blueprint_run_count', job);
    expect(blueprints.length).toBeGreaterThan(0);

    // The log line is bounded the same way.
    expect(output.length).toBeLessThan(12_000);
    const line = JSON.parse(output.trim()) as { figures: { depth: Record<string, number> } };
    expect(Object.keys(line.figures.depth)).toHaveLength(23);
    for (const status of Object.keys(line.figures.depth)) expect(status.length).toBeLessThanOrEqual(128);

    // What the receiver got breaks none of Mimir's default limits.
    expect(receiver.requests).toHaveLength(1);
    const request = decodeWriteRequest(receiver.requests[0]!.body);
    expect(request.series.length).toBeGreaterThan(50);
    expect(mimirLimitViolations(request)).toEqual([]);
  });

  it('STATUS_TOP_K moves the cap', async () => {
    const { error } = await invokeCollect({ DATABASE_URL: db.url, DATABASE_WS_PROXY: bridge.proxy, PUSHGATEWAY_URL: gateway.url, RUNS_TABLE: table, STATUS_TOP_K: '3' });
    expect(error).toBeUndefined();
    expect(samples(await gateway.scrape(), 'xyn_queue_depth', job)).toHaveLength(6);
  });
});

describe('the Mimir check itself', () => {
  it('finds what Mimir would refuse', () => {
    const series = (labels: Record<string, string>) => ({ labels, labelOrder: Object.keys(labels), samples: [] });
    const wide = Object.fromEntries(Array.from({ length: 31 }, (_, i) => [`l${i}`, 'v']));
    expect(
      mimirLimitViolations({
        series: [series({ __name__: 'm', status: 'x'.repeat(2049) }), series({ __name__: 'n', ['k'.repeat(1025)]: 'v' }), series({ __name__: 'w', ...wide })],
        metadata: [{ type: 1, family: 'm', help: 'h'.repeat(1025) }],
      }),
    ).toEqual(['m: status value of 2049 bytes', 'n: label name of 1025 bytes', 'w: 32 labels', 'm: metadata of 1025 bytes']);
  });
});
