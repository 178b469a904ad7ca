/**
 * A throw-away PostgreSQL server: initdb into a fresh temporary directory,
 * postgres on a free loopback port, stop() shuts it down and removes the
 * directory. Used by the test run when TEST_DATABASE_URL is unset, and by
 * tests that need a server of their own (e.g. one with ssl=on).
 *
 * initdb and postgres refuse to run as root: as root they run as the
 * `postgres` system user (or `nobody`), the data directory handed to it.
 * That user may not reach binaries inside the project when a directory above
 * it is closed to others (a clone in /root, or in `mktemp -d`): then it runs
 * a copy of the installation, made once per build in the temp directory.
 */

import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from './net';
import { stderrTail, stopChild, waitUntilReady } from './processes';

export interface PostgresServer {
  /** postgresql://postgres:<password>@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  dataDir: string;
  /** The superuser's password. */
  password: string;
  stop(): Promise<void>;
}

export interface PostgresServerOptions {
  /** Server settings, each passed as `-c key=value` (e.g. { ssl: 'on', ssl_cert_file: … }). */
  settings?: Record<string, string>;
  /** pg_hba.conf lines instead of initdb's (scram-sha-256 for every connection). */
  hba?: string[];
  /** Files the server reads (a certificate, its key): written into the data directory, 0600, owned by the server's user. */
  files?: Record<string, Buffer | string>;
  /** The directory with initdb and postgres (a major of the version matrix); postgresBinDir() by default. */
  bin?: string;
}

const START_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 10_000;

/** The directory holding initdb and postgres: PG_BIN, else the newest Debian /usr/lib/postgresql/N/bin, else PATH. */
export function postgresBinDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const candidates: string[] = [];
  if (env.PG_BIN) candidates.push(env.PG_BIN);
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    const versions = readdirSync(debian).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    candidates.push(...versions.map((v) => path.join(debian, v, 'bin')));
  }
  candidates.push(...(env.PATH ?? '').split(path.delimiter).filter(Boolean));
  return candidates.find((dir) => existsSync(path.join(dir, 'initdb')) && existsSync(path.join(dir, 'postgres')));
}

export const POSTGRES_INSTALL_HINT = 'apt-get install postgresql (or set PG_BIN to a directory with initdb and postgres, or TEST_DATABASE_URL to an existing server)';

/** uid/gid to run the server (or PgBouncer, which refuses root too) as: ourselves, or when root an unprivileged system user. */
export function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const passwd = readFileSync('/etc/passwd', 'utf8').split('\n').map((line) => line.split(':'));
  for (const name of ['postgres', 'nobody']) {
    const entry = passwd.find((fields) => fields[0] === name);
    if (entry) return { uid: Number(entry[2]), gid: Number(entry[3]) };
  }
  throw new Error('running as root and neither a `postgres` nor a `nobody` user exists to run PostgreSQL as');
}

/** Every setting name and value as PostgreSQL's command line takes it; rejects what would split into two arguments. */
export function settingArgs(settings: Record<string, string>): string[] {
  return Object.entries(settings).flatMap(([key, value]) => {
    if (!/^[a-z_][a-z0-9_.]*$/i.test(key)) throw new Error(`PostgreSQL setting name "${key}" is not a valid name`);
    return ['-c', `${key}=${value}`];
  });
}

