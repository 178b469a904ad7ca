/**
 * DATABASE_URL as users write it, through the real handler against a real
 * PostgreSQL of its own (TLS on, listening on 127.0.0.1, ::1 and a Unix
 * socket, SCRAM for every connection):
 * - passwords of every printable ASCII character, and Unicode, set on a real
 *   role (ALTER ROLE … PASSWORD), percent-encoded into the URL as a user would
 *   (encodeURIComponent): each connects, over node-postgres and over the Neon
 *   driver (the local bridge), and none appears in any output in any form,
 *   whether the tick succeeds or fails;
 * - a raw % (generated passwords have them): one configuration error naming
 *   DATABASE_URL and how to encode, and nothing else printed;
 * - an IPv6 literal host, [::1]: loopback, TLS verified against its IP;
 * - a Unix socket as libpq writes it in a URL (the directory percent-encoded
 *   as the host): the session really goes over the socket.
 */

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type Bridge } from '../../scripts/bridge/bridge';
import { startPostgresServer, type PostgresServer } from '../../scripts/support/postgres-server';
import { runsSchemaSql } from '../../scripts/support/runs-schema';
import { invokeCollect } from '../support/lambda';
import { selfSignedCertificate, type Certificate } from '../support/tls';

const USER = 'xyn_pw';
/** Reachable over the socket only: pg_hba rejects it over TCP, so a tick that works went over the socket. */
const SOCKET_USER = 'xyn_sock';
let server: PostgresServer;
let certificate: Certificate;
let bridge: Bridge;
let admin: pg.Client;

beforeAll(async () => {
  certificate = selfSignedCertificate('DNS:localhost,IP:::1');
  server = await startPostgresServer({
    settings: { ssl: 'on', ssl_cert_file: 'server.crt', ssl_key_file: 'server.key', listen_addresses: '127.0.0.1,::1' },
    files: { 'server.crt': certificate.cert, 'server.key': certificate.key },
    hba: [
      `host all ${SOCKET_USER} all reject`,
      'local all all scram-sha-256',
      'host all all 127.0.0.1/32 scram-sha-256',
      'host all all ::1/128 scram-sha-256',
    ],
  });
  admin = new pg.Client({ connectionString: server.url, ssl: false });
  await admin.connect();
  await admin.query(runsSchemaSql('xyn'));
  await admin.query(`INSERT INTO xyn.runs (status) VALUES ('QUEUED'), ('QUEUED'), ('QUEUED'), ('RUNNING')`);
  for (const role of [USER, SOCKET_USER]) {
    await admin.query(`CREATE ROLE ${role} LOGIN; GRANT USAGE ON SCHEMA xyn TO ${role}; GRANT SELECT ON xyn.runs TO ${role}`);
  }
  bridge = await startBridge();
}, 60_000);

afterAll(async () => {
  await bridge?.close();
  await admin?.end();
  await server?.stop();
  certificate?.dispose();
});

async function setPassword(role: string, password: string): Promise<void> {
  // escapeLiteral: quotes doubled, backslashes in an E'' string; the server hashes it (SCRAM, with SASLprep).
  await admin.query(`ALTER ROLE ${role} PASSWORD ${admin.escapeLiteral(password)}`);
}

/** The URL a user writes: the password percent-encoded whole. */
function urlWith(password: string, host = '127.0.0.1', params = '', user = USER): string {
  return `postgresql://${user}:${encodeURIComponent(password)}@${host}:${server.port}/postgres${params}`;
}

function tick(url: string, extra: Record<string, string | undefined> = {}) {
  return invokeCollect({ DATABASE_URL: url, RUNS_TABLE: 'xyn.runs', PUSH_DRY_RUN: 'true', PUSHGATEWAY_URL: undefined, DATABASE_WS_PROXY: undefined, ...extra });
}

type Run = Awaited<ReturnType<typeof tick>>;

function everything(run: Run): string {
  const error = run.error instanceof Error ? `${run.error.message}\n${run.error.stack}` : String(run.error ?? '');
  return [run.output, error, JSON.stringify(run.result ?? null)].join('\n');
}

/** Every form a password could leak in: as set, as written in the URL (ours and the URL parser's), JSON-escaped, base64. */
function forms(password: string, url: string): string[] {
  const written = new URL(url).password;
  return [...new Set([password, encodeURIComponent(password), written, JSON.stringify(password).slice(1, -1), Buffer.from(password).toString('base64')])];
}

