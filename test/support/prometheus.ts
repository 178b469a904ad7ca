/**
 * The real Prometheus tools for the monitoring tests: promtool, and a
 * Prometheus server on a free loopback port with its own temporary storage,
 * configured from monitoring/prometheus.yml. A missing binary fails the suite
 * (never a skip): CI installs Debian's `prometheus` package.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../scripts/support/net';
import { startPushgateway, type TestPushgateway } from './pushgateway';

export const MONITORING_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../monitoring');
export const REPO_DIR = path.dirname(MONITORING_DIR);

function binary(variable: string, candidates: string[], what: string): string {
  const found = [process.env[variable], ...candidates].find((p): p is string => !!p && existsSync(p));
  if (!found) {
    throw new Error(`the monitoring tests need ${what}: apt-get install prometheus (or set ${variable})`);
  }
  return found;
}

export const promtoolBinary = () => binary('PROMTOOL_BIN', ['/usr/bin/promtool', '/usr/local/bin/promtool'], 'promtool');
export const prometheusBinary = () => binary('PROMETHEUS_BIN', ['/usr/bin/prometheus', '/usr/local/bin/prometheus'], 'prometheus');

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Run promtool with `args` in `cwd`; never throws on a non-zero exit (the caller asserts), and a kill is
 * said as such. `timeoutMs` only stops a hung promtool: alerts.test.yml takes 6-8 s of CPU, 11-17 s of
 * wall time on the shared 2-core machine, and a loaded one (seen: load 19) stretched it past 20 s.
 */
export function runPromtool(args: string[], cwd = REPO_DIR, timeoutMs = 120_000): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(promtoolBinary(), args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code, signal) =>
      resolve({ code, stdout, stderr: signal ? `${stderr}\npromtool ${args.join(' ')} was killed (${signal}) after ${timeoutMs / 1000} s` : stderr }),
    );
  });
}

/** Replace exactly one match, or say which expected part of prometheus.yml is gone. */
function replaceOnce(text: string, pattern: RegExp, replacement: string, what: string): string {
  const matches = text.match(new RegExp(pattern.source, pattern.flags.includes('g') ? pattern.flags : `${pattern.flags}g`));
  if (!matches || matches.length !== 1) {
    throw new Error(`monitoring/prometheus.yml changed shape: expected one ${what} (${pattern}), found ${matches?.length ?? 0}`);
  }
  return text.replace(pattern, replacement);
}

export interface TestConfigOptions {
  /** host:port of the Pushgateway to scrape. */
  pushgateway: string;
  /** Scrape and rule evaluation interval, e.g. '1s'. */
  interval: string;
  /**
   * Where the rule files are: monitoring/ by default; 'beside' keeps the bare
   * names, for modified copies passed to startPrometheus as `files`.
   */
  rules?: 'monitoring' | 'beside';
}

/**
 * The test's Prometheus configuration, derived from monitoring/prometheus.yml
 * as shipped: the same scrape job (honor_labels and all) and rule files, with
 * the test gateway's address, absolute rule paths, a short interval, and no
 * Alertmanager (alerts go nowhere off loopback).
 */
export function testPrometheusConfig(source: string, options: TestConfigOptions): string {
  let text = source;
  text = replaceOnce(text, /^(\s+scrape_interval:) \S+$/m, `$1 ${options.interval}`, 'global scrape_interval');
  text = replaceOnce(text, /^(\s+evaluation_interval:) \S+$/m, `$1 ${options.interval}`, 'global evaluation_interval');
  const ruleDir = options.rules === 'beside' ? '' : MONITORING_DIR;
  text = replaceOnce(text, /^(\s+- )rules\.yml$/m, `$1${path.join(ruleDir, 'rules.yml')}`, 'rule file rules.yml');
  text = replaceOnce(text, /^(\s+- )alerts\.yml$/m, `$1${path.join(ruleDir, 'alerts.yml')}`, 'rule file alerts.yml');
  text = replaceOnce(text, /^alerting:\n(?:[ #].*\n|\n)*/m, '', 'alerting block');
  text = replaceOnce(text, /\['pushgateway:9091'\]/, `['${options.pushgateway}']`, 'Pushgateway target');
  return text;
}

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface PromRule {
  name: string;
  query: string;
  type: 'recording' | 'alerting';
  health: string;
  lastError?: string;
  state?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface PromRuleGroup {
  name: string;
  file: string;
  rules: PromRule[];
  /** RFC 3339 time the group's last evaluation started. */
  lastEvaluation: string;
}

export interface TestPrometheus {
  url: string;
  pid: number;
  /** An instant query; throws with Prometheus's own message when it does not parse. */
  query(expr: string): Promise<PromSample[]>;
  /** GET an API path (e.g. /api/v1/rules) and return `data`. */
  api<T>(pathAndQuery: string): Promise<T>;
  ruleGroups(): Promise<PromRuleGroup[]>;
  logs(): string;
  stop(): Promise<void>;
}

async function apiGet<T>(url: string): Promise<T> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  const body = (await response.json()) as { status: string; data: T; error?: string; errorType?: string };
  if (body.status !== 'success') {
    throw new Error(`Prometheus ${response.status} ${body.errorType ?? ''}: ${body.error ?? 'unknown error'}`);
  }
  return body.data;
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const force = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

async function ready(url: string, child: ChildProcess, dataDir: string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`prometheus exited with code ${child.exitCode}`);
    try {
      const response = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1_000) });
      if (response.ok) {
        // Another process may have taken the port between freePort() and the
        // spawn; only our own server has our storage path.
        const flags = await apiGet<Record<string, string>>(`${url}/api/v1/status/flags`);
        if (flags['storage.tsdb.path'] !== dataDir) throw new Error(`port ${url} belongs to another Prometheus`);
        return;
      }
    } catch (error) {
      if ((error as Error).message.includes('another Prometheus')) throw error;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`prometheus not ready after ${timeoutMs} ms`);
}

