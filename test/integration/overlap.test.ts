/**
 * Two ticks at once (serverless offline or a manual invoke next to the
 * schedule): while a writer keeps changing the queue, every pair of
 * concurrent invocations must leave exactly one group whose gauges all come
 * from one of the two snapshots, never a mix.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect } from '../../functions/collect';
import { captureOutput, lambdaContext, scheduledEvent, withEnv } from '../support/lambda';
import { adminClient } from '../support/postgres';
import { baseEnv, seedKnownQueue, sleep, startStack, type Stack } from '../support/faults';
import { sample, samples } from '../support/pushgateway';

let stack: Stack;
const job = 'xyn_overlap';

beforeAll(async () => {
  stack = await startStack('overlap');
  await seedKnownQueue(stack.db);
});
afterAll(async () => {
  await stack?.close();
});

interface Figures {
  ready: number;
  oldest_ready_seconds: number;
  future: number;
  expired_leases: number;
  active_leases: number;
  depth: Record<string, number>;
}

/** The gauges the gateway serves for the group, in the shape of the log line's figures. */
function served(text: string): Figures {
  const depth: Record<string, number> = {};
  for (const status of ['CANCELLED', 'FAILED', 'QUEUED', 'RUNNING', 'SUCCEEDED']) depth[status] = sample(text, 'xyn_queue_depth', { job, status });
  return {
    ready: sample(text, 'xyn_queue_ready_depth', { job }),
    future: sample(text, 'xyn_queue_future_depth', { job }),
    oldest_ready_seconds: sample(text, 'xyn_queue_oldest_ready_seconds', { job }),
    expired_leases: sample(text, 'xyn_running_with_expired_lease', { job }),
    active_leases: sample(text, 'xyn_running_with_active_lease', { job }),
    depth,
  };
}

/** Every gauge equal (the log rounds the age to ms). */
function sameSnapshot(a: Figures, b: Figures): boolean {
  return (
    a.ready === b.ready &&
    a.future === b.future &&
    a.expired_leases === b.expired_leases &&
    a.active_leases === b.active_leases &&
    Math.abs(a.oldest_ready_seconds - b.oldest_ready_seconds) < 0.001 &&
    Object.keys({ ...a.depth, ...b.depth }).every((s) => a.depth[s] === b.depth[s])
  );
}

describe('overlapping ticks', () => {
  it('leave one consistent group, every gauge from the same snapshot', async () => {
    // A writer that changes the queue all the time, so two snapshots differ.
    const writer = await adminClient();
    let writing = true;
    let writes = 0;
    const writerDone = (async () => {
      while (writing) {
        await writer.query(
          `WITH n AS (INSERT INTO ${stack.db.table} (status, run_at, queued_at, lease_expires_at)
             VALUES ('QUEUED', now() + (random() - 0.5) * interval '1 hour', now() - random() * interval '1 hour', NULL),
                    ('RUNNING', now(), now(), now() + (random() - 0.5) * interval '1 minute') RETURNING 1)
           SELECT count(*) FROM n`,
        );
        writes += 1;
        await sleep(5);
      }
    })();

    const env = baseEnv(stack, job);
    let differing = 0;
    try {
      for (let round = 0; round < 8; round += 1) {
        const { output, result, error } = await withEnv(env, () =>
          captureOutput(() =>
            Promise.all([collect(scheduledEvent(), lambdaContext()), collect(scheduledEvent(), lambdaContext())]),
          ),
        );
        expect(error, (error as Error | undefined)?.message).toBeUndefined();
        expect(result?.map((r) => r.outcome)).toEqual(['ok', 'ok']);
        const ticks = output.trim().split('\n').map((l) => (JSON.parse(l) as { figures: Figures }).figures);
        expect(ticks).toHaveLength(2);
        if (ticks[0]!.depth.QUEUED !== ticks[1]!.depth.QUEUED) differing += 1;

        const text = await stack.gateway.scrape();
        expect(samples(text, 'xyn_collector_up', { job })).toEqual([1]);
        const group = served(text);
        expect(group.ready + group.future).toBe(group.depth.QUEUED);
        expect(group.expired_leases + group.active_leases).toBeLessThanOrEqual(group.depth.RUNNING!);
        const matches = ticks.filter((t) => sameSnapshot(group, t));
        expect(matches.length, `served ${JSON.stringify(group)}; ticks ${JSON.stringify(ticks)}`).toBeGreaterThan(0);
      }
    } finally {
      writing = false;
      await writerDone;
      await writer.end();
    }
    // The check could only fail if the two snapshots differed: make sure they did.
    expect(writes).toBeGreaterThan(8);
    expect(differing).toBeGreaterThan(0);
    console.log(`overlap: 8 pairs of concurrent ticks, ${differing} whose two snapshots counted different queues, ${writes} writes meanwhile`);
  });
});
