/**
 * Worker liveness through the scheduled handler against a real PostgreSQL
 * (through the real Neon driver, the bridge and a wire tap) and a real
 * Pushgateway: the count, the TTL on the database clock, and the unconfigured
 * case, where the batch on the wire is exactly the queue snapshot alone.
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
let heartbeats: string;

beforeAll(async () => {
  ({ db, gateway, bridge, tap } = await startExtrasStack('workers'));
  heartbeats = `${db.schema}.worker_heartbeats`;
  // An append-only heartbeat log, several rows per worker, indexed on the timestamp as the docs advise.
  await db.query(`CREATE TABLE ${heartbeats} (worker text, seen_at timestamptz NOT NULL)`);
  await db.query(`CREATE INDEX ON ${heartbeats} (seen_at)`);
});
afterAll(() => stopExtrasStack({ db, gateway, bridge, tap }));
beforeEach(async () => {
  await db.query(`TRUNCATE ${heartbeats}`);
});

const job = { job: 'xyn_metrics' };
const HEARTBEAT_ENV = {
  HEARTBEAT_TABLE: '',
  HEARTBEAT_WORKER_COLUMN: 'worker',
  HEARTBEAT_AT_COLUMN: 'seen_at',
  HEARTBEAT_TTL_SECONDS: '30',
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

describe('xyn_workers_alive against PostgreSQL and a Pushgateway', () => {
  it('counts distinct workers whose last heartbeat is within the TTL, by the database clock', async () => {
    await db.query(`INSERT INTO ${heartbeats} VALUES
      ('w1', now()), ('w1', now() - interval '5 seconds'), ('w1', now() - interval '2 hours'),
      ('w2', now() - interval '20 seconds'),
      ('w3', now() - interval '31 seconds'),          -- just past the TTL
      ('w4', now() - interval '1 day'),
      (NULL, now())                                    -- no worker id: not a worker`);
    const { error, output, queries } = await invoke({ ...HEARTBEAT_ENV, HEARTBEAT_TABLE: heartbeats });
    expect(error).toBeUndefined();

    const text = await gateway.scrape();
    expect(sample(text, 'xyn_workers_alive', job)).toBe(2);
    // One number: no label names a worker.
    expect(text).not.toMatch(/xyn_workers_alive\{[^}]*worker/);
    expect(JSON.parse(output.trim())).toMatchObject({ outcome: 'ok', figures: { workers_alive: 2 } });

    // Still one round trip: the heartbeat SELECT rides in the tick's one batch.
    expect(queries).toHaveLength(1);
    const selects = batchSelects(queries[0]!);
    expect(selects).toHaveLength(2);
    // The extras come first, the queue snapshot last.
    expect(selects[0]).toContain(`FROM "${db.schema}"."worker_heartbeats"`);
    expect(selects[0]).toContain(`"seen_at" >= now() - interval '30 seconds'`);
    expect(selects[1]).toContain('terminal_statuses');
  });

  it('reads 0 when no worker is alive (present, not absent)', async () => {
    await db.query(`INSERT INTO ${heartbeats} VALUES ('w1', now() - interval '1 hour')`);
    await invoke({ ...HEARTBEAT_ENV, HEARTBEAT_TABLE: heartbeats });
    expect(sample(await gateway.scrape(), 'xyn_workers_alive', job)).toBe(0);
  });

  it('without HEARTBEAT_TABLE: the metric is absent and the batch holds the queue snapshot alone', async () => {
    await db.query(`INSERT INTO ${heartbeats} VALUES ('w1', now())`);
    await invoke({ ...HEARTBEAT_ENV, HEARTBEAT_TABLE: heartbeats });
    expect(sample(await gateway.scrape(), 'xyn_workers_alive', job)).toBe(1);

    const { error, output, queries } = await invoke();
    expect(error).toBeUndefined();
    const text = await gateway.scrape();
    // PUT replaced the group: the series is gone, the queue gauges are there.
    expect(samples(text, 'xyn_workers_alive', job)).toEqual([]);
    expect(text).not.toContain('xyn_workers_alive');
    expect(sample(text, 'xyn_collector_up', job)).toBe(1);
    expect(JSON.parse(output.trim()).figures).not.toHaveProperty('workers_alive');

    expect(queries).toHaveLength(1);
    const selects = batchSelects(queries[0]!);
    expect(selects).toHaveLength(1);
    expect(queries[0]).not.toContain('heartbeat');
  });

  it('degrades the tick, naming the table, when the heartbeat table is missing: the queue gauges are still pushed', async () => {
    const { error, output } = await invoke({ ...HEARTBEAT_ENV, HEARTBEAT_TABLE: `${db.schema}.no_such_table` });
    expect(error).toBeUndefined();
    const text = await gateway.scrape();
    expect(sample(text, 'xyn_collector_up', job)).toBe(1);
    expect(sample(text, 'xyn_collector_degraded', job)).toBe(1);
    expect(samples(text, 'xyn_workers_alive', job)).toEqual([]);
    const line = JSON.parse(output.trim()) as { level: string; degraded: string };
    expect(line.level).toBe('warn');
    expect(line.degraded).toMatch(/workers alive \(HEARTBEAT_TABLE\) missing: .*relation "[^"]*no_such_table" does not exist/);
  });

  it('refuses a half-configured or unsafe heartbeat setting before any I/O, naming the variable', async () => {
    const before = tap.queries().length;
    const stray = await invoke({ HEARTBEAT_TTL_SECONDS: '30' });
    expect(String(stray.error)).toMatch(/HEARTBEAT_TTL_SECONDS is set but HEARTBEAT_TABLE is not/);
    const unsafe = await invoke({ HEARTBEAT_TABLE: heartbeats, HEARTBEAT_AT_COLUMN: 'seen_at; DROP TABLE x' });
    expect(String(unsafe.error)).toMatch(/HEARTBEAT_AT_COLUMN must be a column name/);
    expect(tap.queries().length).toBe(before);
  });
});
