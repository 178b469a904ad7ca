/**
 * Security against the real services:
 * - every fault of the fault suites again, with a recognisable database
 *   password and Pushgateway token / basic-auth password configured: none of
 *   their forms appears in any output (log lines, thrown message and stack, the
 *   gateway's own data);
 * - TLS: Neon hosts keep the driver's secure defaults; the https Pushgateway
 *   path checks certificates and sends the credentials;
 * - the statement runs READ ONLY with its own statement timeout;
 * - docs/least-privilege.sql, run by a superuser and by a CREATEROLE admin that
 *   is not one (what a managed database gives you), makes a role the collector
 *   runs as, which can do nothing else; where the admin may not do something,
 *   the script says so, or stops.
 * The packaged IAM role (its log groups and its SSM parameters only) is checked
 * in deploy-template.test.ts.
 */

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Client } from '@neondatabase/serverless';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config/parse';
import { driverSettings, openDatabase } from '../../lib/source/connection';
import { deadlineIn } from '../../lib/core/deadline';
import { queueSnapshotSql, snapshotBatchSql } from '../../lib/source/sql';
import { CONFIG_CASES, DATABASE_CASES, PUSHGATEWAY_CASES, prepareFaultTables, runFaultCase, type FaultContext } from '../support/fault-cases';
import {
  baseEnv,
  createReaderRole,
  expectCleanFailure,
  expectKnownQueue,
  expectOk,
  invokeCollect,
  seedKnownQueue,
  startStack,
  startSwitchableProxy,
  type Invocation,
  type TestRole,
} from '../support/faults';
import { ADMIN_URL, adminClient, createTestDatabase, type TestDatabase } from '../support/postgres';
import { selfSignedCertificate, startTlsFront, type Certificate } from '../support/tls';

const hex = Math.random().toString(16).slice(2, 8);
/** Recognisable, and with characters that must be percent-encoded in a URL. */
const DB_PASSWORD = `Xyn/Db:Pa55@${hex}#!`;
const TOKEN = `XynT0ken-${hex}-bearer`;
const GW_USER = 'xyn_pusher';
const GW_PASSWORD = `XynGw-Pa55-${hex}`;

const AUTH: Record<'bearer' | 'basic', Record<string, string>> = {
  bearer: { PUSHGATEWAY_TOKEN: TOKEN },
  basic: { PUSHGATEWAY_USERNAME: GW_USER, PUSHGATEWAY_PASSWORD: GW_PASSWORD },
};

/** Every form in which a configured secret could leak. */
function secretForms(env: Record<string, string | undefined>): string[] {
  const secrets: string[] = [];
  const userinfo = /^(?:[a-z][a-z0-9+.-]*:\/\/)?([^:@/]+):([^@/]+)@/i.exec(env.DATABASE_URL ?? '');
  if (userinfo) {
    secrets.push(userinfo[2]!);
    try {
      secrets.push(decodeURIComponent(userinfo[2]!));
    } catch {
      // not percent-encoded
    }
  }
  if (env.PUSHGATEWAY_TOKEN) secrets.push(env.PUSHGATEWAY_TOKEN);
  if (env.PUSHGATEWAY_PASSWORD) {
    secrets.push(env.PUSHGATEWAY_PASSWORD, Buffer.from(`${env.PUSHGATEWAY_USERNAME ?? ''}:${env.PUSHGATEWAY_PASSWORD}`).toString('base64'));
  }
  const forms = secrets.flatMap((s) => [s, encodeURIComponent(s), JSON.stringify(s).slice(1, -1), Buffer.from(s).toString('base64')]);
  // Very short values ("x") occur everywhere by chance; the suite's secrets are long.
  return [...new Set(forms)].filter((s) => s.length >= 6);
}

function everything(runs: Invocation[]): string {
  return runs
    .map((r) => [r.output, r.error instanceof Error ? `${r.error.message}\n${r.error.stack}` : String(r.error ?? ''), JSON.stringify(r.result ?? null)].join('\n'))
    .join('\n');
}

function expectNoSecret(text: string, forms: string[]): void {
  expect(forms.length).toBeGreaterThan(0);
  for (const form of forms) expect(text.includes(form), `output contains a secret form: ${JSON.stringify(form.slice(0, 3))}…`).toBe(false);
}

