/**
 * A warm Lambda container runs the handler again and again in one process.
 * Invoked 50 times here against real PostgreSQL (through the bridge, run as its
 * own process so this process holds only what the handler opens) and a real
 * Pushgateway: every tick reads and pushes the same figures, prom-client's
 * global registry stays empty, and no socket, server or timer is left behind.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { register as globalRegistry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { invokeCollect } from '../support/lambda';
import { resourceCensus, settleTo } from '../support/misbehaving';
import { freePort } from '../../scripts/support/net';
import { ADMIN_URL, createTestDatabase, type TestDatabase } from '../support/postgres';
import { sample, samples, startPushgateway, type TestPushgateway } from '../support/pushgateway';

// Debian's pushgateway persists to /var/lib/prometheus/pushgateway.data by default,
// which every test gateway on the machine would share; keep ours in memory.
const IN_MEMORY = ['--persistence.file='];

const INVOCATIONS = 50;
const root = path.resolve(__dirname, '../..');

let db: TestDatabase;
let gateway: TestPushgateway;
let bridge: ChildProcess;
let proxy: string;

async function startBridgeProcess(): Promise<{ child: ChildProcess; proxy: string }> {
  const port = await freePort();
  const target = new URL(ADMIN_URL);
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/bridge/main.ts'], {
    cwd: root,
    env: { ...process.env, BRIDGE_PORT: String(port), BRIDGE_ALLOW: `${target.hostname}:${target.port || '5432'}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const proxyValue = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`bridge did not start: ${output}`)), 20_000);
    const read = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /DATABASE_WS_PROXY=(\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    child.stdout!.on('data', read);
    child.stderr!.on('data', read);
    child.once('exit', (code) => reject(new Error(`bridge exited with ${code}: ${output}`)));
  });
  return { child, proxy: proxyValue };
}

beforeAll(async () => {
  db = await createTestDatabase('warm');
  gateway = await startPushgateway(IN_MEMORY);
  ({ child: bridge, proxy } = await startBridgeProcess());
  await db.query(`
    INSERT INTO ${db.table} (status, run_at, queued_at, lease_expires_at) VALUES
      ('QUEUED',    now() - interval '1 minute', now() - interval '300 seconds', NULL),
      ('QUEUED',    NULL,                        now() - interval '20 seconds',  NULL),
      ('QUEUED',    now() + interval '1 hour',   now(),                          NULL),
      ('RUNNING',   now(), now(), now() - interval '1 minute'),
      ('RUNNING',   now(), now(), now() + interval '1 hour'),
      ('RUNNING',   now(), now(), now() + interval '1 hour'),
      ('SUCCEEDED', now(), now(), NULL),
      ('FAILED',    now(), now(), NULL)`);
});
afterAll(async () => {
  if (bridge && bridge.exitCode === null) {
    const exited = new Promise((r) => bridge.once('exit', r));
    bridge.kill('SIGTERM');
    await exited;
  }
  await gateway?.stop();
  await db?.close();
});

async function invokeOnce() {
  const env = {
    DATABASE_URL: db.url,
    DATABASE_WS_PROXY: proxy,
    PUSHGATEWAY_URL: gateway.url,
    PUSHGATEWAY_JOB: 'xyn_warm',
    RUNS_TABLE: db.table,
  };
  const { output, result, error } = await invokeCollect(env);
  expect(error).toBeUndefined();
  const lines = output.trim().split('\n');
  expect(lines).toHaveLength(1);
  return { result, line: JSON.parse(lines[0]!) as Record<string, any> };
}

const expectedFigures = {
  ready: 2,
  future: 1,
  expired_leases: 1,
  active_leases: 2,
  depth: { QUEUED: 3, RUNNING: 3, SUCCEEDED: 1, FAILED: 1, CANCELLED: 0 },
};

describe(`a warm container: the handler invoked ${INVOCATIONS} times in one process`, () => {
  it('reads and pushes the same figures every time, registers nothing globally, and leaves nothing behind', async () => {
    // The first invocation loads what a cold start loads (modules, lazily created natives).
    await invokeOnce();
    const baseline = resourceCensus();
    const heapBefore = process.memoryUsage().heapUsed;
    let lastOldest = 0;

    for (let i = 1; i <= INVOCATIONS; i++) {
      const { result, line } = await invokeOnce();
      expect(result, `invocation ${i}`).toMatchObject({ outcome: 'ok', pushedTo: `${gateway.url}/metrics/job/xyn_warm` });
      expect(line).toMatchObject({ level: 'info', outcome: 'ok', push_attempts: 1, figures: expectedFigures });
      expect(line.db_close, `invocation ${i}: the database close had to be cut`).toBeUndefined();
      // The one figure that moves: the oldest ready run ages with the database clock.
      expect(line.figures.oldest_ready_seconds).toBeGreaterThanOrEqual(Math.max(lastOldest, 300));
      lastOldest = line.figures.oldest_ready_seconds;

      expect(globalRegistry.getMetricsAsArray(), `invocation ${i}: a metric in the global registry`).toEqual([]);
      expect(await settleTo(baseline, 2_000), `invocation ${i}: resources left behind`).toEqual({});
    }

    expect((await globalRegistry.metrics()).trim()).toBe('');
    const heapGrowthMb = (process.memoryUsage().heapUsed - heapBefore) / 1024 / 1024;
    // Not a leak test of its own (GC timing varies); a gross leak per tick would show here.
    expect(heapGrowthMb).toBeLessThan(50);

    // The gateway holds one group with the same figures, pushed by the last tick.
    const text = await gateway.scrape();
    const job = { job: 'xyn_warm' };
    expect(samples(text, 'xyn_collector_up'), 'one group on the gateway').toHaveLength(1);
    expect(sample(text, 'xyn_collector_up', job)).toBe(1);
    expect(sample(text, 'xyn_queue_ready_depth', job)).toBe(2);
    expect(sample(text, 'xyn_queue_future_depth', job)).toBe(1);
    expect(sample(text, 'xyn_running_with_expired_lease', job)).toBe(1);
    expect(sample(text, 'xyn_running_with_active_lease', job)).toBe(2);
    for (const [status, count] of Object.entries(expectedFigures.depth)) {
      expect(sample(text, 'xyn_queue_depth', { ...job, status }), status).toBe(count);
    }
    // ~0.3 s a tick on an idle 2-core machine (SCRAM in the driver's JavaScript is most of
    // it); the generous bound is for a machine busy with other suites.
  }, 180_000);
});
