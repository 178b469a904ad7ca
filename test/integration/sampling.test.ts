/**
 * Sub-minute sampling through the scheduled handler against a real PostgreSQL
 * and a real Pushgateway, with a 12-second "minute" and k = 3: the pushes are
 * observed on the gateway (push_time_seconds changes) and counted in the log.
 * 4-second slots, not 1-second ones: a tick through the bridge (mostly opening
 * the connection: WebSocket, bridge, SCRAM round trips) takes 0.3 s on an idle
 * machine but up to 3 s on an oversubscribed 2-core one, and a sample must
 * finish inside its slot.
 */

const PERIOD = '12';
const SLOT_MS = 4000;

import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect } from '../../functions/collect';
import { startBridge, type Bridge } from '../../scripts/bridge/bridge';
import { captureOutput, lambdaContext, scheduledEvent, withEnv, invokeCollect } from '../support/lambda';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { samples, startPushgateway, type TestPushgateway } from '../support/pushgateway';

let db: TestDatabase;
let gateway: TestPushgateway;
let bridge: Bridge;

beforeAll(async () => {
  db = await createTestDatabase('sampling');
  gateway = await startPushgateway();
  bridge = await startBridge();
  await db.query(`INSERT INTO ${db.table} (status, run_at) VALUES ('QUEUED', now())`);
  // A first tick in this process pays for loading and compiling the driver; keep that out of the timings.
  await withEnv(
    { DATABASE_URL: db.url, DATABASE_WS_PROXY: bridge.proxy, PUSHGATEWAY_URL: gateway.url, PUSHGATEWAY_JOB: 'warm_up', RUNS_TABLE: db.table },
    () => captureOutput(() => collect(scheduledEvent(), lambdaContext(30_000))),
  );
});
afterAll(async () => {
  await bridge?.close();
  await gateway?.stop();
  await db?.close();
});

/** Wait for the next whole second, so the event's time (whole seconds) is the period's true start. */
async function atNextSecond(): Promise<Date> {
  const next = Math.ceil((Date.now() + 1) / 1000) * 1000;
  await new Promise((r) => setTimeout(r, next - Date.now()));
  return new Date(next);
}

/** Invoke the handler while watching the gateway's push_time_seconds for `job`. */
async function invokeWatching(job: string, env: Record<string, string>, lambdaTimeoutMs: number) {
  const pushTimes = new Set<number>();
  let watching = true;
  const watch = (async () => {
    while (watching) {
      for (const t of samples(await gateway.scrape(), 'push_time_seconds', { job })) pushTimes.add(t);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const scheduled = await atNextSecond();
  const vars = {
    DATABASE_URL: db.url,
    DATABASE_WS_PROXY: bridge.proxy,
    PUSHGATEWAY_URL: gateway.url,
    PUSHGATEWAY_JOB: job,
    RUNS_TABLE: db.table,
    ...env,
  };
  const outcome = await invokeCollect(vars, scheduledEvent(scheduled), lambdaTimeoutMs);
  const endedMs = Date.now() - scheduled.getTime();
  // The last push is read by the scrape below; the watcher only had to catch the earlier ones.
  watching = false;
  await watch;
  for (const t of samples(await gateway.scrape(), 'push_time_seconds', { job })) pushTimes.add(t);
  const lines = outcome.output.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  return { ...outcome, lines, endedMs, scheduledMs: scheduled.getTime(), pushTimes: [...pushTimes].sort() };
}

describe('SAMPLES_PER_INVOCATION against PostgreSQL and a Pushgateway', () => {
  it('takes k = 3 evenly spaced samples in the period, pushing after each, and ends before the next period', async () => {
    const job = `xyn_sampling_${randomBytes(3).toString('hex')}`;
    const run = await invokeWatching(job, { SAMPLES_PER_INVOCATION: '3', SCHEDULE_PERIOD_SECONDS: PERIOD }, 30_000);
    expect(run.error).toBeUndefined();
    expect(run.result).toMatchObject({ outcome: 'ok' });

    const ticks = run.lines.filter((l) => l.msg === 'tick');
    expect(ticks.map((t) => t.sample)).toEqual([1, 2, 3]);
    ticks.forEach((t, i) => {
      // Each sample starts at its slot (i slots after the scheduled time), not before.
      expect(t.sample_offset_ms as number).toBeGreaterThanOrEqual(i * SLOT_MS);
      expect(t.sample_offset_ms as number).toBeLessThan(i * SLOT_MS + 1000);
      expect(t.outcome).toBe('ok');
    });
    expect(run.lines.at(-1)).toMatchObject({ msg: 'samples', samples_planned: 3, samples_taken: 3, samples_failed: 0 });
    expect(run.endedMs).toBeLessThan(3 * SLOT_MS);

    // Three different pushes seen on the gateway, a slot apart give or take how long each tick took.
    expect(run.pushTimes).toHaveLength(3);
    const gaps = run.pushTimes.slice(1).map((t, i) => t - run.pushTimes[i]!);
    for (const gap of gaps) {
      expect(gap).toBeGreaterThan(SLOT_MS / 1000 - 3);
      expect(gap).toBeLessThan(SLOT_MS / 1000 + 3);
    }
  });

  it('stops early when the Lambda would time out before the period ends, and says so', async () => {
    const job = `xyn_sampling_${randomBytes(3).toString('hex')}`;
    // 9.5 s of Lambda time less the handler's 1.5 s exit margin ends the invocation at 8 s: slots 1 and 2 only.
    const run = await invokeWatching(job, { SAMPLES_PER_INVOCATION: '3', SCHEDULE_PERIOD_SECONDS: PERIOD }, 2 * SLOT_MS + 1_500);
    expect(run.error).toBeUndefined();
    expect(run.lines.filter((l) => l.msg === 'tick').map((t) => t.sample)).toEqual([1, 2]);
    expect(run.lines.at(-1)).toMatchObject({ msg: 'samples', level: 'warn', samples_taken: 2, stopped_early: 'invocation_deadline' });
    expect(run.pushTimes).toHaveLength(2);
    expect(run.endedMs).toBeLessThan(2 * SLOT_MS);
  });

  it('with the default k = 1 pushes once and logs exactly the one tick line', async () => {
    const job = `xyn_sampling_${randomBytes(3).toString('hex')}`;
    const run = await invokeWatching(job, { SCHEDULE_PERIOD_SECONDS: PERIOD }, 30_000);
    expect(run.error).toBeUndefined();
    expect(run.lines).toHaveLength(1);
    expect(run.lines[0]).toMatchObject({ msg: 'tick', outcome: 'ok' });
    expect(run.lines[0]).not.toHaveProperty('sample');
    expect(run.pushTimes).toHaveLength(1);
  });
});
