/**
 * Security against the real services:
 * - every fault of the fault suites again, with a recognisable database
 *   password and Pushgateway token / basic-auth password configured: none of
 *   their forms appears in any output (log lines, thrown message and stack, the
 *   gateway's own data);
 * - TLS: Neon hosts keep the driver's secure defaults; the https Pushgateway
 *   path checks certificates and sends the credentials;
 * - the statement runs READ ONLY with its own statement timeout;
 * - docs/least-privilege.sql: least-privilege.test.ts (on every major of the
 *   version matrix).
 * The packaged IAM role (its log groups and its SSM parameters only) is checked
 * in deploy-template.test.ts.
 */

import { Client } from '@neondatabase/serverless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config/parse';
import { driverSettings, openDatabase } from '../../lib/source/connection';
import { deadlineIn } from '../../lib/core/deadline';
import { queueSnapshotSql, snapshotBatch } from '../../lib/source/sql';
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
      const { sql } = snapshotBatch([`INSERT INTO "${ctx.db.schema}".reads DEFAULT VALUES`], { budgetMs: 5_000, lockTimeoutMs: 1_000 });
      const { error } = await session.batch(sql, deadline);
      expect(String(error)).toMatch(/cannot execute INSERT in a read-only transaction/);
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

  it('the batch is exactly: BEGIN READ ONLY, its own timeouts, the SELECT under its budget, COMMIT', () => {
    const { sql } = snapshotBatch([queueSnapshotSql({ table: { schema: undefined, name: 'runs', sql: '"runs"', display: 'runs' }, estimateAbove: undefined })], {
      budgetMs: 1234,
      lockTimeoutMs: 567,
    });
    const statements = sql.split(';\n');
    expect(statements[0]).toBe('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    expect(statements).toContain('SET LOCAL statement_timeout = 1234');
    expect(statements).toContain('SET LOCAL lock_timeout = 567');
    expect(statements.at(-1)).toBe('COMMIT');
    // The SELECT, and the one before it that gives it its share of the budget.
    expect(statements.filter((s) => /^\s*(WITH|SELECT)\b/.test(s))).toHaveLength(2);
    expect(statements.filter((s) => /^SELECT set_config\('statement_timeout', greatest\(1, 1234 - /.test(s))).toHaveLength(1);
  });
});

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
