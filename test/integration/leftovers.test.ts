/**
 * npm test leaves nothing behind: a run whose test starts PostgreSQL (the
 * run's own), a Pushgateway, Prometheus and a bridge in a process group of its
 * own, stops none of them and then fails, or is interrupted with Ctrl-C,
 * ends with none of those processes and none of its temporary directories.
 */

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import type { LeakReport } from '../fixtures/leaky/leaky.fixture';
import { eventually } from '../support/prometheus';
import { matrixMajors } from '../../scripts/support/postgres-matrix';
import { processesOfRun } from '../../scripts/support/test-run';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const scratch = mkdtempSync(path.join(tmpdir(), 'xyn-leftovers-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Running, not a zombie: pid 1 of a container may be slow to reap (or never reap) orphans. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

/** scripts/test/main.ts (what npm test runs after tsc) on the leaky fixture, with no TEST_DATABASE_URL. */
function leakyRun(mode: 'fail' | 'hang', report: string) {
  const env: NodeJS.ProcessEnv = { ...process.env, LEAK_MODE: mode, LEAK_REPORT: report };
  delete env.TEST_DATABASE_URL;
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/test/main.ts', '--config', 'test/fixtures/leaky/vitest.config.ts'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exit };
}

async function exitWithin(run: ReturnType<typeof leakyRun>, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      run.child.kill('SIGKILL');
      reject(new Error(`the test run did not exit within ${ms} ms:\n${run.output()}`));
    }, ms);
  });
  try {
    return await Promise.race([run.exit, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function expectNothingLeft(report: LeakReport, output: string): void {
  const running = Object.entries(report.pids).filter(([, pid]) => alive(pid));
  expect(running, output).toEqual([]);
  expect(processesOfRun(report.run), output).toEqual([]);
  for (const dir of [report.tempDir, report.dataDir, report.runDir]) expect(existsSync(dir), `${dir}\n${output}`).toBe(false);
  expect(report.runDir.startsWith(tmpdir())).toBe(true);
}

describe('a test run leaves no process and no temporary directory behind', () => {
  test('when a test fails', async () => {
    const reportFile = path.join(scratch, 'fail.json');
    const run = leakyRun('fail', reportFile);
    const code = await exitWithin(run, 90_000);
    expect(code, run.output()).toBe(1);
    expect(run.output()).toMatch(/^xyn-metrics tests on Node v24\.\d+\.\d+ .*PostgreSQL \d+\.\d+ started for this run/);
    // The first line names every server: the version matrix's too (each stopped at the end, as checked below), and PgBouncer.
    const first = run.output().split('\n')[0]!;
    for (const major of matrixMajors()) expect(first).toMatch(new RegExp(`version matrix: .*PostgreSQL ${major}\\.\\d+ on 127\\.0\\.0\\.1:\\d+`));
    expect(first).toMatch(/PgBouncer \/\S*pgbouncer/);
    expect(run.output()).toContain('failing on purpose');
    const report = JSON.parse(readFileSync(reportFile, 'utf8')) as LeakReport;
    expect(Object.keys(report.pids).sort()).toEqual(['bridge', 'postgres', 'prometheus', 'pushgateway']);
    expectNothingLeft(report, run.output());
  }, 120_000);

  test('when the run is interrupted with Ctrl-C', async () => {
    const reportFile = path.join(scratch, 'hang.json');
    const run = leakyRun('hang', reportFile);
    const report = await eventually(
      'the hanging test to report what it started',
      async () => (existsSync(reportFile) ? (JSON.parse(readFileSync(reportFile, 'utf8')) as LeakReport) : undefined),
      90_000,
    );
    run.child.kill('SIGINT');
    const code = await exitWithin(run, 30_000);
    expect(code, run.output()).toBe(130);
    expectNothingLeft(report, run.output());
  }, 150_000);
});
