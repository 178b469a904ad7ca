/**
 * No late ticks: the deployed template drops late or failed deliveries (both
 * schedule forms), and the handler itself refuses an event older than
 * MAX_EVENT_AGE_SECONDS, so a late delivery cannot overwrite fresher figures.
 */

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { collect } from '../../functions/collect';
import { startBridge, type Bridge } from '../../scripts/bridge/bridge';
import { deadlineIn } from '../../lib/core/deadline';
import { buildRegistry } from '../../lib/metrics/registry';
import { pushToGateway } from '../../lib/sinks/pushgateway';
import type { QueueSnapshot } from '../../lib/source/snapshot';
import { lintTemplates, unacceptedMatches } from '../support/cfn-lint';
import { scheduledEvent, invokeCollect } from '../support/lambda';
import { silentTcpServer, type Misbehaving } from '../support/misbehaving';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { sample, samples, startPushgateway, type TestPushgateway } from '../support/pushgateway';

// Debian's pushgateway persists to /var/lib/prometheus/pushgateway.data by default,
// which every test gateway on the machine would share; keep ours in memory.
const IN_MEMORY = ['--persistence.file='];

const run = promisify(execFile);
const root = path.resolve(__dirname, '../..');

type Resources = Record<string, { Type: string; Properties: Record<string, any> }>;

/** `serverless package` (offline, placeholder credentials) with the given schedule method; the template's resources. */
async function packagedResources(method: string, outDir: string): Promise<Resources> {
  const dir = path.join(outDir, method);
  await run('bash', ['scripts/deploy/package.sh', '--package', dir], {
    cwd: root,
    // A deploy names its region explicitly; the work folder is this run's own (parallel packagings).
    env: {
      ...process.env,
      AWS_REGION: 'eu-west-1',
      COLLECT_SCHEDULE_METHOD: method,
      COLLECT_SCHEDULE: 'rate(1 minute)',
      ESBUILD_WORK_FOLDER: path.join('.tmp', `late-ticks-${path.basename(outDir)}-${method}`),
    },
    // Much of it may be spent waiting for the checkout's packaging lock (scripts/deploy/locked.sh).
    timeout: 600_000,
  });
  const template = JSON.parse(await readFile(path.join(dir, 'cloudformation-template-update-stack.json'), 'utf8'));
  return template.Resources as Resources;
}

function ofType(resources: Resources, type: string) {
  return Object.values(resources).filter((r) => r.Type === type);
}

describe('the packaged template drops late and failed deliveries', () => {
  let outDir: string;
  let eventBus: Resources;
  let scheduler: Resources;

  beforeAll(async () => {
    outDir = await mkdtemp(path.join(tmpdir(), 'xyn-package-'));
    eventBus = await packagedResources('eventBus', outDir);
    scheduler = await packagedResources('scheduler', outDir);
  }, 900_000);
  afterAll(async () => {
    if (outDir) await rm(outDir, { recursive: true, force: true });
  });

  it.each([
    ['eventBus', () => eventBus],
    ['scheduler', () => scheduler],
  ])('%s: Lambda keeps no async event longer than one period and retries none; one tick at a time', (_method, resources) => {
    const [config, ...more] = ofType(resources(), 'AWS::Lambda::EventInvokeConfig');
    expect(more).toEqual([]);
    expect(config!.Properties).toMatchObject({ MaximumEventAgeInSeconds: 60, MaximumRetryAttempts: 0 });
    const [fn] = ofType(resources(), 'AWS::Lambda::Function');
    expect(fn!.Properties.ReservedConcurrentExecutions).toBe(1);
  });

  it('both templates pass cfn-lint (no error, no warning but those test/support/cfn-lint.ts accepts)', () => {
    const files = ['eventBus', 'scheduler'].map((method) => path.join(outDir, method, 'cloudformation-template-update-stack.json'));
    expect(unacceptedMatches(lintTemplates(files, 'eu-west-1'))).toEqual([]);
  }, 180_000);

  it('eventBus (default): a scheduled rule whose target redelivers nothing late', () => {
    const [rule, ...more] = ofType(eventBus, 'AWS::Events::Rule');
    expect(more).toEqual([]);
    expect(rule!.Properties.ScheduleExpression).toBe('rate(1 minute)');
    expect(rule!.Properties.Targets).toHaveLength(1);
    expect(rule!.Properties.Targets[0].RetryPolicy).toEqual({ MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60 });
    // The rule's own event carries `time`; no input may replace it.
    expect(rule!.Properties.Targets[0].Input).toBeUndefined();
    expect(ofType(eventBus, 'AWS::Scheduler::Schedule')).toEqual([]);
  });

  it('scheduler: an EventBridge Scheduler schedule with no retries (not its 185 / 24 h default) and the scheduled time as `time`', () => {
    const [schedule, ...more] = ofType(scheduler, 'AWS::Scheduler::Schedule');
    expect(more).toEqual([]);
    expect(ofType(scheduler, 'AWS::Events::Rule')).toEqual([]);
    expect(schedule!.Properties).toMatchObject({ ScheduleExpression: 'rate(1 minute)', State: 'ENABLED', FlexibleTimeWindow: { Mode: 'OFF' } });
    expect(schedule!.Properties.Target.RetryPolicy).toEqual({ MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60 });
    expect(JSON.parse(schedule!.Properties.Target.Input)).toMatchObject({ time: '<aws.scheduler.scheduled-time>', source: 'aws.scheduler' });
  });
});

