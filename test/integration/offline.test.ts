/**
 * End to end under the real local tool: `serverless offline` (serverless-esbuild
 * bundle, serverless.yml environment, the Lambda invoke API) against a real
 * PostgreSQL schema through the bridge, pushing to a real Pushgateway.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type Bridge } from '../../scripts/bridge/bridge';
import { freePort } from '../../scripts/support/net';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { sample, samples, startPushgateway, type TestPushgateway } from '../support/pushgateway';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FUNCTION_NAME = 'xyn-metrics-dev-collect';

let db: TestDatabase;
let gateway: TestPushgateway;
let bridge: Bridge;
let offline: ChildProcess;
let lambdaPort: number;
let output: string[] = [];
const workFolder = join('.tmp', `test-offline-${randomBytes(4).toString('hex')}`);

function invokeUrl(name = FUNCTION_NAME): string {
  return `http://127.0.0.1:${lambdaPort}/2015-03-31/functions/${name}/invocations`;
}

function scheduledEvent(time = new Date()) {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    account: '000000000000',
    time: time.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    region: 'eu-west-1',
    resources: [`arn:aws:events:eu-west-1:000000000000:rule/${FUNCTION_NAME}`],
    detail: {},
  };
}

async function invoke(event: unknown, name = FUNCTION_NAME) {
  const response = await fetch(invokeUrl(name), {
    method: 'POST',
    body: JSON.stringify(event),
    headers: { connection: 'close' },
  });
  return { status: response.status, functionError: response.headers.get('x-amz-function-error'), payload: (await response.json()) as Record<string, any> };
}

/** The handler's JSON log lines printed by serverless offline since `from`. */
function logLines(from: number): Record<string, unknown>[] {
  return output
    .slice(from)
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

beforeAll(async () => {
  db = await createTestDatabase('offline');
  gateway = await startPushgateway();
  const url = new URL(db.url);
  bridge = await startBridge({ allow: [`${url.hostname}:${url.port || '5432'}`] });
  lambdaPort = await freePort();

  offline = spawn(join(ROOT, 'node_modules', '.bin', 'serverless'), ['offline'], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      DATABASE_URL: db.url,
      DATABASE_WS_PROXY: bridge.proxy,
      PUSHGATEWAY_URL: gateway.url,
      PUSH_DRY_RUN: '',
      RUNS_TABLE: db.table,
      OFFLINE_LAMBDA_PORT: String(lambdaPort),
      OFFLINE_HTTP_PORT: String(await freePort()),
      ESBUILD_WORK_FOLDER: workFolder,
      AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'placeholder',
      SLS_TELEMETRY_DISABLED: '1',
      SLS_NOTIFICATIONS_MODE: 'off',
    },
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serverless offline not ready in 100 s:\n${output.join('\n')}`)), 100_000);
    offline.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serverless offline exited (${code}):\n${output.join('\n')}`));
    });
    for (const stream of [offline.stdout!, offline.stderr!]) {
      readline.createInterface({ input: stream }).on('line', (line) => {
        output.push(line);
        if (line.includes(`listening on http://127.0.0.1:${lambdaPort}`)) {
          clearTimeout(timer);
          resolve();
        }
      });
    }
  });
});

