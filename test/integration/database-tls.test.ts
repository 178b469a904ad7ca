/**
 * The collector over TCP + TLS against a real PostgreSQL of its own, started
 * with a test certificate for "localhost": the handler's tick, no bridge, with
 * DATABASE_URL's sslmode, sslrootcert and channel_binding as libpq reads
 * them. A TCP relay between collector and server shows what crosses the wire;
 * a man in the middle holding a trusted certificate of its own
 * (test/support/pg-front.ts) shows what channel binding stops.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { runsSchemaSql } from '../../scripts/support/runs-schema';
import { invokeCollect } from '../support/lambda';
import { startPostgresServer, type PostgresServer } from '../../scripts/support/postgres-server';
import { startTlsInterceptor, type TlsInterceptor } from '../support/pg-front';
import { selfSignedCertificate, type Certificate } from '../support/tls';
import { startWireTap, type WireTap } from '../support/wire';

const TABLE = 'xyn.runs';
const SCRAM_USER = 'xyn_scram';
const TRUST_USER = 'xyn_trust';
const SCRAM_PASSWORD = `Scram-${Math.random().toString(16).slice(2, 10)}`;
let server: PostgresServer;
let certificate: Certificate;
let otherCa: Certificate;

beforeAll(async () => {
  certificate = selfSignedCertificate('DNS:localhost');
  otherCa = selfSignedCertificate('DNS:localhost');
  server = await startPostgresServer({
    settings: { ssl: 'on', ssl_cert_file: 'server.crt', ssl_key_file: 'server.key' },
    files: { 'server.crt': certificate.cert, 'server.key': certificate.key },
    hba: [
      // SCRAM (SCRAM-SHA-256-PLUS over TLS) for the channel-binding tests; trust: a server that authenticates nobody.
      `host all ${SCRAM_USER} 127.0.0.1/32 scram-sha-256`,
      `host all ${TRUST_USER} 127.0.0.1/32 trust`,
      // Plain password auth: a session without TLS would carry the password itself, which the wire tests look for.
      'host all all 127.0.0.1/32 password',
    ],
  });
  const admin = new pg.Client({ connectionString: server.url, ssl: false });
  await admin.connect();
  await admin.query(runsSchemaSql('xyn'));
  await admin.query(`INSERT INTO xyn.runs (status) VALUES ('QUEUED'), ('QUEUED'), ('RUNNING')`);
  for (const role of [SCRAM_USER, TRUST_USER]) {
    await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD '${SCRAM_PASSWORD}'; GRANT USAGE ON SCHEMA xyn TO ${role}; GRANT SELECT ON xyn.runs TO ${role}`);
  }
  await admin.end();
}, 60_000);

afterAll(async () => {
  await server?.stop();
  certificate?.dispose();
  otherCa?.dispose();
});

/** DATABASE_URL for the server on `host` (and `port`), with libpq parameters; as the superuser (password auth) unless `user` says. */
function databaseUrl(params: Record<string, string>, host = 'localhost', port = server.port, user?: string): string {
  const url = new URL(server.url);
  url.hostname = host;
  url.port = String(port);
  if (user !== undefined) {
    url.username = user;
    url.password = SCRAM_PASSWORD;
  }
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  return url.toString();
}

function tick(url: string, extra: Record<string, string> = {}) {
  return invokeCollect({ DATABASE_URL: url, RUNS_TABLE: TABLE, PUSH_DRY_RUN: 'true', PUSHGATEWAY_URL: undefined, DATABASE_WS_PROXY: undefined, ...extra });
}

function logLine(output: string): Record<string, unknown> {
  const line = output.split('\n').find((l) => l.startsWith('{"level"'));
  expect(line, output).toBeDefined();
  return JSON.parse(line!) as Record<string, unknown>;
}