/**
 * Start Prometheus with `config` (YAML text) and any `files` written beside it
 * (e.g. modified rule files); retried on a port race. Stop it to remove its
 * directory and storage.
 */
export async function startPrometheus(
  config: string,
  files: Record<string, string> = {},
  attempts = 3,
  /** Extra command-line flags, e.g. --web.enable-remote-write-receiver. */
  flags: string[] = [],
): Promise<TestPrometheus> {
  const dir = await mkdtemp(path.join(tmpdir(), 'xyn-prometheus-'));
  const configFile = path.join(dir, 'prometheus.yml');
  await writeFile(configFile, config);
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, path.basename(name)), text);
  let lastError: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const dataDir = path.join(dir, `data-${attempt}`);
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const child = spawn(
      prometheusBinary(),
      [`--config.file=${configFile}`, `--storage.tsdb.path=${dataDir}`, `--web.listen-address=127.0.0.1:${port}`, ...flags],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let logs = '';
    child.stderr?.on('data', (d: Buffer) => {
      logs = (logs + d.toString()).slice(-20_000);
    });
    try {
      await ready(url, child, dataDir, 15_000);
    } catch (error) {
      lastError = new Error(`${(error as Error).message}\n${logs.slice(-3_000)}`);
      await stopChild(child);
      continue;
    }
    return {
      url,
      pid: child.pid!,
      query: async (expr) =>
        (await apiGet<{ resultType: string; result: PromSample[] }>(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`)).result,
      api: (pathAndQuery) => apiGet(`${url}${pathAndQuery}`),
      ruleGroups: async () => (await apiGet<{ groups: PromRuleGroup[] }>(`${url}/api/v1/rules`)).groups,
      logs: () => logs,
      async stop() {
        await stopChild(child);
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
  await rm(dir, { recursive: true, force: true });
  throw new Error(`Prometheus did not start: ${(lastError as Error)?.message}`);
}

/**
 * A Pushgateway that is surely this test's own: no persistence file (Debian's
 * default, /var/lib/prometheus/pushgateway.data, is shared by every gateway
 * started without the flag and would load other runs' groups), and empty on
 * start (so not another test's gateway that won a port race).
 */
export async function startOwnPushgateway(attempts = 3): Promise<TestPushgateway> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const gateway = await startPushgateway(['--persistence.file=']);
    const foreign = (await gateway.scrape()).split('\n').some((line) => line.startsWith('push_time_seconds'));
    if (gateway.process.exitCode === null && !foreign) return gateway;
    lastError = new Error(`port ${gateway.port} answered with another gateway's groups`);
    await gateway.stop();
  }
  throw lastError as Error;
}

/** Poll `probe` until it returns a value other than undefined, or fail naming `what`. */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < until) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
      last = undefined;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

/**
 * Wait until every rule group has started an evaluation more than one
 * `intervalMs` after `sinceMs` (epoch ms): from then on, each rule's state
 * (an alert's pending/inactive, a recorded series) reflects the data as it
 * was at `sinceMs`. A group's evaluation timestamp is its schedule slot,
 * which may lag the wall-clock start by up to an interval, hence the margin.
 */
export function rulesEvaluatedSince(prometheus: TestPrometheus, sinceMs: number, intervalMs: number, timeoutMs = 15_000): Promise<PromRuleGroup[]> {
  return eventually(`every rule group evaluated after ${new Date(sinceMs + intervalMs).toISOString()}`, async () => {
    const groups = await prometheus.ruleGroups();
    return groups.length > 0 && groups.every((g) => Date.parse(g.lastEvaluation) > sinceMs + intervalMs) ? groups : undefined;
  }, timeoutMs);
}

export const readMonitoringFile = (name: string) => readFile(path.join(MONITORING_DIR, name), 'utf8');