afterAll(async () => {
  if (offline?.pid !== undefined && offline.exitCode === null) {
    const gone = new Promise((resolve) => offline.once('exit', resolve));
    process.kill(-offline.pid, 'SIGINT');
    await Promise.race([gone, new Promise((r) => setTimeout(r, 8_000))]);
    try {
      process.kill(-offline.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  rmSync(join(ROOT, workFolder), { recursive: true, force: true });
  await bridge?.close();
  await gateway?.stop();
  await db?.close();
});

const job = { job: 'xyn_metrics' };

describe('collect under serverless offline', () => {
  it('invoked through the Lambda endpoint, pushes the right values to the Pushgateway', async () => {
    await db.query(`
      INSERT INTO ${db.table} (status, run_at, queued_at, lease_expires_at) VALUES
        ('QUEUED',    now() - interval '1 minute', now() - interval '300 seconds', NULL),
        ('QUEUED',    NULL,                        now() - interval '20 seconds',  NULL),
        ('QUEUED',    now() + interval '1 hour',   now(),                          NULL),
        ('RUNNING',   now(), now(), now() - interval '5 seconds'),
        ('RUNNING',   now(), now(), now() + interval '1 minute'),
        ('RUNNING',   now(), now(), now() + interval '2 minutes'),
        ('SUCCEEDED', now(), now(), NULL),
        ('SUCCEEDED', now(), now(), NULL),
        ('CANCELLED', now(), now(), NULL)`);
    const from = output.length;

    const { status, functionError, payload } = await invoke(scheduledEvent());
    expect(functionError).toBeNull();
    expect(status).toBe(200);
    expect(payload).toMatchObject({ outcome: 'ok', pushedTo: `${gateway.url}/metrics/job/xyn_metrics` });

    const text = await gateway.scrape();
    expect(sample(text, 'xyn_queue_depth', { ...job, status: 'QUEUED' })).toBe(3);
    expect(sample(text, 'xyn_queue_depth', { ...job, status: 'RUNNING' })).toBe(3);
    expect(sample(text, 'xyn_queue_depth', { ...job, status: 'SUCCEEDED' })).toBe(2);
    expect(sample(text, 'xyn_queue_depth', { ...job, status: 'FAILED' })).toBe(0);
    expect(sample(text, 'xyn_queue_depth', { ...job, status: 'CANCELLED' })).toBe(1);
    expect(sample(text, 'xyn_queue_ready_depth', job)).toBe(2);
    expect(sample(text, 'xyn_queue_future_depth', job)).toBe(1);
    const oldest = sample(text, 'xyn_queue_oldest_ready_seconds', job);
    expect(oldest).toBeGreaterThanOrEqual(300);
    expect(oldest).toBeLessThan(330);
    expect(sample(text, 'xyn_running_with_expired_lease', job)).toBe(1);
    expect(sample(text, 'xyn_running_with_active_lease', job)).toBe(2);
    expect(sample(text, 'xyn_collector_up', job)).toBe(1);

    // The handler's one JSON log line reached serverless offline's output.
    await expect.poll(() => logLines(from).filter((l) => l.msg === 'tick').length).toBeGreaterThanOrEqual(1);
    expect(logLines(from).find((l) => l.msg === 'tick')).toMatchObject({
      outcome: 'ok',
      figures: { ready: 2, future: 1, expired_leases: 1, active_leases: 2 },
    });
  });

  it('hands the request body to the handler as the event: a late scheduled event is skipped', async () => {
    const before = await gateway.scrape();
    const { status, payload } = await invoke(scheduledEvent(new Date(Date.now() - 10 * 60_000)));
    expect(status).toBe(200);
    expect(payload).toMatchObject({ outcome: 'skipped_late' });
    expect(payload.ageSeconds).toBeGreaterThanOrEqual(599);
    // Nothing was pushed: the group still holds the previous push.
    const after = await gateway.scrape();
    expect(samples(after, 'xyn_queue_depth', job)).toEqual(samples(before, 'xyn_queue_depth', job));
  });

  it('reports a failing database as a function error and pushes xyn_collector_up 0', async () => {
    await db.query(`ALTER TABLE ${db.table} RENAME TO runs_away`);
    try {
      const { status, functionError, payload } = await invoke(scheduledEvent());
      expect(status).toBe(200);
      expect(functionError).toBe('Unhandled');
      expect(payload.errorMessage).toMatch(/tick failed: database .*does not exist/);
      expect(sample(await gateway.scrape(), 'xyn_collector_up', job)).toBe(0);
    } finally {
      await db.query(`ALTER TABLE ${db.schema}.runs_away RENAME TO runs`);
    }
  });

  it('answers 404 for a function that does not exist', async () => {
    const { status } = await invoke({}, 'xyn-metrics-dev-nope');
    expect(status).toBe(404);
  });
});
