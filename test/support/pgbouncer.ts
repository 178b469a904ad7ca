/**
 * A throw-away PgBouncer (Debian's, 1.18 on Debian 12) in front of a test
 * PostgreSQL, as Supabase's pooler, Neon's -pooler hosts and many self-hosted
 * setups put one: transaction pooling by default, SCRAM authentication with
 * the server's own verifiers (so PgBouncer logs in to the server with the
 * client's SCRAM keys, never a stored password), on a free loopback port, with
 * a generated ini and userlist in a directory of its own.
 *
 * It refuses to run as root, so as root it runs as the user the test
 * PostgreSQL runs as. stop() ends it and removes its directory; the test run
 * sweeps it anyway if a test forgets (XYN_TEST_RUN is in its environment).
 */

import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort, listensOn, portAnswers } from '../../scripts/support/net';
import { serverUser } from '../../scripts/support/postgres-server';
import { stderrTail, stopChild, waitUntilReady } from '../../scripts/support/processes';
import { findTool, TOOLS } from '../../scripts/support/services';

export interface PgBouncer {
  port: number;
  /** "PgBouncer 1.18.0" */
  version: string;
  /** The URL of `url`'s user and database through PgBouncer (127.0.0.1:<port>, nothing else changed). */
  via(url: string): string;
  /** Its admin console (database "pgbouncer"), as `url`'s user; e.g. SHOW CONFIG. */
  console(url: string): Promise<pg.Client>;
  /** What it wrote to stderr (its log). */
  log(): string;
  stop(): Promise<void>;
}

export interface PgBouncerOptions {
  /** A superuser URL of the server to pool: where to connect, and who may read the roles' SCRAM verifiers. */
  serverUrl: string;
  /** Roles that may log in through it (their verifiers are copied into the userlist). */
  users: string[];
  poolMode?: 'session' | 'transaction' | 'statement';
  /** Server connections per user and database. */
  poolSize?: number;
}

const START_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;

export function pgbouncerPath(): string {
  const tool = TOOLS.find((t) => t.what === 'PgBouncer')!;
  const found = findTool(tool);
  if (!found) throw new Error('the PgBouncer tests need pgbouncer: apt-get install -y pgbouncer (or set PGBOUNCER_BIN)');
  return found;
}

/** userlist.txt quoting: a double quote is doubled. */
const quoted = (value: string) => `"${value.replace(/"/g, '""')}"`;

async function verifiers(serverUrl: string, users: string[]): Promise<string[]> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ rolname: string; rolpassword: string | null }>(
      'SELECT rolname, rolpassword FROM pg_catalog.pg_authid WHERE rolname = ANY($1)',
      [users],
    );
    return users.map((user) => {
      const row = rows.find((r) => r.rolname === user);
      if (!row?.rolpassword?.startsWith('SCRAM-SHA-256$')) throw new Error(`role ${user} has no SCRAM-SHA-256 password for PgBouncer's userlist`);
      return `${quoted(user)} ${quoted(row.rolpassword)}`;
    });
  } finally {
    await client.end();
  }
}

export async function startPgBouncer(options: PgBouncerOptions): Promise<PgBouncer> {
  const bin = pgbouncerPath();
  const version = /PgBouncer \S+/.exec(spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout ?? '')?.[0] ?? 'PgBouncer';
  const server = new URL(options.serverUrl);
  const userlist = await verifiers(options.serverUrl, options.users);
  const user = serverUser();
  const dir = mkdtempSync(path.join(tmpdir(), 'xyn-pgbouncer-'));
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  const write = (name: string, content: string) => {
    const file = path.join(dir, name);
    writeFileSync(file, content, { mode: 0o600 });
    if (user) chownSync(file, user.uid, user.gid);
    return file;
  };
  let lastError: Error | undefined;
  try {
    chmodSync(dir, 0o755);
    const userlistFile = write('userlist.txt', `${userlist.join('\n')}\n`);
    for (let attempt = 1; attempt <= 3; attempt++) {
      const port = await freePort();
      const ini = write(
        'pgbouncer.ini',
        [
          '[databases]',
          // Every database name, to the same name on the test server.
          `* = host=${server.hostname} port=${server.port || 5432}`,
          '',
          '[pgbouncer]',
          'listen_addr = 127.0.0.1',
          `listen_port = ${port}`,
          // No Unix socket (/tmp or /var/run/postgresql is not ours to use).
          'unix_socket_dir =',
          'auth_type = scram-sha-256',
          `auth_file = ${userlistFile}`,
          `pool_mode = ${options.poolMode ?? 'transaction'}`,
          `default_pool_size = ${options.poolSize ?? 2}`,
          'max_client_conn = 50',
          // The server's answer to SSLRequest decides, as for any client in prefer mode.
          'server_tls_sslmode = prefer',
          `admin_users = ${decodeURIComponent(server.username)}`,
          'logfile =',
          'pidfile =',
          '',
        ].join('\n'),
      );
      const child = spawn(bin, [ini], { ...(user ? { uid: user.uid, gid: user.gid } : {}), cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
      const log = stderrTail(child, 20_000);
      // Ours, not a process that took the port between freePort() and the bind.
      const listening = async () => child.pid !== undefined && listensOn(child.pid, port) === true && (await portAnswers(port));
      const up = await waitUntilReady(child, listening, START_TIMEOUT_MS, 50);
      if (up) {
        const via = (url: string) => {
          const out = new URL(url);
          out.hostname = '127.0.0.1';
          out.port = String(port);
          return out.toString();
        };
        return {
          port,
          version,
          via,
          async console(url: string) {
            const target = new URL(via(url));
            target.pathname = '/pgbouncer';
            const client = new pg.Client({ connectionString: target.toString() });
            await client.connect();
            return client;
          },
          log,
          async stop() {
            // PgBouncer 1.18: SIGTERM is the immediate shutdown (SIGINT waits for clients).
            await stopChild(child, 'SIGTERM', STOP_GRACE_MS);
            cleanup();
          },
        };
      }
      await stopChild(child, 'SIGTERM', STOP_GRACE_MS);
      lastError = new Error(`pgbouncer ${child.exitCode !== null ? `exited with code ${child.exitCode}` : `did not listen within ${START_TIMEOUT_MS} ms`}: ${log().trim().slice(-2_000)}`);
      if (!/address already in use|could not bind|bind\b/i.test(log())) break;
    }
  } catch (error) {
    cleanup();
    throw error;
  }
  cleanup();
  throw lastError ?? new Error('pgbouncer did not start');
}