describe('a real PostgreSQL over TLS, no bridge', () => {
  it('verify-full with the server CA in sslrootcert reads the queue', async () => {
    const run = await tick(databaseUrl({ sslmode: 'verify-full', sslrootcert: certificate.certFile }));
    expect(run.error, run.output).toBeUndefined();
    expect(logLine(run.output)).toMatchObject({ outcome: 'ok', figures: { depth: { QUEUED: 2, RUNNING: 1 } } });
  });

  it('verify-full fails when the host name is not the certificate\'s', async () => {
    const run = await tick(databaseUrl({ sslmode: 'verify-full', sslrootcert: certificate.certFile }, '127.0.0.1'));
    expect(String((run.error as Error)?.message)).toMatch(/IP: 127\.0\.0\.1 is not in the cert's list|altnames/i);
    expect(logLine(run.output)).toMatchObject({ outcome: 'db_failed' });
  });

  it('verify-ca to the same address passes: it checks the chain, not the name', async () => {
    const run = await tick(databaseUrl({ sslmode: 'verify-ca', sslrootcert: certificate.certFile }, '127.0.0.1'));
    expect(run.error, run.output).toBeUndefined();
  });

  it('verify-full fails against another CA', async () => {
    const run = await tick(databaseUrl({ sslmode: 'verify-full', sslrootcert: otherCa.certFile }));
    expect(String((run.error as Error)?.message)).toMatch(/self[- ]signed certificate|unable to verify/i);
  });

  it('refuses the self-signed server when no CA is configured (the default is verify-full against public CAs)', async () => {
    const run = await tick(databaseUrl({ sslmode: 'verify-full' }));
    expect(String((run.error as Error)?.message)).toMatch(/self[- ]signed certificate/i);
  });

  it('verify-ca without sslrootcert is refused with one line, before any connection (any public certificate, any name, would pass)', async () => {
    const run = await tick(databaseUrl({ sslmode: 'verify-ca' }, '127.0.0.1'));
    const message = String((run.error as Error)?.message);
    expect(message).toMatch(/^xyn-metrics configuration error: DATABASE_URL sslmode=verify-ca needs sslrootcert=<CA file>/);
    expect(run.output.trim().split('\n')).toHaveLength(1);
    expect(message).not.toContain(server.password);
  });

  it('require encrypts without verifying, as libpq does; with an sslrootcert it verifies the chain', async () => {
    expect((await tick(databaseUrl({ sslmode: 'require' }))).error).toBeUndefined();
    const wrongCa = await tick(databaseUrl({ sslmode: 'require', sslrootcert: otherCa.certFile }));
    expect(String((wrongCa.error as Error)?.message)).toMatch(/self[- ]signed certificate|unable to verify/i);
  });
});

describe('on the wire', () => {
  let tap: WireTap;
  beforeAll(async () => {
    tap = await startWireTap(server.url);
  });
  afterAll(async () => {
    await tap?.close();
  });

  const tapPort = () => Number(new URL(tap.url).port);
  const inClear = (bytes: Buffer, text: string) => bytes.includes(Buffer.from(text, 'utf8'));

  it('a verify-full session carries neither the password nor the query in clear', async () => {
    const before = tap.sent().length;
    const run = await tick(databaseUrl({ sslmode: 'verify-full', sslrootcert: certificate.certFile }, 'localhost', tapPort()));
    expect(run.error, run.output).toBeUndefined();
    const sent = tap.sent().subarray(before);
    expect(sent.length).toBeGreaterThan(500); // the session did go through the tap
    expect(inClear(sent, server.password)).toBe(false);
    expect(inClear(sent, 'xyn.runs') || inClear(sent, '"xyn"."runs"')).toBe(false);
    expect(inClear(sent, 'SELECT')).toBe(false);
  });

  it('a remote-looking host without sslmode gets verify-full: the unknown certificate ends it, nothing in clear, no plain-text retry', async () => {
    // ::ffff:127.0.0.1 is not loopback to the configuration (so verify-full is the default) yet reaches the tap.
    const before = tap.sent().length;
    const run = await tick(databaseUrl({}, '[::ffff:127.0.0.1]', tapPort()));
    expect(String((run.error as Error)?.message)).toMatch(/self[- ]signed certificate/i);
    const sent = tap.sent().subarray(before);
    expect(sent.subarray(0, 8)).toEqual(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])); // SSLRequest first
    expect(inClear(sent, server.password)).toBe(false);
    expect(inClear(sent, 'SELECT')).toBe(false);
    expect(inClear(sent, 'user\0postgres')).toBe(false); // not even the startup message
  });

  it('the same tap does see both in clear when TLS is off (sslmode=disable to loopback), so the check can fail', async () => {
    const before = tap.sent().length;
    const run = await tick(databaseUrl({ sslmode: 'disable' }, 'localhost', tapPort()));
    expect(run.error, run.output).toBeUndefined();
    const sent = tap.sent().subarray(before);
    expect(inClear(sent, server.password)).toBe(true);
    expect(inClear(sent, '"xyn"."runs"')).toBe(true);
    expect(inClear(sent, 'user\0postgres')).toBe(true);
  });
});