async function acceptsConnections(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * `bin` as `user` can run it: itself, or when `user` cannot (EACCES: a directory above it is
 * closed to others), a copy of its installation (`bin`'s parent: bin, lib, share, which the
 * npm builds find relative to bin) in the temp directory, open to all to read. Named by a hash
 * of its postgres binary, so one copy serves every clone and run with the same build; made
 * under a temporary name and renamed, so a half-made copy is never used.
 */
export function binDirRunnableBy(bin: string, user: { uid: number; gid: number } | undefined, copyRoot = tmpdir()): string {
  const initdb = path.join(bin, 'initdb');
  const runs = (file: string) => spawnSync(file, ['--version'], { ...(user ?? {}), stdio: 'ignore', timeout: 10_000 }).status === 0;
  if (!user || runs(initdb)) return bin;
  const install = path.dirname(bin);
  const build = createHash('sha256').update(readFileSync(path.join(bin, 'postgres'))).digest('hex').slice(0, 16);
  const copy = path.join(copyRoot, `xyn-metrics-postgres-${build}`);
  const copiedBin = path.join(copy, path.basename(bin));
  if (!existsSync(path.join(copiedBin, 'initdb'))) {
    const staging = mkdtempSync(`${copy}.partial-`);
    try {
      chmodSync(staging, 0o755);
      for (const part of readdirSync(install)) cpSync(path.join(install, part), path.join(staging, part), { recursive: true, verbatimSymlinks: true });
      renameSync(staging, copy);
    } catch (error) {
      rmSync(staging, { recursive: true, force: true });
      // Another run made it meanwhile: use theirs.
      if (!existsSync(path.join(copiedBin, 'initdb'))) throw error;
    }
  }
  if (!runs(path.join(copiedBin, 'initdb'))) {
    throw new Error(`the PostgreSQL server user (uid ${user.uid}) can run neither ${initdb} nor its copy in ${copy}: is the temp directory (TMPDIR) closed to it too?`);
  }
  return copiedBin;
}

export async function startPostgresServer(options: PostgresServerOptions = {}): Promise<PostgresServer> {
  const user = serverUser();
  const found = options.bin ?? postgresBinDir();
  if (!found) throw new Error(`no PostgreSQL server binaries (initdb, postgres) found: ${POSTGRES_INSTALL_HINT}`);
  const bin = binDirRunnableBy(found, user);
  const extra = settingArgs(options.settings ?? {});
  const dir = mkdtempSync(path.join(tmpdir(), 'xyn-postgres-'));
  const dataDir = path.join(dir, 'data');
  const password = randomBytes(12).toString('hex');
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  try {
    // The parent stays root's; the unprivileged server user only needs to pass through it.
    chmodSync(dir, 0o755);
    mkdirSync(dataDir, { mode: 0o700 });
    if (user) chownSync(dataDir, user.uid, user.gid);
    const passwordFile = path.join(dir, 'password');
    writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
    if (user) chownSync(passwordFile, user.uid, user.gid);
    const spawnUser = user ? { uid: user.uid, gid: user.gid } : {};
    const init = spawnSync(
      path.join(bin, 'initdb'),
      ['-D', dataDir, '-U', 'postgres', `--pwfile=${passwordFile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C', '--no-sync'],
      { ...spawnUser, cwd: dir, encoding: 'utf8', timeout: START_TIMEOUT_MS },
    );
    rmSync(passwordFile, { force: true });
    if (init.status !== 0) {
      throw new Error(`initdb failed (${init.error?.message ?? `exit ${init.status}`}): ${(init.stderr || init.stdout || '').trim().slice(-2_000)}`);
    }
    const serverFiles = { ...options.files, ...(options.hba ? { 'pg_hba.conf': `${options.hba.join('\n')}\n` } : {}) };
    for (const [name, content] of Object.entries(serverFiles)) {
      const file = path.join(dataDir, name);
      writeFileSync(file, content, { mode: 0o600 });
      chmodSync(file, 0o600);
      if (user) chownSync(file, user.uid, user.gid);
    }
  } catch (error) {
    cleanup();
    throw error;
  }

  let lastError: unknown;
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort();
    const url = `postgresql://postgres:${password}@127.0.0.1:${port}/postgres`;
    const child = spawn(
      path.join(bin, 'postgres'),
      // The socket lives in the data directory: /var/run/postgresql may not exist or be writable.
      ['-D', dataDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dataDir}`, '-c', 'fsync=off', ...extra],
      { ...(user ? { uid: user.uid, gid: user.gid } : {}), cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const stderr = stderrTail(child, 4_000);
    const up = await waitUntilReady(child, () => acceptsConnections(url), START_TIMEOUT_MS, 100);
    // Our password answering proves it is our server, not one that won a port race.
    if (up && child.exitCode === null) {
      return {
        url,
        port,
        dataDir,
        password,
        async stop() {
          // SIGINT is PostgreSQL's "fast shutdown": it ends sessions and exits without waiting for clients.
          await stopChild(child, 'SIGINT', STOP_GRACE_MS);
          cleanup();
        },
      };
    }
    await stopChild(child, 'SIGINT', STOP_GRACE_MS);
    lastError = new Error(
      child.exitCode !== null ? `postgres exited with code ${child.exitCode}: ${stderr().trim().slice(-2_000)}` : `postgres did not accept connections within ${START_TIMEOUT_MS} ms: ${stderr().trim().slice(-2_000)}`,
    );
    if (!/could not bind|address already in use/i.test(stderr())) break;
  }
  cleanup();
  throw new Error(`PostgreSQL did not start: ${(lastError as Error).message}`);
}
