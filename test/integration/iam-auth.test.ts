/**
 * RDS IAM database authentication (DATABASE_IAM_AUTH=true) through the real
 * handler, against a server that checks the token as RDS does.
 *
 * The test server, and why it is this one. RDS takes an IAM token as a
 * cleartext password over TLS (its pg_hba sends AuthenticationCleartextPassword
 * to members of rds_iam and verifies the token in a PAM module). The simplest
 * server that checks the same thing is a front that speaks that much of the
 * protocol (test/support/pg-front.ts, startRdsIamFront): it takes the
 * SSLRequest and ends TLS with a test certificate for "localhost" (plain text
 * is refused, as with rds.force_ssl), reads the StartupMessage, asks for a
 * cleartext password and checks the token it gets with verifyRdsToken: the
 * SigV4 query signature recomputed with the test secret key (as the SSM test
 * endpoint recomputes header signatures), service rds-db, the region, the
 * endpoint host:port the client connected to, DBUser = the startup user, the
 * session token, X-Amz-Expires ≤ 900 s and not run out. A refused token gets
 * RDS's answer (SQLSTATE 28000, "PAM authentication failed for user …"). An
 * accepted one: the front opens its own session to a real PostgreSQL as the
 * same user with that user's real password (pg_hba `password`, plain TCP on
 * loopback) and relays byte for byte from AuthenticationOk on, so the batch
 * runs on a real server. Nothing to mock (no SCRAM, no trust auth); what the
 * test trusts is only verifyRdsToken, itself checked against AWS's signer in
 * test/unit/iam-token.test.ts (the collector's tokens are the SDK's, byte for
 * byte in signature), and here against tokens that must fail.
 */

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config/parse';
import { deadlineIn } from '../../lib/core/deadline';
import { collectRegistry } from '../../lib/runtime/collect';
import { openDatabase } from '../../lib/source/connection';
import { rdsAuthToken, tokenSignature } from '../../lib/source/iam-token';
import { startPostgresServer, type PostgresServer } from '../../scripts/support/postgres-server';
import { runsSchemaSql } from '../../scripts/support/runs-schema';
import { invokeCollect, withEnv } from '../support/lambda';
import { startRdsIamFront, verifyRdsToken, type RdsIamFront } from '../support/pg-front';
import { TEST_ACCESS_KEY_ID, TEST_REGION, TEST_SECRET_ACCESS_KEY, TEST_SESSION_TOKEN } from '../../scripts/support/ssm';
import { selfSignedCertificate, type Certificate } from '../support/tls';

const USER = 'xyn_iam';
const CREDENTIALS = { accessKeyId: TEST_ACCESS_KEY_ID, secretAccessKey: TEST_SECRET_ACCESS_KEY, sessionToken: TEST_SESSION_TOKEN };
let server: PostgresServer;
let certificate: Certificate;
let front: RdsIamFront;
const userPassword = `real-${Math.random().toString(16).slice(2, 10)}`;

beforeAll(async () => {
  certificate = selfSignedCertificate('DNS:localhost');
  server = await startPostgresServer({ hba: ['host all all 127.0.0.1/32 password'] });
  const admin = new pg.Client({ connectionString: server.url, ssl: false });
  await admin.connect();
  await admin.query(runsSchemaSql('xyn'));
  await admin.query(`INSERT INTO xyn.runs (status) VALUES ('QUEUED'), ('RUNNING'), ('RUNNING')`);
  await admin.query(`CREATE ROLE ${USER} LOGIN PASSWORD '${userPassword}'; GRANT USAGE ON SCHEMA xyn TO ${USER}; GRANT SELECT ON xyn.runs TO ${USER}`);
  await admin.end();
  front = await startRdsIamFront({ certificate, region: TEST_REGION, credentials: CREDENTIALS, upstreamPort: server.port, passwords: { [USER]: userPassword } });
}, 60_000);

afterAll(async () => {
  await front?.close();
  await server?.stop();
  certificate?.dispose();
});

const databaseUrl = (params = `sslmode=verify-full&sslrootcert=${certificate.certFile}`, user = USER) => `postgresql://${user}@localhost:${front.port}/postgres?${params}`;

/** The function's environment: its role's credentials, the IAM opt-in, a dry run. */
function tick(env: Record<string, string | undefined> = {}) {
  return invokeCollect({
    DATABASE_URL: databaseUrl(),
    DATABASE_IAM_AUTH: 'true',
    AWS_REGION: TEST_REGION,
    AWS_ACCESS_KEY_ID: TEST_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: TEST_SECRET_ACCESS_KEY,
    AWS_SESSION_TOKEN: TEST_SESSION_TOKEN,
    RUNS_TABLE: 'xyn.runs',
    PUSH_DRY_RUN: 'true',
    PUSHGATEWAY_URL: undefined,
    DATABASE_WS_PROXY: undefined,
    ...env,
  });
}

function logLine(output: string): Record<string, unknown> {
  const line = output.split('\n').find((l) => l.startsWith('{"level"'));
  expect(line, output).toBeDefined();
  return JSON.parse(line!) as Record<string, unknown>;
}