describe('plain text to a non-loopback host', () => {
  it('is refused without DATABASE_ALLOW_PLAINTEXT, with one line saying why', async () => {
    const run = await tick('postgresql://xyn:secret-Pa55@db.example.invalid:5432/xyn?sslmode=disable');
    const message = String((run.error as Error)?.message);
    expect(message).toMatch(/sslmode=disable may send the session to db\.example\.invalid in clear text/);
    expect(message).toContain('DATABASE_ALLOW_PLAINTEXT');
    expect(message).not.toContain('secret-Pa55');
  });

  it('with the opt-in, every tick says so in its log line', async () => {
    // A host that is not loopback yet reaches the server: 127.0.0.1 in IPv4-mapped IPv6 form.
    const url = databaseUrl({ sslmode: 'disable' }, '[::ffff:127.0.0.1]');
    const run = await tick(url, { DATABASE_ALLOW_PLAINTEXT: 'true' });
    expect(run.error, run.output).toBeUndefined();
    const line = logLine(run.output);
    expect(line).toMatchObject({ level: 'warn', outcome: 'ok' });
    expect(line.db_plaintext).toMatch(/DATABASE_ALLOW_PLAINTEXT=true: the session to \S+ may be unencrypted/);
  });
});

describe('channel_binding, against a man in the middle holding a certificate the client trusts', () => {
  let mitm: TlsInterceptor;
  beforeAll(async () => {
    // Its own certificate for "localhost", from a CA the collector is told to trust: TLS alone cannot tell.
    mitm = await startTlsInterceptor(otherCa, server.port);
  });
  afterAll(async () => {
    await mitm?.close();
  });

  const direct = (params: Record<string, string>, user?: string) => databaseUrl({ sslmode: 'verify-full', sslrootcert: certificate.certFile, ...params }, 'localhost', server.port, user);
  const intercepted = (params: Record<string, string>, user?: string) => databaseUrl({ sslmode: 'verify-full', sslrootcert: otherCa.certFile, ...params }, 'localhost', mitm.port, user);
  const message = (run: { error?: unknown }) => String((run.error as Error | undefined)?.message);

  it('without channel binding the man in the middle logs in and reads the session (so the checks below can fail)', async () => {
    const before = mitm.clientBytes().length;
    const run = await tick(intercepted({ channel_binding: 'disable' }, SCRAM_USER));
    expect(run.error, run.output).toBeUndefined();
    expect(mitm.clientBytes().subarray(before).includes(Buffer.from('"xyn"."runs"'))).toBe(true);
  });

  it('require: SCRAM-SHA-256-PLUS to the real server reads the queue', async () => {
    const run = await tick(direct({ channel_binding: 'require' }, SCRAM_USER));
    expect(run.error, run.output).toBeUndefined();
    expect(logLine(run.output)).toMatchObject({ outcome: 'ok', figures: { depth: { QUEUED: 2, RUNNING: 1 } } });
  });

  it('require, and prefer (the default), bind SCRAM to the TLS session: the server refuses the relayed login, the query never goes', async () => {
    for (const params of [{ channel_binding: 'require' }, {}] as Record<string, string>[]) {
      const before = mitm.clientBytes().length;
      const run = await tick(intercepted(params, SCRAM_USER));
      expect(message(run), JSON.stringify(params)).toMatch(/SCRAM channel binding check failed/);
      expect(mitm.clientBytes().subarray(before).includes(Buffer.from('SELECT'))).toBe(false);
    }
  });

  it('require refuses a cleartext password request without sending the password (the man in the middle reads none)', async () => {
    const before = mitm.clientBytes().length;
    const run = await tick(intercepted({ channel_binding: 'require' }));
    expect(message(run)).toMatch(/channel_binding=require, but the server asked for a cleartext password \(not sent\)/);
    expect(mitm.clientBytes().subarray(before).includes(Buffer.from(server.password))).toBe(false);
    // Without it, the same request gets the password: the check above can fail.
    const unbound = mitm.clientBytes().length;
    expect((await tick(intercepted({}))).error).toBeUndefined();
    expect(mitm.clientBytes().subarray(unbound).includes(Buffer.from(server.password))).toBe(true);
  });

  it('require refuses a server that authenticates nobody (trust), and SCRAM without TLS (sslmode=allow tries plain text first)', async () => {
    expect(message(await tick(direct({ channel_binding: 'require' }, TRUST_USER)))).toMatch(/channel_binding=require, but the server authenticated the client without channel binding/);
    expect((await tick(direct({}, TRUST_USER))).error).toBeUndefined();
    const allow = await tick(databaseUrl({ sslmode: 'allow', channel_binding: 'require' }, 'localhost', server.port, SCRAM_USER));
    expect(message(allow)).toMatch(/channel_binding=require, but the session is not TLS/);
    expect(message(allow)).not.toContain(SCRAM_PASSWORD);
  });

  it('channel_binding=require with sslmode=disable is one configuration error, as in libpq', async () => {
    const run = await tick(databaseUrl({ sslmode: 'disable', channel_binding: 'require' }, 'localhost', server.port, SCRAM_USER));
    expect(message(run)).toMatch(/^xyn-metrics configuration error: DATABASE_URL channel_binding=require needs TLS but sslmode=disable turns it off/);
  });
});
