/**
 * `npm start` as a user runs it: scripts/dev/main.ts as a child process, on the
 * embedded demo database, with the local Pushgateway it starts itself. It must
 * serve ticks whose numbers move, answer on-demand invocations, and on SIGINT
 * leave no process and no port behind and exit 0.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { pushgatewayBinary, sample, startPushgateway } from '../support/pushgateway';
import { eventually } from '../support/prometheus';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Run {
  child: ChildProcess;
  output: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const runs: Run[] = [];

/** The dev stack with a clean environment: no DATABASE_URL, no PUSHGATEWAY_URL, nothing chosen for it. */
function startDev(extra: Record<string, string> = {}): Run {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const name of ['DATABASE_URL', 'DATABASE_WS_PROXY', 'DATABASE_ALLOW_PLAINTEXT', 'PUSHGATEWAY_URL', 'PUSH_DRY_RUN', 'RUNS_TABLE', 'VERBOSE', 'OFFLINE_LAMBDA_PORT', 'OFFLINE_HTTP_PORT']) {
    if (!(name in extra)) delete env[name];
  }
  // As npm start runs it: node --import tsx, one process. The tsx CLI would sit in between and, when
  // the script does not confirm a relayed SIGINT within 30 ms (a loaded machine), kill it and exit 130.
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/dev/main.ts'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const run = { child, output: () => output, exit };
  runs.push(run);
  return run;
}

afterAll(async () => {
  // Only if a test failed half-way: never leave the stack running.
  for (const run of runs) {
    if (run.child.exitCode === null && run.child.signalCode === null) {
      for (const pid of descendants(run.child.pid!)) signal(pid, 'SIGKILL');
      run.child.kill('SIGKILL');
    }
  }
});

async function waitFor<T>(what: string, run: Run, probe: () => T | undefined, timeoutMs: number): Promise<T> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const value = probe();
    if (value !== undefined) return value;
    if (run.child.exitCode !== null) throw new Error(`dev stack exited (${run.child.exitCode}) waiting for ${what}:\n${run.output()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no ${what} within ${timeoutMs / 1000} s:\n${run.output()}`);
}

/** Every process below `pid`, from /proc (Linux). */
function descendants(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(entry)]);
    } catch {
      // exited meanwhile
    }
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of parents.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // gone
  }
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function tickLines(output: string): string[] {
  return output.split('\n').filter((l) => /^\d\d:\d\d:\d\d {2}tick ok {3}/.test(l));
}

/** A tick line without its clock and duration: what the queue looked like. */
function figuresOf(line: string): string {
  return line.slice(8).replace(/\| \d+ ms \|/, '|').replace(/oldest due \S+\)/, ')');
}

const GAUGES = [
  'xyn_queue_ready_depth',
  'xyn_queue_future_depth',
  'xyn_queue_oldest_ready_seconds',
  'xyn_running_with_expired_lease',
  'xyn_running_with_active_lease',
  'xyn_queue_oldest_due_seconds',
  'xyn_running_without_lease',
  'xyn_runs_started_in_window',
  'xyn_flow_window_seconds',
  'xyn_collector_up',
  'xyn_collector_duration_seconds',
];

/**
 * A persistence file holding a marker group, written by a real gateway, and a
 * wrapper binary that defaults --persistence.file to it (as Debian's build does
 * with its system file) unless the caller gives the flag.
 */
async function persistedMarkerGroup(): Promise<{ binary: string; file: string; job: string; content: Buffer; mtimeMs: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'xyn-dev-persist-'));
  const file = join(dir, 'pushgateway.data');
  const job = 'xyn_marker_from_another_gateway';
  const writer = await startPushgateway(['--persistence.file=' + file, '--persistence.interval=100ms']);
  const put = await fetch(`${writer.url}/metrics/job/${job}`, { method: 'PUT', body: 'marker_metric 1\n' });
  expect(put.status).toBe(200);
  await writer.stop();
  expect(existsSync(file)).toBe(true);
  const binary = join(dir, 'prometheus-pushgateway');
  writeFileSync(
    binary,
    `#!/bin/sh\ncase "$*" in *--persistence.file*) exec ${pushgatewayBinary()} "$@";; esac\nexec ${pushgatewayBinary()} --persistence.file=${file} "$@"\n`,
    { mode: 0o755 },
  );
  return { binary, file, job, content: readFileSync(file), mtimeMs: statSync(file).mtimeMs };
}

