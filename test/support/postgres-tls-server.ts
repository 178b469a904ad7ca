/**
 * A PostgreSQL server of the test's own: initdb into a temporary data
 * directory, started on a free loopback port with the given settings (e.g.
 * ssl=on and a test certificate), removed by stop(). Same signature as
 * test/support/postgres-server.ts's startPostgresServer, so the two can merge.
 *
 * initdb and postgres refuse to run as root: under root they run as the
 * `postgres` user (PG_TEST_USER to choose another), otherwise as ourselves.
 */

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { freePort } from './net';

/** Debian's server binaries, newest version first (as .ci/run picks it); PG_BIN overrides. */
function serverBinaries(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  const bin = versions.map((v) => join(root, v, 'bin')).find((dir) => existsSync(join(dir, 'initdb')));
  if (!bin) throw new Error(`no PostgreSQL server binaries (initdb) under ${root}: apt-get install postgresql, or set PG_BIN`);
  return bin;
}

export interface PostgresServer {
  /** postgresql://postgres:<password>@127.0.0.1:<port>/postgres, no sslmode. */
  url: string;
  port: number;
  dataDir: string;
  /** The superuser's password (password auth: a plain-text session carries it in clear). */
  password: string;
  stop(): Promise<void>;
}

export interface PostgresServerOptions {
  /** postgresql.conf settings, passed as -c name=value. */
  settings?: Record<string, string>;
  /** pg_hba.conf lines; the default asks loopback clients for a password. */
  hba?: string[];
  /** Files the server must read (certificate, key): copied into the data directory, owned by the server's user. */
  files?: Record<string, Buffer | string>;
}

interface ServerUser {
  uid: number;
  gid: number;
  name: string;
}

function serverUser(): ServerUser | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const name = process.env.PG_TEST_USER ?? 'postgres';
  const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
  return { uid, gid, name };
}

/** A deadline-bound wait for the server to accept a login. */
async function waitForLogin(url: string, server: ChildProcess, output: () => string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < until) {
    if (server.exitCode !== null) throw new Error(`postgres exited with ${server.exitCode}: ${output()}`);
    const client = new pg.Client({ connectionString: url, ssl: false });
    try {
      await client.connect();
      await client.end();
      return;
    } catch (error) {
      last = error;
      await client.end().catch(() => {});
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`postgres not ready after ${timeoutMs} ms: ${(last as Error)?.message}; ${output()}`);
}

export async function startPostgresServer(options: PostgresServerOptions = {}): Promise<PostgresServer> {
  const bin = serverBinaries();
  const user = serverUser();
  const root = mkdtempSync(join(tmpdir(), 'xyn-pg-'));
  const dataDir = join(root, 'data');
  const password = `Pg-${randomBytes(9).toString('hex')}`;
  const as = user ? { uid: user.uid, gid: user.gid } : {};
  if (user) chownSync(root, user.uid, user.gid);
  const pwfile = join(root, 'pwfile');
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  if (user) chownSync(pwfile, user.uid, user.gid);

  let server: ChildProcess | undefined;
  const stop = async () => {
    if (server && server.exitCode === null) {
      const exited = new Promise((resolve) => server!.once('exit', resolve));
      server.kill('SIGINT'); // fast shutdown
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
      if (server.exitCode === null) server.kill('SIGKILL');
    }
    rmSync(root, { recursive: true, force: true });
  };

  try {
    execFileSync(join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--pwfile', pwfile, '--auth', 'scram-sha-256', '-E', 'UTF8', '--no-sync'], {
      ...as,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    writeFileSync(join(dataDir, 'pg_hba.conf'), `${(options.hba ?? ['host all all 127.0.0.1/32 password']).join('\n')}\n`);
    for (const [name, content] of Object.entries(options.files ?? {})) {
      const file = join(dataDir, name);
      writeFileSync(file, content, { mode: 0o600 });
      chmodSync(file, 0o600);
      if (user) chownSync(file, user.uid, user.gid);
    }

    const port = await freePort();
    const settings: Record<string, string> = {
      listen_addresses: '127.0.0.1',
      port: String(port),
      unix_socket_directories: root,
      fsync: 'off',
      max_connections: '20',
      shared_buffers: '16MB',
      ...options.settings,
    };
    const args = ['-D', dataDir, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
    let output = '';
    server = spawn(join(bin, 'postgres'), args, { ...as, stdio: ['ignore', 'pipe', 'pipe'] });
    server.stdout!.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
    server.stderr!.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
    const url = `postgresql://postgres:${password}@127.0.0.1:${port}/postgres`;
    await waitForLogin(url, server, () => output, 30_000);
    return { url, port, dataDir, password, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
