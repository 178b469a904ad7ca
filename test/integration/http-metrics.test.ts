/**
 * GET /metrics under real `serverless offline` (esbuild bundle, httpApi route,
 * the Lambda runner), reading a real PostgreSQL through the real Neon driver and
 * the bridge. The token check, the fresh read, the extras and "never pushes"
 * are all observed from outside, as Prometheus would see them.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metrics } from '../../functions/metrics';
import { startBridge, type Bridge } from '../../scripts/bridge/bridge';
import { captureOutput, lambdaContext, withEnv } from '../support/lambda';
import { freePort } from '../../scripts/support/net';
import { runEnv } from '../../scripts/support/test-run';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { sample, samples, startPushgateway, type TestPushgateway } from '../support/pushgateway';

const TOKEN = randomBytes(24).toString('hex');
const WRONG = randomBytes(24).toString('hex');
// A job of our own: a push by this function would show up under it and nowhere else.
const JOB = `xyn_http_${randomBytes(4).toString('hex')}`;

let db: TestDatabase;
let gateway: TestPushgateway;
let bridge: Bridge;
let offline: ChildProcess | undefined;
let offlineLog = '';
let url: string;

async function startOffline(env: Record<string, string>): Promise<void> {
  const httpPort = await freePort();
  const lambdaPort = await freePort();
  url = `http://127.0.0.1:${httpPort}/metrics`;
  // --localEnvironment hands this environment (the extras' settings) to the handler,
  // as provider.environment does in a deployment.
  offline = spawn('npx', ['serverless', 'offline', '--localEnvironment'], {
    cwd: new URL('../..', import.meta.url).pathname,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      // Stays the test run's: ended and cleaned up with it even if this file fails half-way.
      ...runEnv(),
      AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'placeholder',
      SLS_TELEMETRY_DISABLED: '1',
      SLS_NOTIFICATIONS_MODE: 'off',
      OFFLINE_HTTP_PORT: String(httpPort),
      OFFLINE_LAMBDA_PORT: String(lambdaPort),
      // Keep offline's cron for `collect` from pushing while we check that a scrape does not.
      COLLECT_SCHEDULE: 'rate(7 days)',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, so stopping it takes serverless's children along.
    detached: true,
  });
  offline.stdout?.on('data', (d: Buffer) => (offlineLog += d.toString()));
  offline.stderr?.on('data', (d: Buffer) => (offlineLog += d.toString()));

  const until = Date.now() + 90_000;
  while (!/Server ready/.test(offlineLog)) {
    if (offline.exitCode !== null) throw new Error(`serverless offline exited ${offline.exitCode}:\n${offlineLog.slice(-3000)}`);
    if (Date.now() > until) throw new Error(`serverless offline not ready after 90 s:\n${offlineLog.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function stopOffline(): Promise<void> {
  return new Promise((resolve) => {
    const child = offline;
    if (!child?.pid || child.exitCode !== null) return resolve();
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }, 5_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      resolve();
    }
  });
}

beforeAll(async () => {
  db = await createTestDatabase('httpm');
  gateway = await startPushgateway();
  bridge = await startBridge();
  await db.query(`CREATE TABLE "${db.schema}".heartbeats (worker_id text, heartbeat_at timestamptz)`);
  await db.query(`INSERT INTO "${db.schema}".heartbeats VALUES ('w1', now()), ('w2', now() - interval '10 seconds'), ('w3', now() - interval '1 hour')`);
  await db.query(`
    INSERT INTO ${db.table} (blueprint, status, run_at, queued_at, lease_expires_at, started_at, finished_at) VALUES
      ('build', 'QUEUED',    now() - interval '1 minute', now() - interval '120 seconds', NULL, NULL, NULL),
      ('build', 'QUEUED',    now() + interval '1 hour',   now(),                          NULL, NULL, NULL),
      ('deploy', 'RUNNING',  now(), now(), now() - interval '5 seconds', now(), NULL),
      ('deploy', 'SUCCEEDED', now(), now(), NULL, now() - interval '30 seconds', now() - interval '10 seconds')`);
  await startOffline({
    DATABASE_URL: db.url,
    DATABASE_WS_PROXY: bridge.proxy,
    RUNS_TABLE: db.table,
    PUSHGATEWAY_URL: gateway.url,
    PUSHGATEWAY_JOB: JOB,
    METRICS_BEARER_TOKEN: TOKEN,
    HEARTBEAT_TABLE: `${db.schema}.heartbeats`,
    HEARTBEAT_TTL_SECONDS: '60',
    BLUEPRINT_COLUMN: 'blueprint',
    RUN_STARTED_COLUMN: 'started_at',
    RUN_FINISHED_COLUMN: 'finished_at',
  });
}, 120_000);

afterAll(async () => {
  await stopOffline();
  await bridge?.close();
  await gateway?.stop();
  await db?.close();
});

function get(headers: Record<string, string> = {}) {
  return fetch(url, { headers, signal: AbortSignal.timeout(15_000) });
}

describe('GET /metrics under serverless offline', () => {
  it('answers 401 without a token and with a wrong one, before touching the database', async () => {
    const cases: Record<string, string>[] = [{}, { authorization: `Bearer ${WRONG}` }, { authorization: TOKEN }, { authorization: `Basic ${TOKEN}` }];
    for (const headers of cases) {
      const response = await get(headers);
      expect(response.status, JSON.stringify(headers)).toBe(401);
      expect(response.headers.get('www-authenticate')).toMatch(/^Bearer/);
      const body = await response.text();
      expect(body).not.toContain('xyn_queue_depth');
      expect(body).not.toContain(TOKEN);
    }
    expect(offlineLog).toContain('"msg":"scrape unauthorized"');
    expect(offlineLog).not.toContain('"msg":"scrape"');
  });

  it('serves the Prometheus text format with the bearer token: the tick\'s metrics and the extras', async () => {
    const response = await get({ authorization: `Bearer ${TOKEN}` });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe(new Registry().contentType);
    const text = await response.text();
    expect(sample(text, 'xyn_queue_depth', { status: 'QUEUED' })).toBe(2);
    expect(sample(text, 'xyn_queue_depth', { status: 'RUNNING' })).toBe(1);
    expect(sample(text, 'xyn_queue_depth', { status: 'SUCCEEDED' })).toBe(1);
    expect(sample(text, 'xyn_queue_ready_depth')).toBe(1);
    expect(sample(text, 'xyn_queue_future_depth')).toBe(1);
    expect(sample(text, 'xyn_queue_oldest_ready_seconds')).toBeGreaterThanOrEqual(120);
    expect(sample(text, 'xyn_running_with_expired_lease')).toBe(1);
    expect(sample(text, 'xyn_collector_up')).toBe(1);
    expect(sample(text, 'xyn_workers_alive')).toBe(2);
    expect(sample(text, 'xyn_blueprint_run_count', { blueprint: 'build', status: 'QUEUED' })).toBe(2);
    expect(sample(text, 'xyn_blueprint_run_count', { blueprint: 'deploy', status: 'RUNNING' })).toBe(1);
    expect(sample(text, 'xyn_blueprint_duration_seconds', { blueprint: 'deploy', quantile: '0.99' })).toBeCloseTo(20, 3);
  });

  it('reads the queue fresh on every request and never pushes', async () => {
    const auth = { authorization: `bearer ${TOKEN}` }; // the scheme is case-insensitive
    const before = sample(await (await get(auth)).text(), 'xyn_queue_ready_depth');
    await db.query(`INSERT INTO ${db.table} (status, run_at) VALUES ('QUEUED', now() - interval '1 second')`);
    const after = sample(await (await get(auth)).text(), 'xyn_queue_ready_depth');
    expect(after).toBe(before + 1);
    const pushed = await gateway.scrape();
    expect(samples(pushed, 'xyn_collector_up', { job: JOB })).toEqual([]);
    expect(pushed).not.toContain(JOB);
  });

  it('never writes the token to its log', () => {
    expect(offlineLog).toContain('"msg":"scrape"');
    expect(offlineLog).not.toContain(TOKEN);
    expect(offlineLog).not.toContain(WRONG);
  });
});

describe('the metrics handler without a configured token', () => {
  it('refuses to serve (503) instead of being open, with or without a header', async () => {
    const env = {
      DATABASE_URL: db.url,
      DATABASE_WS_PROXY: bridge.proxy,
      RUNS_TABLE: db.table,
      PUSHGATEWAY_URL: undefined,
      METRICS_BEARER_TOKEN: undefined,
    };
    const cases: Record<string, string>[] = [{}, { authorization: `Bearer ${TOKEN}` }];
    for (const headers of cases) {
      const { result, output } = await withEnv(env, () => captureOutput(() => metrics({ rawPath: '/metrics', headers }, lambdaContext(10_000))));
      expect(result?.statusCode).toBe(503);
      expect(result?.body).toMatch(/METRICS_BEARER_TOKEN is not configured/);
      expect(result?.body).not.toContain('xyn_');
      expect(output).not.toContain(TOKEN);
    }
  });

  it('answers 500 without details on bad configuration, and logs the detail', async () => {
    const env = { DATABASE_URL: db.url, RUNS_TABLE: 'bad;name', METRICS_BEARER_TOKEN: TOKEN };
    const { result, output } = await withEnv(env, () => captureOutput(() => metrics({ headers: {} }, lambdaContext(10_000))));
    expect(result?.statusCode).toBe(500);
    expect(result?.body).not.toContain('RUNS_TABLE');
    expect(output).toContain('RUNS_TABLE');
    expect(output).not.toContain(TOKEN);
  });
});