describe('the handler refuses a late event', () => {
  let db: TestDatabase;
  let gateway: TestPushgateway;
  let bridge: Bridge;
  let silent: Misbehaving;
  const job = { job: 'xyn_late' };

  beforeAll(async () => {
    db = await createTestDatabase('late');
    gateway = await startPushgateway(IN_MEMORY);
    bridge = await startBridge();
    silent = await silentTcpServer();
  });
  afterAll(async () => {
    await silent?.close();
    await bridge?.close();
    await gateway?.stop();
    await db?.close();
  });

  async function invoke(event: Parameters<typeof collect>[0], over: Record<string, string> = {}) {
    const env = {
      DATABASE_URL: db.url,
      DATABASE_WS_PROXY: bridge.proxy,
      PUSHGATEWAY_URL: gateway.url,
      PUSHGATEWAY_JOB: 'xyn_late',
      RUNS_TABLE: db.table,
      MAX_EVENT_AGE_SECONDS: '90',
      ...over,
    };
    const { output, result, error } = await invokeCollect(env, event);
    const lines = output.trim().split('\n');
    expect(lines, output).toHaveLength(1);
    return { result, error: error as Error | undefined, line: JSON.parse(lines[0]!) as Record<string, unknown> };
  }

  const ago = (seconds: number) => new Date(Date.now() - seconds * 1000);
  const pushTime = async () => sample(await gateway.scrape(), 'push_time_seconds', job);

  it('a late delivery touches neither the database nor the gateway, and cannot overwrite fresher figures', async () => {
    await db.query(`INSERT INTO ${db.table} (status, run_at) VALUES ('QUEUED', now() - interval '1 minute')`);
    const fresh = await invoke(scheduledEvent(ago(5)));
    expect(fresh.result).toMatchObject({ outcome: 'ok' });
    expect(sample(await gateway.scrape(), 'xyn_queue_ready_depth', job)).toBe(1);
    const pushedAt = await pushTime();

    // The queue changes; then the platform delivers a tick scheduled 10 minutes ago.
    await db.query(`INSERT INTO ${db.table} (status, run_at) VALUES ('QUEUED', now() - interval '1 minute')`);
    const late = await invoke(scheduledEvent(ago(600)), { DATABASE_WS_PROXY: silent.address });
    expect(late.error).toBeUndefined();
    expect(late.result).toMatchObject({ outcome: 'skipped_late' });
    expect((late.result as { ageSeconds: number }).ageSeconds).toBeGreaterThanOrEqual(600);
    expect(late.line).toMatchObject({ level: 'warn', msg: 'late tick skipped', outcome: 'skipped_late', max_event_age_seconds: 90 });
    expect(late.line.age_seconds as number).toBeGreaterThanOrEqual(600);
    expect(silent.received(), 'the late tick opened a database connection').toBe(0);
    expect(await pushTime(), 'the late tick pushed').toBe(pushedAt);
    expect(sample(await gateway.scrape(), 'xyn_queue_ready_depth', job)).toBe(1);

    // The next tick on time reports the change.
    await invoke(scheduledEvent(ago(1)));
    expect(sample(await gateway.scrape(), 'xyn_queue_ready_depth', job)).toBe(2);
  });

  it('an event within MAX_EVENT_AGE_SECONDS is pushed', async () => {
    const before = await pushTime();
    const { result } = await invoke(scheduledEvent(ago(60)));
    expect(result).toMatchObject({ outcome: 'ok' });
    expect(await pushTime()).toBeGreaterThan(before);
  });

  it('the EventBridge Scheduler input ({time: <aws.scheduler.scheduled-time>, …}) is checked the same way', async () => {
    const schedulerEvent = (at: Date) => ({ time: at.toISOString().replace(/\.\d{3}Z$/, 'Z'), source: 'aws.scheduler', id: 'd32c5kddcf5bb8c3' });
    const before = await pushTime();
    const late = await invoke(schedulerEvent(ago(300)), { DATABASE_WS_PROXY: silent.address });
    expect(late.result).toMatchObject({ outcome: 'skipped_late' });
    expect(await pushTime()).toBe(before);
    const onTime = await invoke(schedulerEvent(ago(2)));
    expect(onTime.result).toMatchObject({ outcome: 'ok' });
    expect(await pushTime()).toBeGreaterThan(before);
  });

  it('an event time that is not a timestamp fails the invocation with one line and pushes nothing', async () => {
    const before = await pushTime();
    const { error, line } = await invoke({ time: '<aws.scheduler.scheduled-time>' }, { DATABASE_WS_PROXY: silent.address });
    expect(error?.message).toBe(
      'xyn-metrics: the event\'s time "<aws.scheduler.scheduled-time>" is not a timestamp; the schedule must deliver its scheduled time in "time"',
    );
    expect(line).toMatchObject({ level: 'error', msg: 'bad scheduled event' });
    expect(silent.received()).toBe(0);
    expect(await pushTime()).toBe(before);
  });
});