describe('npm start (scripts/dev/main.ts)', () => {
  // Typically 30-40 s; the budget leaves room for a loaded CI machine (offline + esbuild + PGlite start).
  it('serves ticks with moving numbers to a local Pushgateway, invokes on demand, and stops cleanly on SIGINT', { timeout: 150_000 }, async () => {
    // A gateway binary whose built-in default --persistence.file holds another gateway's groups, as
    // Debian's build defaults it to one system file (issue 25): npm start's gateway must not read it or write it.
    const persisted = await persistedMarkerGroup();
    const run = startDev({ DEV_TICK_SECONDS: '2', PUSHGATEWAY_BIN: persisted.binary });

    const banner = await waitFor('banner', run, () => /Lambda {5}(http:\/\/\S+)/.exec(run.output())?.[1], 110_000);
    const out = run.output();
    const gatewayUrl = /pushing to (http:\/\/127\.0\.0\.1:\d+) \(local Pushgateway/.exec(out)?.[1];
    expect(gatewayUrl, out).toBeDefined();
    expect(out).toMatch(/database {3}embedded PGlite demo/);
    expect(out).toContain(`curl -s -X POST ${banner} -d '{}'`);
    expect(out).toContain('aws lambda invoke --endpoint-url');
    const ports = [
      Number(new URL(banner).port),
      Number(new URL(gatewayUrl!).port),
      Number(/postgresql:\/\/postgres@127\.0\.0\.1:(\d+)/.exec(out)![1]),
      Number(/bridge {5}ws:\/\/127\.0\.0\.1:(\d+)/.exec(out)![1]),
    ];

    // The tick at start, then DEV_TICK_SECONDS ticks: at least three, numbers moving.
    const ticks = await waitFor('three ticks', run, () => {
      const lines = tickLines(run.output());
      return lines.length >= 3 ? lines : undefined;
    }, 40_000);
    expect(ticks[0]).toMatch(/pushed to http:\/\/127\.0\.0\.1:\d+\/metrics\/job\/xyn_metrics$/);
    // The demo worker records start and finish times: throughput and wait on every tick line.
    for (const tick of ticks) expect(tick).toMatch(/\| last 5m00s: started \d+, finished \d+ \(\d+ failed\), (wait p50 \S+ p90 \S+|no wait \(nothing started\)) \|/);
    expect(new Set(ticks.map(figuresOf)).size, ticks.join('\n')).toBeGreaterThan(1);

    // The Pushgateway holds every gauge, consistent within one push, and nothing of the shared file.
    const text = await (await fetch(`${gatewayUrl}/metrics`)).text();
    expect(text).not.toContain(persisted.job);
    for (const name of GAUGES) expect(() => sample(text, name, { job: 'xyn_metrics' }), name).not.toThrow();
    const depth = (status: string) => sample(text, 'xyn_queue_depth', { job: 'xyn_metrics', status });
    for (const status of ['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED']) expect(depth(status)).toBeGreaterThan(0);
    expect(sample(text, 'xyn_queue_ready_depth', { job: 'xyn_metrics' }) + sample(text, 'xyn_queue_future_depth', { job: 'xyn_metrics' })).toBe(depth('QUEUED'));
    expect(sample(text, 'xyn_collector_up', { job: 'xyn_metrics' })).toBe(1);
    for (const status of ['SUCCEEDED', 'FAILED', 'CANCELLED']) {
      expect(() => sample(text, 'xyn_runs_finished_in_window', { job: 'xyn_metrics', status }), status).not.toThrow();
    }

    // GET /metrics, exactly as printed: the throw-away token opens it, no token does not.
    const scrape = /scrape {5}curl -H 'Authorization: Bearer ([0-9a-f]{32,})' (http:\/\/127\.0\.0\.1:\d+\/metrics) {3}\(a throw-away/.exec(run.output());
    expect(scrape, run.output()).not.toBeNull();
    const [, token, metricsUrl] = scrape!;
    const scraped = await fetch(metricsUrl!, { headers: { authorization: `Bearer ${token}` } });
    const scrapedText = await scraped.text();
    expect(scraped.status, scrapedText).toBe(200);
    expect(() => sample(scrapedText, 'xyn_queue_ready_depth'), scrapedText).not.toThrow();
    expect((await fetch(metricsUrl!)).status).toBe(401);
    const scrapeLines = await waitFor('the two scrape lines', run, () => {
      const lines = run.output().split('\n').filter((l) => /^\d\d:\d\d:\d\d {2}scrape {4}/.test(l));
      return lines.length >= 2 ? lines : undefined;
    }, 10_000);
    expect(scrapeLines[0]).toMatch(/scrape {4}HTTP 200 scrape \| \d+ ms$/);
    expect(scrapeLines[1]).toMatch(/scrape {4}HTTP 401 scrape unauthorized$/);
    expect(run.output()).not.toMatch(/FAILED .*scrape/);
    ports.push(Number(new URL(metricsUrl!).port));

    // On demand, exactly as printed: POST '{}' to the Lambda endpoint.
    const before = tickLines(run.output()).length;
    const response = await fetch(banner, { method: 'POST', body: '{}' });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ outcome: 'ok' });
    await waitFor('the on-demand tick line', run, () => (tickLines(run.output()).length > before ? true : undefined), 10_000);

    // Ctrl-C: everything goes, every port is freed, exit 0.
    const pids = [run.child.pid!, ...descendants(run.child.pid!)];
    expect(pids.length).toBeGreaterThanOrEqual(3); // dev.ts, serverless offline, the Pushgateway at least
    const ownFolders = readdirSync(join(ROOT, '.tmp')).filter((d) => pids.some((pid) => d === `offline-${pid}`));
    expect(ownFolders).toHaveLength(1);
    run.child.kill('SIGINT');
    const exit = await Promise.race([run.exit, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000))]);
    expect(exit, run.output()).toEqual({ code: 0, signal: null });
    expect(run.output()).toContain('SIGINT: stopping');
    expect(run.output()).not.toMatch(/exited \(|Error:|\n\s+at /);
    await eventually('every process of the stack gone', async () => (pids.some(alive) ? undefined : true), 5_000).catch(() => {});
    expect(pids.filter(alive)).toEqual([]);
    for (const port of ports) expect(await portIsFree(port), `port ${port}`).toBe(true);
    // Its esbuild work folder went too.
    expect(existsSync(join(ROOT, '.tmp', ownFolders[0]!))).toBe(false);
    // And the shared persistence file is as it was.
    expect(readFileSync(persisted.file).equals(persisted.content)).toBe(true);
    expect(statSync(persisted.file).mtimeMs).toBe(persisted.mtimeMs);
  });

  it('names a busy OFFLINE_LAMBDA_PORT in one clear line and exits 1', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as net.AddressInfo).port;
    try {
      const run = startDev({ OFFLINE_LAMBDA_PORT: String(port) });
      const exit = await run.exit;
      expect(exit.code).toBe(1);
      expect(run.output().trim()).toBe(
        `xyn-metrics dev: port ${port} (OFFLINE_LAMBDA_PORT) is already in use on 127.0.0.1: stop what holds it, choose another (OFFLINE_LAMBDA_PORT=${port + 100} npm start), or unset OFFLINE_LAMBDA_PORT to pick a free one`,
      );
    } finally {
      holder.close();
    }
  });

  it('refuses a DATABASE_URL that would send a remote session in clear, in one line, before starting anything', async () => {
    const run = startDev({ DATABASE_URL: 'postgresql://xyn:Dev-Secret-9@db.example.invalid:5432/xyn?sslmode=disable' });
    const exit = await run.exit;
    expect(exit.code).toBe(1);
    expect(run.output().trim()).toBe(
      'xyn-metrics dev: DATABASE_URL sslmode=disable may send the session to db.example.invalid in clear text; use sslmode=verify-full (the default) or require, or set DATABASE_ALLOW_PLAINTEXT=true',
    );
  });
});