/** Everything a run left: output, the thrown message and stack, the result. */
function everything(run: Awaited<ReturnType<typeof tick>>): string {
  const error = run.error instanceof Error ? `${run.error.message}\n${run.error.stack}` : String(run.error ?? '');
  return [run.output, error, JSON.stringify(run.result ?? null)].join('\n');
}

/** The token and its parts in every form they could leak in. */
function expectNoToken(text: string, token: string): void {
  const signature = tokenSignature(token)!;
  expect(signature).toMatch(/^[0-9a-f]{64}$/);
  for (const secret of [token, signature, TEST_SECRET_ACCESS_KEY, TEST_SESSION_TOKEN]) {
    for (const form of [secret, encodeURIComponent(secret), Buffer.from(secret).toString('base64'), JSON.stringify(secret).slice(1, -1)]) {
      expect(text.includes(form), `output holds a form of ${secret.slice(0, 12)}…`).toBe(false);
    }
  }
}

describe('RDS IAM authentication against a server that checks the token', () => {
  it('reads the queue with a token made for this connection, sent only over verify-full TLS, logged nowhere', async () => {
    const before = front.logins.length;
    const started = Date.now();
    const run = await tick();
    expect(run.error, run.output).toBeUndefined();
    expect(logLine(run.output)).toMatchObject({ outcome: 'ok', figures: { depth: { QUEUED: 1, RUNNING: 2 } } });
    const logins = front.logins.slice(before);
    expect(logins).toHaveLength(1);
    expect(logins[0]).toMatchObject({ user: USER, tls: true, refused: undefined });
    // Fresh: signed at this tick (X-Amz-Date has whole seconds).
    const signedAt = new URL(`https://${logins[0]!.token}`).searchParams.get('X-Amz-Date')!;
    const at = Date.parse(signedAt.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'));
    expect(at).toBeGreaterThanOrEqual(Math.floor(started / 1000) * 1000);
    expect(at).toBeLessThanOrEqual(Date.now());
    expectNoToken(everything(run), logins[0]!.token);
  });

  it('makes a new token for each connection', async () => {
    const before = front.logins.length;
    await tick();
    // X-Amz-Date has whole seconds: the next token must differ in it.
    await new Promise((r) => setTimeout(r, 1_100));
    const run = await tick();
    expect(run.error, run.output).toBeUndefined();
    const tokens = front.logins.slice(before).map((l) => l.token);
    expect(tokens).toHaveLength(2);
    expect(tokens[0]).not.toBe(tokens[1]);
  });

  it('a token signed with another secret key is refused by the server, with RDS\'s words and a hint, and the token appears nowhere', async () => {
    const before = front.logins.length;
    const run = await tick({ AWS_SECRET_ACCESS_KEY: 'not-the-role-s-secret-access-key-000000' });
    const message = String((run.error as Error)?.message);
    expect(message).toMatch(/PAM authentication failed for user "xyn_iam" \(DATABASE_IAM_AUTH: RDS refused the IAM token; the role needs rds-db:connect/);
    expect(logLine(run.output)).toMatchObject({ outcome: 'db_failed' });
    const [login] = front.logins.slice(before);
    expect(login?.refused).toBe('the signature does not match');
    expectNoToken(everything(run), login!.token);
  });

  it('a server that repeats the token in its error message: the error is redacted of it, and so is the log line', async () => {
    front.echoTokenInErrors = true;
    try {
      const before = front.logins.length;
      const run = await tick({ DATABASE_IAM_REGION: 'us-east-1' });
      const [login] = front.logins.slice(before);
      expect(login?.refused).toBe('signed for region us-east-1, not eu-west-1');
      const message = String((run.error as Error)?.message);
      // The echo arrived (so the check can fail), masked.
      expect(message).toMatch(/PAM authentication failed for user "xyn_iam" \(password "\*\*\*"\)/);
      expectNoToken(everything(run), login!.token);
    } finally {
      front.echoTokenInErrors = false;
    }
  });

  it('each of the two redactions holds on its own: the connection\'s error, and the tick\'s list of secrets', async () => {
    const env = { DATABASE_URL: databaseUrl(), DATABASE_IAM_AUTH: 'true', AWS_REGION: TEST_REGION, RUNS_TABLE: 'xyn.runs' };
    const roleEnv = { AWS_ACCESS_KEY_ID: TEST_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: TEST_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN: TEST_SESSION_TOKEN };
    front.echoTokenInErrors = true;
    try {
      // The connection alone, told of no list: its error is already masked, its SQLSTATE kept.
      const before = front.logins.length;
      const config = parseConfig({ ...env, DATABASE_IAM_REGION: 'us-east-1' }, { requireSink: false });
      const error = await openDatabase(config.database, deadlineIn(5_000), { env: roleEnv }).then(
        () => undefined,
        (e: unknown) => e as Error & { code?: string },
      );
      const [login] = front.logins.slice(before);
      expect(error?.message).toMatch(/PAM authentication failed for user "xyn_iam" \(password "\*\*\*"\)/);
      expect(error?.code).toBe('28000');
      expectNoToken(`${error?.message}\n${error?.stack}`, login!.token);
    } finally {
      front.echoTokenInErrors = false;
    }
    // A tick's read (the role's credentials from process.env, as in Lambda): the token joins the configuration's secrets, which every log line is redacted with.
    const config = parseConfig(env, { requireSink: false });
    const before = front.logins.length;
    const collected = await withEnv(roleEnv, () => collectRegistry(config, deadlineIn(5_000)));
    expect(collected.dbError).toBeUndefined();
    const [login] = front.logins.slice(before);
    expect(config.secrets).toEqual(expect.arrayContaining([login!.token, tokenSignature(login!.token)]));
  });

  it('without the role\'s credentials in the environment there is one clear error and no connection', async () => {
    const before = front.logins.length;
    const run = await tick({ AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, AWS_SESSION_TOKEN: undefined });
    expect(String((run.error as Error)?.message)).toMatch(/database localhost: DATABASE_IAM_AUTH=true but AWS_ACCESS_KEY_ID\/AWS_SECRET_ACCESS_KEY are not in the environment/);
    expect(front.logins.length).toBe(before);
  });

  it('refuses any sslmode but verify-full, and a password in DATABASE_URL, before connecting', async () => {
    const before = front.logins.length;
    const require = await tick({ DATABASE_URL: databaseUrl('sslmode=require') });
    expect(String((require.error as Error)?.message)).toMatch(/^xyn-metrics configuration error: DATABASE_IAM_AUTH=true needs sslmode=verify-full in DATABASE_URL, got sslmode=require/);
    const password = await tick({ DATABASE_URL: `postgresql://${USER}:${userPassword}@localhost:${front.port}/postgres?sslmode=verify-full&sslrootcert=${certificate.certFile}` });
    expect(String((password.error as Error)?.message)).toMatch(/DATABASE_URL holds a password but DATABASE_IAM_AUTH=true/);
    expect(everything(password)).not.toContain(userPassword);
    expect(front.logins.length).toBe(before);
  });
});

describe('the test server checks what RDS checks (each check can fail)', () => {
  const target = () => ({ host: 'localhost', port: front.port, user: USER, region: TEST_REGION });
  const check = (now = new Date()) => ({ endpoint: `localhost:${front.port}`, region: TEST_REGION, user: USER, credentials: CREDENTIALS, now });

  it('takes a fresh token of the collector\'s signer, and refuses it once X-Amz-Expires has run out', () => {
    const signedAt = new Date(Date.now() - 60_000);
    const token = rdsAuthToken(target(), CREDENTIALS, signedAt);
    expect(verifyRdsToken(token, check())).toBeUndefined();
    expect(verifyRdsToken(token, check(new Date(signedAt.getTime() + 899_000)))).toBeUndefined();
    expect(verifyRdsToken(token, check(new Date(signedAt.getTime() + 901_000)))).toBe('the token has expired');
    expect(verifyRdsToken(token, check(new Date(signedAt.getTime() - 6 * 60_000)))).toBe('X-Amz-Date is in the future');
  });

  it('refuses a token for another endpoint, user, region or service, a changed parameter, or a scheme', () => {
    const token = rdsAuthToken(target(), CREDENTIALS);
    expect(verifyRdsToken(rdsAuthToken({ ...target(), port: front.port + 1 }, CREDENTIALS), check())).toMatch(/^the token is for localhost:\d+, not localhost:\d+$/);
    expect(verifyRdsToken(rdsAuthToken({ ...target(), user: 'postgres' }, CREDENTIALS), check())).toBe('the token is for user postgres, not xyn_iam');
    expect(verifyRdsToken(rdsAuthToken({ ...target(), region: 'us-east-1' }, CREDENTIALS), check())).toBe('signed for region us-east-1, not eu-west-1');
    expect(verifyRdsToken(token.replace('X-Amz-Expires=900', 'X-Amz-Expires=899'), check())).toBe('the signature does not match');
    expect(verifyRdsToken(token.replace('X-Amz-Expires=900', 'X-Amz-Expires=3600'), check())).toMatch(/X-Amz-Expires 3600 is not 1 to 900 seconds/);
    expect(verifyRdsToken(`https://${token}`, check())).toBe('the token must not carry a scheme');
    expect(verifyRdsToken(rdsAuthToken(target(), { ...CREDENTIALS, sessionToken: 'another-session' }), check())).toBe('X-Amz-Security-Token is not the session\'s');
  });

  it('refuses a session without TLS before it asks for a password', async () => {
    const before = front.logins.length;
    const client = new pg.Client({ host: '127.0.0.1', port: front.port, user: USER, database: 'postgres', password: 'x', ssl: false });
    await expect(client.connect()).rejects.toThrow(/SSL off/);
    expect(front.logins.slice(before)).toEqual([{ user: USER, tls: false, token: '', refused: 'not TLS' }]);
  });
});