describe('overlapping pushes', () => {
  let gateway: TestPushgateway;
  beforeAll(async () => {
    gateway = await startPushgateway(IN_MEMORY);
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  function snapshot(statuses: string[], ready: number): QueueSnapshot {
    return {
      dbNowSeconds: 0,
      statuses: statuses.map((status) => ({ status, count: ready, estimated: false })),
      ready,
      future: 0,
      oldestReadySeconds: 0,
      oldestDueSeconds: 0,
      expiredLeases: 0,
      activeLeases: 0,
      runningWithoutLease: 0,
    };
  }

  it('racing PUTs leave one whole registry in the group, never a mix (why reserved concurrency 1 is enough)', async () => {
    const config = { url: gateway.url, auth: undefined, job: 'xyn_race', grouping: {}, ca: undefined };
    const a = buildRegistry(snapshot(['A1', 'A2'], 1), { up: true, durationSeconds: 0.1 });
    const b = buildRegistry(snapshot(['B1', 'B2', 'B3'], 2), { up: true, durationSeconds: 0.2 });
    for (let round = 0; round < 5; round++) {
      await Promise.all(
        Array.from({ length: 10 }, (_, i) => pushToGateway(i % 2 ? a : b, config, deadlineIn(10_000), { attemptTimeoutMs: 5_000, retries: 0 })),
      );
      const text = await gateway.scrape();
      const job = { job: 'xyn_race' };
      const statuses = text
        .split('\n')
        .filter((l) => l.startsWith('xyn_queue_depth{') && l.includes('job="xyn_race"'))
        .map((l) => /status="([^"]+)"/.exec(l)![1])
        .sort();
      const ready = sample(text, 'xyn_queue_ready_depth', job);
      expect([['A1', 'A2'], ['B1', 'B2', 'B3']]).toContainEqual(statuses);
      expect(ready).toBe(statuses[0]!.startsWith('A') ? 1 : 2);
      expect(samples(text, 'xyn_collector_duration_seconds', job)).toEqual([statuses[0]!.startsWith('A') ? 0.1 : 0.2]);
    }
  });
});