describe('secrets never appear in any output, whatever fails', () => {
  let ctx: FaultContext;
  let role: TestRole;

  beforeAll(async () => {
    const stack = await startStack('secrets');
    const proxy = await startSwitchableProxy(stack.gateway.url);
    role = await createReaderRole(stack.db, { password: DB_PASSWORD, iterations: 16 });
    const job = 'xyn_secrets';
    ctx = { stack, job, proxy, env: { ...baseEnv(stack, job), DATABASE_URL: role.url, PUSHGATEWAY_URL: proxy.url } };
    await seedKnownQueue(stack.db);
    await prepareFaultTables(ctx);
  });
  afterAll(async () => {
    await role?.drop();
    await ctx?.proxy.close();
    await ctx?.stack.close();
  });

  it('the configured URL really carries the recognisable, percent-encoded password', () => {
    expect(ctx.env.DATABASE_URL).toContain(encodeURIComponent(DB_PASSWORD));
    expect(encodeURIComponent(DB_PASSWORD)).not.toBe(DB_PASSWORD);
  });

  for (const c of DATABASE_CASES) {
    it(`database: ${c.name}`, async () => {
      const env = { ...ctx.env, ...AUTH.basic };
      const runs = await runFaultCase(c, { ...ctx, env });
      const faultEnv = { ...env, ...(c.name === 'wrong password' ? await c.env!(ctx) : {}) };
      const text = everything(runs) + (await ctx.stack.gateway.scrape());
      expectNoSecret(text, [...secretForms(env), ...secretForms(faultEnv)]);
    });
  }

  for (const auth of ['bearer', 'basic'] as const) {
    for (const c of PUSHGATEWAY_CASES) {
      it(`Pushgateway (${auth}): ${c.name}`, async () => {
        const env = { ...ctx.env, ...AUTH[auth] };
        const runs = await runFaultCase(c, { ...ctx, env });
        expectNoSecret(everything(runs) + (await ctx.stack.gateway.scrape()), secretForms(env));
      });
    }
  }

  for (const c of CONFIG_CASES) {
    it(`configuration: ${c.name}`, async () => {
      const env = { ...ctx.env, ...AUTH.bearer, ...c.env };
      const run = await invokeCollect(env);
      expect((run.error as Error).message).toMatch(c.cause);
      expectNoSecret(everything([run]), [...secretForms({ ...ctx.env, ...AUTH.bearer }), ...secretForms(env)]);
    });
  }
});

describe('TLS to Neon hosts', () => {
  const neonUrl = 'postgresql://xyn:pw@ep-quiet-lake-123456.eu-central-1.aws.neon.tech/neondb';

  it('keeps the driver on its secure defaults (wss://, TLS) unless a local proxy is configured', () => {
    const config = parseConfig({ DATABASE_URL: neonUrl, PUSHGATEWAY_URL: 'https://gw.example' });
    expect(config.database.wsProxy).toBeUndefined();
    expect(driverSettings(config.database)).toEqual({});
    // What the driver then does for that host: a secure WebSocket to <host>/v2.
    const client = new Client({ connectionString: neonUrl });
    Object.assign(client.neonConfig, driverSettings(config.database));
    expect(client.neonConfig.useSecureWebSocket).toBe(true);
    const proxy = client.neonConfig.wsProxy as (host: string, port: number) => string;
    expect(proxy('ep-quiet-lake-123456.eu-central-1.aws.neon.tech', 5432)).toBe('ep-quiet-lake-123456.eu-central-1.aws.neon.tech/v2');
  });

  it('switches to plain text only for an explicit local proxy, and never for a Neon host', () => {
    const local = parseConfig({ DATABASE_URL: 'postgresql://u:p@127.0.0.1:5432/db', PUSHGATEWAY_URL: 'https://gw.example', DATABASE_WS_PROXY: '127.0.0.1:8089/v1' });
    expect(driverSettings(local.database)).toMatchObject({ useSecureWebSocket: false, forceDisablePgSSL: true });
    expect(() => parseConfig({ DATABASE_URL: neonUrl, PUSHGATEWAY_URL: 'https://gw.example', DATABASE_WS_PROXY: '127.0.0.1:8089/v1' })).toThrow(
      /DATABASE_WS_PROXY is not for Neon hosts/,
    );
    expect(() => parseConfig({ DATABASE_URL: 'postgresql://u:p@10.1.2.3:5432/db', PUSHGATEWAY_URL: 'https://gw.example', DATABASE_WS_PROXY: '10.1.2.3:8089/v1' })).toThrow(
      /DATABASE_WS_PROXY without a scheme must be a loopback address/,
    );
  });
});

