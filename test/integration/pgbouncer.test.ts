/**
 * Ticks through PgBouncer in transaction pooling mode (Debian's pgbouncer, as
 * Supabase's pooler, Neon's -pooler hosts and many self-hosted setups run it)
 * in front of the test server: the real handler over TCP (node-postgres,
 * DATABASE_URL to 127.0.0.1 with no sslmode, i.e. libpq's prefer; PgBouncer
 * has no client TLS, so it is plain text on loopback), a real Pushgateway, and
 * a wire tap between the collector and PgBouncer that counts round trips.
 *
 * - a tick: every gauge right, the whole batch in one round trip;
 * - a degraded tick: the second round trip (ROLLBACK TO SAVEPOINT, the
 *   alerting figures again) reaches the same server transaction, so it reads
 *   the same snapshot; transaction pooling would hand another server
 *   connection to a client only between transactions.
 */

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseEnv, expectKnownQueue, expectOk, invokeCollect, seedKnownQueue, startStack, waitFor, type Stack } from '../support/faults';
import { startPgBouncer, type PgBouncer } from '../support/pgbouncer';
import { ADMIN_URL } from '../support/postgres';
import { sample, samples } from '../support/pushgateway';
import { startWireTap, type WireTap } from '../support/wire';

let stack: Stack;
let bouncer: PgBouncer;
let tap: WireTap;
const job = 'xyn_pgbouncer';

beforeAll(async () => {
  stack = await startStack('bouncer');
  await seedKnownQueue(stack.db);
  bouncer = await startPgBouncer({ serverUrl: ADMIN_URL, users: [stack.reader.name, new URL(ADMIN_URL).username], poolMode: 'transaction', poolSize: 1 });
  // Collector -> tap -> PgBouncer -> PostgreSQL.
  tap = await startWireTap(bouncer.via(stack.reader.url));
});
afterAll(async () => {
  await tap?.close();
  await bouncer?.stop();
  await stack?.close();
});

/** A tick over TCP through the tap and PgBouncer; `queries` are the 'Q' messages it sent. */
async function tick(over: Record<string, string | undefined> = {}) {
  const before = tap.queries().length;
  const run = await invokeCollect({ ...baseEnv(stack, job), DATABASE_URL: tap.url, DATABASE_WS_PROXY: undefined, ...over });
  return { ...run, queries: tap.queries().slice(before) };
}

describe('through PgBouncer in transaction pooling mode', () => {
  it('is PgBouncer in transaction mode, in front of the test server', async () => {
    const console = await bouncer.console(ADMIN_URL);
    try {
      const config = (await console.query<{ key: string; value: string }>('SHOW CONFIG')).rows;
      expect(config.find((row) => row.key === 'pool_mode')?.value).toBe('transaction');
      expect(config.find((row) => row.key === 'auth_type')?.value).toBe('scram-sha-256');
    } finally {
      await console.end();
    }
    expect(new URL(tap.url).port).not.toBe(new URL(ADMIN_URL).port);
    expect(bouncer.version).toMatch(/^PgBouncer \d+\.\d+/);
  });

  it('a tick: every gauge right, the whole batch in one round trip', async () => {
    const run = await tick();
    expectOk(run);
    expectKnownQueue(await stack.gateway.scrape(), job);
    expect(run.queries, run.queries.join('\n---\n')).toHaveLength(1);
    expect(run.queries[0]).toMatch(/^BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n/);
    expect(run.queries[0]).toMatch(/;\nCOMMIT$/);
    // What the collector logs: no plain-text warning for a loopback host.
    expect(JSON.parse(run.output.trim())).toMatchObject({ level: 'info', outcome: 'ok' });
  });

  it('a client idle on its PgBouncer connection does not hold the one server connection: the tick still gets it', async () => {
    // In session mode this client would keep the pool's only server connection until it disconnects.
    const idle = new pg.Client({ connectionString: bouncer.via(stack.reader.url) });
    await idle.connect();
    try {
      expect((await idle.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      const run = await tick({ TICK_TIMEOUT_MS: '8000' });
      expectOk(run);
      expect(run.queries).toHaveLength(1);
      expect(JSON.parse(run.output.trim())).toMatchObject({ figures: { ready: 3, future: 2, expired_leases: 2, active_leases: 3, depth: { QUEUED: 5, RUNNING: 6 } } });
    } finally {
      await idle.end();
    }
  });

  it('a degraded tick: its second round trip stays in its transaction, the same snapshot', async () => {
    const s = `"${stack.db.schema}"`;
    // As in degraded.test.ts: the history part (terminal runs) goes through a function that sleeps 5 s a row.
    await stack.db.query(`
      CREATE FUNCTION ${s}.history_gate(id bigint) RETURNS boolean LANGUAGE plpgsql VOLATILE COST 1000000
        AS $$ BEGIN PERFORM pg_sleep(5); RETURN true; END $$;
      CREATE VIEW ${s}.runs_gated AS
        SELECT * FROM ${s}.runs WHERE status IN ('QUEUED', 'RUNNING')
        UNION ALL
        SELECT * FROM ${s}.runs WHERE status NOT IN ('QUEUED', 'RUNNING') AND ${s}.history_gate(id);
      GRANT SELECT ON ${s}.runs_gated TO ${stack.reader.name};
      GRANT EXECUTE ON FUNCTION ${s}.history_gate(bigint) TO ${stack.reader.name};`);
    const started = Date.now();
    const running = tick({ RUNS_TABLE: `${stack.db.schema}.runs_gated`, DB_STATEMENT_TIMEOUT_MS: '4000' });
    // While the history part is stuck (its snapshot taken), a new ready run is committed.
    await waitFor(
      'the tick inside its history part',
      async () => {
        const rows = await stack.db.query(
          `SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND backend_xmin IS NOT NULL AND usename = $1 AND position('runs_gated' in query) > 0`,
          [stack.reader.name],
        );
        return rows.length > 0 ? true : undefined;
      },
      10_000,
    );
    await stack.db.query(`INSERT INTO ${stack.db.table} (status, run_at, queued_at) VALUES ('QUEUED', now(), now())`);
    const run = await running;
    await stack.db.query(`DELETE FROM ${stack.db.table} WHERE id = (SELECT max(id) FROM ${stack.db.table})`);
    expectOk(run);
    expect(Date.now() - started).toBeLessThan(10_000);

    // Two round trips: the batch, then the re-read that continues its transaction.
    expect(run.queries).toHaveLength(2);
    expect(run.queries[1]).toMatch(/^ROLLBACK TO SAVEPOINT before_reads;\n/);
    // The re-read saw the snapshot of the first round trip: not the run committed in between (5, not 6).
    const text = await stack.gateway.scrape();
    expect(sample(text, 'xyn_collector_degraded', { job })).toBe(1);
    expect(sample(text, 'xyn_queue_depth', { job, status: 'QUEUED' })).toBe(5);
    expect(sample(text, 'xyn_queue_ready_depth', { job })).toBe(3);
    expect(sample(text, 'xyn_running_with_expired_lease', { job })).toBe(2);
    expect(samples(text, 'xyn_queue_depth', { job, status: 'SUCCEEDED' })).toEqual([]);
    const line = JSON.parse(run.output.trim()) as { level: string; degraded: string };
    expect(line.level).toBe('warn');
    expect(line.degraded).toMatch(/terminal counts missing: .*statement timeout/);
  });
});