function expectNoPassword(run: Run, password: string, url: string): void {
  const text = everything(run);
  for (const form of forms(password, url)) expect(text.includes(form), `output holds ${JSON.stringify(form.slice(0, 4))}…`).toBe(false);
}

function logLine(output: string): Record<string, unknown> {
  const line = output.split('\n').find((l) => l.startsWith('{"level"'));
  expect(line, output).toBeDefined();
  return JSON.parse(line!) as Record<string, unknown>;
}

/** A fixed shuffle (a linear congruential generator), so a failure names the same passwords every run. */
function shuffled<T>(items: T[], seed: number): T[] {
  const out = [...items];
  let state = seed;
  for (let i = out.length - 1; i > 0; i--) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    const j = state % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const PRINTABLE = Array.from({ length: 0x7e - 0x20 + 1 }, (_, i) => String.fromCharCode(0x20 + i));
/** Every printable ASCII character in one password, then again spread over passwords of 12 in a fixed shuffle. */
const ASCII_PASSWORDS = [
  PRINTABLE.join(''),
  ...Array.from({ length: Math.ceil(PRINTABLE.length / 12) }, (_, i) => shuffled(PRINTABLE, 22).slice(i * 12, i * 12 + 12).join('').padEnd(12, 'x')),
  // Generated-password habits: percent signs that look like escapes, and ones that do not.
  '%41%zz%%25%-Pw',
  "a'b\"c\\d`e$f{g}h",
];
/** Unicode that SASLprep leaves as it is (both drivers send it as UTF-8). */
const UNICODE_PASSWORDS = ['Pässwörd-ñ-日本語-🔑', 'Ελληνικά-Кирилиця-עברית'];
/** Unicode SASLprep changes (ligature fi, a no-break space): node-postgres applies SASLprep as libpq and the server do. */
const SASLPREP_PASSWORDS = ['ﬁancé\u00a0secret'];

describe('every printable character in a password connects, and never shows', () => {
  const cases = [...ASCII_PASSWORDS, ...UNICODE_PASSWORDS, ...SASLPREP_PASSWORDS];

  it('the passwords cover every printable ASCII character, each in a password of its own size too', () => {
    const covered = new Set(ASCII_PASSWORDS.slice(1, -2).join(''));
    expect(PRINTABLE.filter((c) => !covered.has(c))).toEqual([]);
    expect(PRINTABLE).toHaveLength(95);
  });

  it.each(cases.map((p) => [JSON.stringify(p), p]))('node-postgres (TCP, TLS): %s', async (_name, password) => {
    await setPassword(USER, password);
    const url = urlWith(password);
    const run = await tick(url);
    expect(run.error, run.output).toBeUndefined();
    expect(logLine(run.output)).toMatchObject({ outcome: 'ok', figures: { depth: { QUEUED: 3, RUNNING: 1 } } });
    expectNoPassword(run, password, url);
    // A failing tick with the same URL: the error path says nothing of it either.
    const failed = await tick(url, { RUNS_TABLE: 'xyn.runs_gone' });
    expect(String((failed.error as Error)?.message)).toMatch(/relation "xyn\.runs_gone" does not exist/);
    expectNoPassword(failed, password, url);
  });

  it.each([...ASCII_PASSWORDS, ...UNICODE_PASSWORDS].map((p) => [JSON.stringify(p), p]))('the Neon driver (the local bridge): %s', async (_name, password) => {
    await setPassword(USER, password);
    const url = urlWith(password);
    const run = await tick(url, { DATABASE_WS_PROXY: bridge.proxy });
    expect(run.error, run.output).toBeUndefined();
    expect(logLine(run.output)).toMatchObject({ outcome: 'ok' });
    expectNoPassword(run, password, url);
  });

  it('the Neon driver applies no SASLprep: a password SASLprep changes fails over SCRAM through it (docs/security.md says so)', async () => {
    // Its SCRAM hashes the password as given; the server hashed the SASLprep form. node-postgres above connects.
    const [password] = SASLPREP_PASSWORDS;
    await setPassword(USER, password!);
    const run = await tick(urlWith(password!), { DATABASE_WS_PROXY: bridge.proxy });
    expect(String((run.error as Error)?.message)).toMatch(/password authentication failed for user "xyn_pw"/);
    expectNoPassword(run, password!, urlWith(password!));
  });

  it('a wrong password is refused (the checks above can fail), and the refusal shows no password', async () => {
    await setPassword(USER, 'the-right-one-Pw1');
    const url = urlWith('a-wrong-one-Pw2');
    const run = await tick(url);
    expect(String((run.error as Error)?.message)).toMatch(/password authentication failed for user "xyn_pw"/);
    expectNoPassword(run, 'a-wrong-one-Pw2', url);
  });
});

describe('a raw % in the password', () => {
  it('is one configuration error naming DATABASE_URL and how to encode it; nothing else is printed, the password never', async () => {
    const password = 'gen%Pa55-w0rd%';
    await setPassword(USER, password);
    const url = `postgresql://${USER}:${password}@127.0.0.1:${server.port}/postgres`;
    const run = await tick(url);
    const message = String((run.error as Error)?.message);
    expect(message).toBe(
      'xyn-metrics configuration error: DATABASE_URL\'s password holds a "%" that is not followed by two hex digits: percent-encode the password (a literal % is %25; encodeURIComponent in JavaScript, urllib.parse.quote(value, safe="") in Python)',
    );
    const lines = run.output.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toEqual({ level: 'error', msg: 'configuration error', error: message.replace(/^xyn-metrics configuration error: /, '') });
    for (const form of [password, encodeURIComponent(password), 'Pa55-w0rd']) expect(everything(run)).not.toContain(form);
    // Encoded as the message says, the same password connects.
    expect((await tick(urlWith(password))).error).toBeUndefined();
  });
});

describe('an IPv6 literal host', () => {
  it('[::1] is loopback and TLS verify-full checks the certificate against its IP (no SNI for an address)', async () => {
    await setPassword(USER, 'v6-Pa55word');
    const verified = await tick(urlWith('v6-Pa55word', '[::1]', `?sslmode=verify-full&sslrootcert=${encodeURIComponent(certificate.certFile)}`));
    expect(verified.error, verified.output).toBeUndefined();
    expect(logLine(verified.output)).toMatchObject({ outcome: 'ok', figures: { depth: { QUEUED: 3 } } });
    // The same certificate has no IP:127.0.0.1: the name check is real.
    const wrongName = await tick(urlWith('v6-Pa55word', '127.0.0.1', `?sslmode=verify-full&sslrootcert=${encodeURIComponent(certificate.certFile)}`));
    expect(String((wrongName.error as Error)?.message)).toMatch(/IP: 127\.0\.0\.1 is not in the cert's list/);
    // Loopback: plain text needs no opt-in, and the bridge relays to it.
    expect((await tick(urlWith('v6-Pa55word', '[::1]', '?sslmode=disable'))).error).toBeUndefined();
    const bridged = await tick(urlWith('v6-Pa55word', '[::1]'), { DATABASE_WS_PROXY: bridge.proxy });
    expect(bridged.error, bridged.output).toBeUndefined();
  });

  it('a failure names the host as written', async () => {
    const run = await tick(urlWith('v6-wrong', '[::1]'));
    expect(String((run.error as Error)?.message)).toMatch(/^xyn-metrics tick failed: database \[::1\]: password authentication failed/);
  });
});

describe('a Unix socket host (local use)', () => {
  it('connects over the socket, as libpq\'s postgresql://user@%2Fdir/db; TCP is refused for the same user', async () => {
    await setPassword(SOCKET_USER, 'sock-Pa55word');
    const socketHost = encodeURIComponent(server.dataDir);
    const url = urlWith('sock-Pa55word', socketHost, '', SOCKET_USER);
    const run = await tick(url);
    expect(run.error, run.output).toBeUndefined();
    expect(logLine(run.output)).toMatchObject({ outcome: 'ok', figures: { depth: { QUEUED: 3, RUNNING: 1 } } });
    expectNoPassword(run, 'sock-Pa55word', url);
    // The same user over TCP meets pg_hba's reject: the tick above did not go over TCP.
    const tcp = await tick(urlWith('sock-Pa55word', '127.0.0.1', '', SOCKET_USER));
    expect(String((tcp.error as Error)?.message)).toMatch(/pg_hba\.conf rejects connection/);
  });

  it('a mode that promises TLS is refused with one line: a socket carries none', async () => {
    const run = await tick(urlWith('sock-Pa55word', encodeURIComponent(server.dataDir), '?sslmode=require', SOCKET_USER));
    expect(String((run.error as Error)?.message)).toMatch(/^xyn-metrics configuration error: DATABASE_URL's host is a Unix socket \(\/.+\), which carries no TLS, so sslmode=require cannot be honoured/);
  });
});
