/**
 * startPostgresServer: the throw-away PostgreSQL npm test starts when
 * TEST_DATABASE_URL is unset (and tests start for a server of their own), and
 * for each major of the version matrix, whose project this file runs in too.
 */

import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { matrixBinDir, matrixMajors } from '../../scripts/support/postgres-matrix';
import { binDirRunnableBy, postgresBinDir, serverUser, settingArgs, startPostgresServer } from '../../scripts/support/postgres-server';
import { portAnswers } from '../../scripts/support/net';
import { ADMIN_URL } from '../support/postgres';

describe('startPostgresServer', () => {
  it('starts a server with the given settings on its URL, not as root, and stop() removes it', async () => {
    const server = await startPostgresServer({ settings: { work_mem: '7MB', application_name: 'xyn-test-server' } });
    let stopped = false;
    try {
      expect(server.url).toBe(`postgresql://postgres:${new URL(server.url).password}@127.0.0.1:${server.port}/postgres`);
      expect(new URL(server.url).password).toMatch(/^[0-9a-f]{24}$/);
      const client = new pg.Client({ connectionString: server.url });
      await client.connect();
      try {
        expect((await client.query('SHOW work_mem')).rows[0]).toEqual({ work_mem: '7MB' });
        expect((await client.query<{ data_directory: string }>('SHOW data_directory')).rows[0]!.data_directory).toBe(server.dataDir);
      } finally {
        await client.end();
      }
      // The wrong password is refused: the server checks passwords (scram-sha-256), it does not trust.
      const wrong = new URL(server.url);
      wrong.password = 'not-the-password';
      await expect(new pg.Client({ connectionString: wrong.toString() }).connect()).rejects.toThrow(/password authentication failed/);

      const postmaster = Number(readFileSync(path.join(server.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${postmaster}/status`, 'utf8'))![1]);
      if (process.getuid?.() === 0) expect(uid).not.toBe(0);

      await server.stop();
      stopped = true;
      expect(existsSync(path.dirname(server.dataDir))).toBe(false);
      expect(await portAnswers(server.port)).toBe(false);
    } finally {
      if (!stopped) await server.stop();
    }
  });

  it('the servers of this project are the major it is named for: the run\'s, and the binaries a test starts one from', async () => {
    const client = new pg.Client({ connectionString: ADMIN_URL });
    await client.connect();
    let running: number;
    try {
      running = Math.floor(Number((await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0]!.v) / 10_000);
    } finally {
      await client.end();
    }
    expect(running).toBeGreaterThanOrEqual(13);
    // postgres-<major> projects set it (vitest.config.ts); the primary project runs whatever the run's server is.
    const major = process.env.XYN_TEST_POSTGRES_MAJOR;
    if (major !== undefined) {
      expect(running).toBe(Number(major));
      // database-tls.test.ts's own server comes from PG_BIN: the same major.
      const version = spawnSync(path.join(postgresBinDir()!, 'postgres'), ['--version'], { encoding: 'utf8' });
      expect(version.stdout, version.stderr).toMatch(new RegExp(`\\(PostgreSQL\\) ${major}\\.`));
    }
  });

  it('the version matrix comes from package.json, each major\'s binaries linked and runnable (not a skip on this machine)', () => {
    const majors = matrixMajors();
    expect(majors.length).toBeGreaterThanOrEqual(2);
    expect(majors[0]).toBeLessThanOrEqual(14);
    expect(majors.at(-1)).toBeGreaterThanOrEqual(18);
    for (const major of majors) {
      const bin = matrixBinDir(major);
      const version = spawnSync(path.join(bin, 'postgres'), ['--version'], { encoding: 'utf8' });
      expect(version.stdout, version.stderr).toMatch(new RegExp(`\\(PostgreSQL\\) ${major}\\.`));
    }
  });

  it('as root, runs binaries below a directory closed to others (a clone in /root or mktemp -d) from one copy open to the server user', async () => {
    const user = serverUser();
    const installed = path.dirname(matrixBinDir(matrixMajors()[0]!));
    const closed = mkdtempSync(path.join(tmpdir(), 'xyn-closed-')); // 0700, as mktemp -d makes it
    const copies = mkdtempSync(path.join(tmpdir(), 'xyn-copies-'));
    chmodSync(copies, 0o755); // as the temp directory is
    try {
      cpSync(installed, path.join(closed, 'native'), { recursive: true, verbatimSymlinks: true });
      const bin = path.join(closed, 'native', 'bin');
      if (!user) {
        // Not root: the server runs as ourselves, who can reach our own directories.
        expect(binDirRunnableBy(bin, user, copies)).toBe(bin);
        return;
      }
      // What failed before: the server user cannot even start initdb there.
      expect(spawnSync(path.join(bin, 'initdb'), ['--version'], { uid: user.uid, gid: user.gid }).error?.message).toMatch(/EACCES/);
      const runnable = binDirRunnableBy(bin, user, copies);
      expect(path.dirname(path.dirname(runnable))).toBe(copies);
      expect(readdirSync(copies)).toEqual([path.basename(path.dirname(runnable))]);
      // The same build again: the same copy, no second one.
      expect(binDirRunnableBy(bin, user, copies)).toBe(runnable);
      expect(readdirSync(copies)).toHaveLength(1);
      const server = await startPostgresServer({ bin: runnable });
      try {
        const client = new pg.Client({ connectionString: server.url });
        await client.connect();
        try {
          expect((await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0]!.v).toMatch(new RegExp(`^${matrixMajors()[0]}`));
        } finally {
          await client.end();
        }
      } finally {
        await server.stop();
      }
    } finally {
      rmSync(closed, { recursive: true, force: true });
      rmSync(copies, { recursive: true, force: true });
    }
  });

  it('rejects a setting name that is not one, naming it', () => {
    expect(settingArgs({ ssl: 'on', 'ssl_cert_file': '/x/server.crt' })).toEqual(['-c', 'ssl=on', '-c', 'ssl_cert_file=/x/server.crt']);
    expect(() => settingArgs({ 'ssl=on -c fsync': 'off' })).toThrow(/PostgreSQL setting name "ssl=on -c fsync" is not a valid name/);
  });
});
