/**
 * docs/least-privilege.sql against a real PostgreSQL, on every major of the
 * version matrix (vitest.config.ts), run as the script's users run it:
 * - by a superuser, and by a CREATEROLE admin that is not one (what a managed
 *   database gives you: an RDS or Aurora master user, a Neon project owner);
 * - it says (NOTICE) what it could not do as such an admin, per major, and
 *   stops with a hint where the result would not be least privilege;
 * - the collector (the real handler) then runs as the role it made, with every
 *   feature, over both transports, and every gauge is right;
 * - the role can do nothing else.
 */

import { spawnSync } from 'node:child_process';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseEnv, expectKnownQueue, expectOk, invokeCollect, seedKnownQueue, startStack } from '../support/faults';
import { ADMIN_URL, adminClient, createTestDatabase, type TestDatabase } from '../support/postgres';

const hex = Math.random().toString(16).slice(2, 8);

/** psql -f docs/least-privilege.sql as `url`'s user: exit status and everything it printed (its NOTICEs go to stderr). */
function leastPrivilege(url: string, vars: Record<string, string>): { status: number | null; output: string } {
  const args = [url, '-X', '-q', '-v', 'ON_ERROR_STOP=1', ...Object.entries(vars).flatMap(([k, v]) => ['-v', `${k}=${v}`]), '-f', 'docs/least-privilege.sql'];
  const run = spawnSync('psql', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (run.error) throw new Error(`psql -f docs/least-privilege.sql did not run (psql comes with postgresql-client): ${run.error.message}`);
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

/**
 * Who runs the script: a superuser, and what a managed database gives you (an
 * RDS or Aurora master user, a Neon project owner): a role with CREATEROLE and
 * LOGIN, not a superuser, that owns its database and created the schema and
 * table itself (the application's migrations ran as it). The superuser case
 * keeps the table in a schema of its own; the admin's is in public, where most
 * users have it (owned by the bootstrap superuser before PostgreSQL 15, by
 * the database owner from 15 on).
 */
const RUNNERS = [
  { who: 'a superuser', superuser: true },
  { who: 'a CREATEROLE admin that is not a superuser (an RDS master user, a Neon project owner)', superuser: false },
] as const;

for (const { who, superuser } of RUNNERS) {
  describe(`docs/least-privilege.sql run by ${who}`, () => {
    let ctx: Awaited<ReturnType<typeof startStack>>;
    let db: TestDatabase;
    let major: number;
    const tag = `${hex}_${superuser ? 'su' : 'cr'}`;
    const roleName = `xyn_lp_${tag}`;
    const adminName = `xyn_admin_${tag}`;
    const adminPassword = `XynAdmin-${hex}-Pw`;
    const dbName = `xyn_lp_${tag}`;
    const password = `XynLeast-${hex}-Priv`;
    /** Roles of the refusal cases: one with REPLICATION, one the admin did not create. */
    const replicationRole = `xyn_lp_repl_${tag}`;
    const foreignRole = `xyn_lp_foreign_${tag}`;
    const runs: Record<'first' | 'again', { status: number | null; output: string }> = {} as never;

    /** The runner's URL, or any role's, to the test's own database. */
    function urlFor(user?: string, pw?: string): string {
      const url = new URL(ADMIN_URL);
      url.pathname = `/${dbName}`;
      if (user) {
        url.username = user;
        url.password = encodeURIComponent(pw!);
      }
      return url.toString();
    }
    const runnerUrl = () => (superuser ? urlFor() : urlFor(adminName, adminPassword));
    const roleUrl = () => urlFor(roleName, password);

    beforeAll(async () => {
      ctx = await startStack('leastpriv');
      const su = await adminClient();
      try {
        major = Math.floor(Number((await su.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`)).rows[0]!.v) / 10_000);
        if (superuser) {
          await su.query(`CREATE DATABASE ${dbName}`);
        } else {
          await su.query(`CREATE ROLE ${adminName} LOGIN CREATEROLE NOSUPERUSER PASSWORD '${adminPassword}'`);
          await su.query(`CREATE DATABASE ${dbName} OWNER ${adminName}`);
        }
      } finally {
        await su.end();
      }
      db = await createTestDatabase('lp', { url: runnerUrl(), schema: superuser ? `lp_${hex}` : 'public' });
      await seedKnownQueue(db);
      await db.query(`CREATE TABLE "${db.schema}".secrets_elsewhere (v text); INSERT INTO "${db.schema}".secrets_elsewhere VALUES ('x')`);
      await db.query(`CREATE TABLE "${db.schema}".heartbeats (worker_id text, heartbeat_at timestamptz); INSERT INTO "${db.schema}".heartbeats VALUES ('w1', now())`);
      // Once for the runs table, then again for the heartbeat table added later, as the script's header says.
      runs.first = leastPrivilege(runnerUrl(), { role: roleName, password, schema: db.schema, table: 'runs' });
      runs.again = leastPrivilege(runnerUrl(), { role: roleName, existing: '1', schema: db.schema, table: 'runs', heartbeat_table: 'heartbeats' });
    });
    afterAll(async () => {
      await db?.close();
      const su = await adminClient();
      try {
        await su.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
        for (const role of [roleName, replicationRole, foreignRole, adminName]) await su.query(`DROP ROLE IF EXISTS ${role}`);
      } finally {
        await su.end();
      }
      await ctx?.close();
    });

    it('runs to the end, twice (the second time with -v existing=1, adding the heartbeat table), and says what it did and could not do', () => {
      for (const run of [runs.first, runs.again]) {
        expect(run.status, run.output).toBe(0);
        expect(run.output).not.toMatch(/ERROR|WARNING/);
        expect(run.output).toMatch(new RegExp(`NOTICE: +xyn-metrics: role ${roleName} ready: LOGIN, CONNECTION LIMIT 8, no other attribute; sessions read-only`));
      }
      expect(runs.again.output).toMatch(/SELECT on \S*runs, \S*heartbeats/);
      const notSuper = /NOTICE: +xyn-metrics: run by \S+, not a superuser: SUPERUSER, REPLICATION, BYPASSRLS( and CREATEDB)? are left as CREATE ROLE made them/;
      if (superuser) {
        expect(runs.first.output).not.toMatch(notSuper);
      } else {
        const said = notSuper.exec(runs.first.output);
        expect(said, runs.first.output).not.toBeNull();
        // PostgreSQL 16 and later: CREATEDB too, which this admin does not hold.
        expect(said![1] !== undefined).toBe(major >= 16);
        // It owns the database: CONNECT is granted, not left to PUBLIC.
        expect(runs.first.output).not.toMatch(/CONNECT on database \S+ not granted/);
        // Schema public: the bootstrap superuser's before 15 (USAGE through PUBLIC, CREATE too), the database owner's from 15.
        expect(/USAGE on schema public not granted: .* uses it through the USAGE that PUBLIC has on it/.test(runs.first.output)).toBe(major < 15);
        expect(/may CREATE in schema public/.test(runs.first.output)).toBe(major < 15);
      }
    });

    const FEATURES: Record<string, Record<string, string>> = {
      // At the default STATUS_ESTIMATE_ABOVE (100000): the test queue is small, so counted.
      'the queue snapshot': {},
      'exact counts (STATUS_ESTIMATE_ABOVE=off)': { STATUS_ESTIMATE_ABOVE: 'off' },
      'planner estimates (STATUS_ESTIMATE_ABOVE)': { STATUS_ESTIMATE_ABOVE: '1' },
      'worker liveness (HEARTBEAT_TABLE)': { HEARTBEAT_TABLE: '<schema>.heartbeats' },
      'per-blueprint metrics (BLUEPRINT_COLUMN)': { BLUEPRINT_COLUMN: 'blueprint', RUN_STARTED_COLUMN: 'started_at', RUN_FINISHED_COLUMN: 'finished_at' },
      'flow (RUN_STARTED_COLUMN, RUN_FINISHED_COLUMN)': { RUN_STARTED_COLUMN: 'started_at', RUN_FINISHED_COLUMN: 'finished_at' },
    };
    const featureEnv = (env: Record<string, string>) =>
      Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v.replace('<schema>', db.schema)]));

    for (const [transport, proxy] of [['the Neon driver through the bridge', 'bridge'], ['node-postgres over TCP', undefined]] as const) {
      it(`the collector runs as the role with every feature, over ${transport}: every gauge right`, async () => {
        const all = Object.assign({}, ...Object.values(FEATURES).map(featureEnv)) as Record<string, string>;
        for (const extra of [...Object.values(FEATURES).map(featureEnv), all]) {
          const env: Record<string, string | undefined> = { ...baseEnv(ctx, 'xyn_least'), DATABASE_URL: roleUrl(), RUNS_TABLE: db.table, ...extra };
          if (proxy === undefined) env.DATABASE_WS_PROXY = undefined;
          const run = await invokeCollect(env);
          expectOk(run);
          const scraped = await ctx.gateway.scrape();
          expectKnownQueue(scraped, 'xyn_least');
          if (extra.HEARTBEAT_TABLE) expect(scraped).toMatch(/^xyn_workers_alive\{[^}]*job="xyn_least"[^}]*\} 1$/m);
          if (extra.BLUEPRINT_COLUMN) expect(scraped).toMatch(/^xyn_blueprint_run_count\{[^}]*job="xyn_least"/m);
          if (extra.RUN_STARTED_COLUMN) expect(scraped).toMatch(/^xyn_runs_started_in_window\{[^}]*job="xyn_least"[^}]*\} 0$/m);
          // Every part read: nothing degraded for want of a privilege.
          expect(scraped).toMatch(/^xyn_collector_degraded\{[^}]*job="xyn_least"[^}]*\} 0$/m);
        }
      });
    }

    it('the role can do nothing else: no write, no other table, no DDL, no role attributes', async () => {
      const client = new pg.Client({ connectionString: roleUrl() });
      await client.connect();
      try {
        const s = `"${db.schema}"`;
        // The role's sessions are read-only by default; even a read-write transaction may not write.
        await expect(client.query(`INSERT INTO ${s}.runs (status) VALUES ('QUEUED')`)).rejects.toThrow(/read-only transaction/);
        await client.query('BEGIN READ WRITE');
        await expect(client.query(`INSERT INTO ${s}.runs (status) VALUES ('QUEUED')`)).rejects.toThrow(/permission denied for table runs/);
        await client.query('ROLLBACK');
        await client.query('BEGIN READ WRITE');
        await expect(client.query(`UPDATE ${s}.runs SET status = 'FAILED'`)).rejects.toThrow(/permission denied/);
        await client.query('ROLLBACK');
        // Before 15 schema public lets every role create (the script said so above); its own schema never does.
        if (db.schema !== 'public' || major >= 15) {
          await client.query('BEGIN READ WRITE');
          await expect(client.query(`CREATE TABLE ${s}.t (x int)`)).rejects.toThrow(/permission denied for schema/);
          await client.query('ROLLBACK');
        }
        await expect(client.query(`SELECT * FROM ${s}.secrets_elsewhere`)).rejects.toThrow(/permission denied for table secrets_elsewhere/);
        const attributes = await client.query(
          `SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolinherit, rolconnlimit FROM pg_roles WHERE rolname = current_user`,
        );
        expect(attributes.rows[0]).toEqual({ rolsuper: false, rolcreatedb: false, rolcreaterole: false, rolreplication: false, rolbypassrls: false, rolinherit: false, rolconnlimit: 8 });
        const settings = await client.query(
          `SELECT name, setting FROM pg_settings WHERE name IN ('default_transaction_read_only', 'statement_timeout', 'lock_timeout', 'idle_in_transaction_session_timeout') ORDER BY name`,
        );
        expect(settings.rows).toEqual([
          { name: 'default_transaction_read_only', setting: 'on' },
          { name: 'idle_in_transaction_session_timeout', setting: '30000' },
          { name: 'lock_timeout', setting: '5000' },
          { name: 'statement_timeout', setting: '30000' },
        ]);
        const grants = await client.query(
          `SELECT table_name, privilege_type FROM information_schema.role_table_grants WHERE grantee = current_user ORDER BY 1, 2`,
        );
        expect(grants.rows).toEqual([
          { table_name: 'heartbeats', privilege_type: 'SELECT' },
          { table_name: 'runs', privilege_type: 'SELECT' },
        ]);
      } finally {
        await client.end();
      }
    });

    it('an existing role with REPLICATION: a superuser removes it; a CREATEROLE admin may not, and the script stops naming it, changing nothing', async () => {
      const su = await adminClient();
      try {
        await su.query(`CREATE ROLE ${replicationRole} LOGIN REPLICATION`);
        // From 16 on the admin needs ADMIN OPTION on a role it did not create: given, so that REPLICATION is what stops it.
        if (!superuser && major >= 16) await su.query(`GRANT ${replicationRole} TO ${adminName} WITH ADMIN OPTION`);
        const run = leastPrivilege(runnerUrl(), { role: replicationRole, existing: '1', schema: db.schema, table: 'runs' });
        const after = (await su.query(`SELECT rolreplication, rolconfig FROM pg_roles WHERE rolname = $1`, [replicationRole])).rows[0];
        if (superuser) {
          expect(run.status, run.output).toBe(0);
          expect(after.rolreplication).toBe(false);
        } else {
          expect(run.status, run.output).toBe(3);
          expect(run.output).toContain(`ERROR:  xyn-metrics: ${adminName} may not alter role ${replicationRole}`);
          expect(run.output).toContain(`HINT:  ${replicationRole} has REPLICATION, which ${adminName} may not remove: a superuser must (ALTER ROLE ${replicationRole} NOREPLICATION)`);
          // One transaction: nothing was changed.
          expect(after).toEqual({ rolreplication: true, rolconfig: null });
        }
      } finally {
        await su.end();
      }
    });

    if (!superuser) {
      it('an existing role the admin did not create: altered on 13 to 15; from 16 on the script stops and says how to get ADMIN OPTION', async () => {
        const su = await adminClient();
        try {
          await su.query(`CREATE ROLE ${foreignRole} LOGIN`);
        } finally {
          await su.end();
        }
        const run = leastPrivilege(runnerUrl(), { role: foreignRole, existing: '1', schema: db.schema, table: 'runs' });
        if (major < 16) {
          expect(run.status, run.output).toBe(0);
          expect(run.output).toContain(`role ${foreignRole} ready`);
        } else {
          expect(run.status, run.output).toBe(3);
          expect(run.output).toContain(`ERROR:  xyn-metrics: ${adminName} may not alter role ${foreignRole}: permission denied to alter role`);
          expect(run.output).toContain(`run GRANT ${foreignRole} TO ${adminName} WITH ADMIN OPTION`);
        }
      });
    }
  });
}