describe('the statement: READ ONLY, with its own timeouts', () => {
  let ctx: Awaited<ReturnType<typeof startStack>>;

  beforeAll(async () => {
    ctx = await startStack('readonly');
    await seedKnownQueue(ctx.db);
    const s = `"${ctx.db.schema}"`;
    // A runs "table" whose reading writes: a SELECT that is only harmless in a read-only transaction.
    await ctx.db.query(`
      CREATE TABLE ${s}.reads (at timestamptz DEFAULT now());
      CREATE FUNCTION ${s}.record_read(s ${s}.run_status) RETURNS ${s}.run_status
        LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN INSERT INTO ${s}.reads DEFAULT VALUES; RETURN s; END $$;
      CREATE VIEW ${s}.runs_writing AS
        SELECT ${s}.record_read(r.status) AS status, r.run_at, r.queued_at, r.lease_expires_at FROM ${s}.runs r;
      CREATE VIEW ${s}.runs_slow AS
        SELECT r.status, r.run_at, r.queued_at, r.lease_expires_at FROM ${s}.runs r, LATERAL (SELECT pg_sleep(0.3)) z;
      GRANT SELECT ON ALL TABLES IN SCHEMA ${s} TO ${ctx.reader.name};
    `);
  });
  afterAll(async () => {
    await ctx?.close();
  });

  it('a tick whose SELECT would write fails with "read-only transaction" and writes nothing', async () => {
    // Outside a read-only transaction the view does write: the check below can fail.
    await ctx.db.query(`SELECT count(*) FROM "${ctx.db.schema}".runs_writing`);
    const written = Number((await ctx.db.query<{ n: string }>(`SELECT count(*) AS n FROM "${ctx.db.schema}".reads`))[0]!.n);
    expect(written).toBeGreaterThan(0);

    const run = await invokeCollect({ ...baseEnv(ctx, 'xyn_readonly'), RUNS_TABLE: `${ctx.db.schema}.runs_writing` });
    expectCleanFailure(run, /cannot execute INSERT in a read-only transaction/, 10_000);
    const after = Number((await ctx.db.query<{ n: string }>(`SELECT count(*) AS n FROM "${ctx.db.schema}".reads`))[0]!.n);
    expect(after).toBe(written);
  });

  it('the batch of lib/source/sql.ts refuses a write slipped into it', async () => {
    // As the superuser: nothing but the transaction mode can stop the write.
    const config = parseConfig({ DATABASE_URL: ctx.db.url, DATABASE_WS_PROXY: ctx.bridge.proxy }, { requireSink: false });
    const deadline = deadlineIn(10_000);
    const session = await openDatabase(config.database, deadline);
    try {
      const sql = snapshotBatchSql([`INSERT INTO "${ctx.db.schema}".reads DEFAULT VALUES`], { statementTimeoutMs: 5_000, lockTimeoutMs: 1_000 });
      await expect(session.batch(sql, deadline)).rejects.toThrow(/cannot execute INSERT in a read-only transaction/);
    } finally {
      await session.close(deadline);
    }
  });

  it('the statement timeout is the batch\'s own: a role without one still stops at DB_STATEMENT_TIMEOUT_MS', async () => {
    await ctx.db.query(`ALTER ROLE ${ctx.reader.name} SET statement_timeout = 0`);
    const started = Date.now();
    const run = await invokeCollect({ ...baseEnv(ctx, 'xyn_readonly'), RUNS_TABLE: `${ctx.db.schema}.runs_slow`, DB_STATEMENT_TIMEOUT_MS: '300' });
    expectCleanFailure(run, /canceling statement due to statement timeout/, 5_000);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('the batch is exactly: BEGIN READ ONLY, its own timeouts, the SELECT, COMMIT', () => {
    const sql = snapshotBatchSql([queueSnapshotSql({ table: { schema: undefined, name: 'runs', sql: '"runs"', display: 'runs' }, estimateAbove: undefined })], {
      statementTimeoutMs: 1234,
      lockTimeoutMs: 567,
    });
    const statements = sql.split(';\n');
    expect(statements[0]).toBe('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    expect(statements).toContain('SET LOCAL statement_timeout = 1234');
    expect(statements).toContain('SET LOCAL lock_timeout = 567');
    expect(statements.at(-1)).toBe('COMMIT');
    expect(statements.filter((s) => /^\s*(WITH|SELECT)\b/.test(s))).toHaveLength(1);
  });
});

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

describe('Pushgateway over https: certificates checked, credentials sent', () => {
  let ctx: Awaited<ReturnType<typeof startStack>>;
  let cert: Certificate;
  let wrongName: Certificate;

  beforeAll(async () => {
    ctx = await startStack('https');
    await seedKnownQueue(ctx.db);
    cert = selfSignedCertificate('IP:127.0.0.1');
    wrongName = selfSignedCertificate('DNS:other.example');
  });
  afterAll(async () => {
    cert?.dispose();
    wrongName?.dispose();
    await ctx?.close();
  });

  const job = 'xyn_https';
  const fast = { PUSH_TIMEOUT_MS: '2000', PUSH_RETRIES: '1', TICK_TIMEOUT_MS: '8000' };

  it('without PUSHGATEWAY_CA_FILE a self-signed gateway is refused with a clear certificate error', async () => {
    const front = await startTlsFront(cert, ctx.gateway.url, `Bearer ${TOKEN}`);
    try {
      const env = { ...baseEnv(ctx, job), ...fast, PUSHGATEWAY_URL: front.url, PUSHGATEWAY_TOKEN: TOKEN };
      const run = await invokeCollect(env);
      expectCleanFailure(run, /push to https:\/\/127\.0\.0\.1:\d+\/metrics\/job\/xyn_https failed after \d attempts?: self[- ]signed certificate/i, 8_000);
      // Nothing reached the gateway, and the token never left: the handshake failed first.
      expect(front.authorizations).toEqual([]);
      expectNoSecret(everything([run]), secretForms(env));
    } finally {
      await front.close();
    }
  });

  it('with PUSHGATEWAY_CA_FILE it pushes, sending the bearer token', async () => {
    const front = await startTlsFront(cert, ctx.gateway.url, `Bearer ${TOKEN}`);
    try {
      const run = await invokeCollect({ ...baseEnv(ctx, job), ...fast, PUSHGATEWAY_URL: front.url, PUSHGATEWAY_TOKEN: TOKEN, PUSHGATEWAY_CA_FILE: cert.certFile });
      expectOk(run);
      expect(front.authorizations).toEqual([`Bearer ${TOKEN}`]);
      expectKnownQueue(await ctx.gateway.scrape(), job);
    } finally {
      await front.close();
    }
  });

  it('with PUSHGATEWAY_CA_FILE it pushes, sending basic auth', async () => {
    const expected = `Basic ${Buffer.from(`${GW_USER}:${GW_PASSWORD}`).toString('base64')}`;
    const front = await startTlsFront(cert, ctx.gateway.url, expected);
    try {
      const run = await invokeCollect({
        ...baseEnv(ctx, job),
        ...fast,
        PUSHGATEWAY_URL: front.url,
        PUSHGATEWAY_USERNAME: GW_USER,
        PUSHGATEWAY_PASSWORD: GW_PASSWORD,
        PUSHGATEWAY_CA_FILE: cert.certFile,
      });
      expectOk(run);
      expect(front.authorizations).toEqual([expected]);
    } finally {
      await front.close();
    }
  });

  it('a wrong token gets HTTP 401: one clear line, not retried, the token nowhere', async () => {
    const front = await startTlsFront(cert, ctx.gateway.url, `Bearer ${TOKEN}`);
    try {
      const env = { ...baseEnv(ctx, job), ...fast, PUSHGATEWAY_URL: front.url, PUSHGATEWAY_TOKEN: `${TOKEN}-stale`, PUSHGATEWAY_CA_FILE: cert.certFile };
      const run = await invokeCollect(env);
      expectCleanFailure(run, /failed after 1 attempt: HTTP 401: unauthorized/, 8_000);
      expect(front.authorizations).toEqual([`Bearer ${TOKEN}-stale`]);
      expectNoSecret(everything([run]), secretForms(env));
    } finally {
      await front.close();
    }
  });

  it('a certificate for another name is refused even with the CA file', async () => {
    const front = await startTlsFront(wrongName, ctx.gateway.url, `Bearer ${TOKEN}`);
    try {
      const run = await invokeCollect({ ...baseEnv(ctx, job), ...fast, PUSHGATEWAY_URL: front.url, PUSHGATEWAY_TOKEN: TOKEN, PUSHGATEWAY_CA_FILE: wrongName.certFile });
      expectCleanFailure(run, /IP: 127\.0\.0\.1 is not in the cert's list|does not match certificate's altnames/, 8_000);
      expect(front.authorizations).toEqual([]);
    } finally {
      await front.close();
    }
  });
});
