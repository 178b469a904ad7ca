import { register as globalRegistry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { METRICS } from '../../lib/metrics/definitions';
import { buildRegistry } from '../../lib/metrics/registry';
import type { QueueSnapshot } from '../../lib/source/snapshot';

const snapshot: QueueSnapshot = {
  dbNowSeconds: 1_800_000_000,
  statuses: [
    { status: 'CANCELLED', count: 0, estimated: false },
    { status: 'QUEUED', count: 3, estimated: false },
    { status: 'RUNNING', count: 2, estimated: false },
  ],
  ready: 2,
  future: 1,
  oldestReadySeconds: 12.5,
  oldestDueSeconds: 10,
  expiredLeases: 1,
  activeLeases: 1,
  runningWithoutLease: 0,
};

describe('buildRegistry', () => {
  it('renders the queue gauges and collector health as exposition text', async () => {
    const text = await buildRegistry(snapshot, { up: true, durationSeconds: 0.25 }).metrics();
    expect(text).toBe(
      [
        `# HELP xyn_queue_depth ${METRICS.queueDepth.help}`,
        '# TYPE xyn_queue_depth gauge',
        'xyn_queue_depth{status="CANCELLED"} 0',
        'xyn_queue_depth{status="QUEUED"} 3',
        'xyn_queue_depth{status="RUNNING"} 2',
        '',
        `# HELP xyn_queue_depth_estimated ${METRICS.queueDepthEstimated.help}`,
        '# TYPE xyn_queue_depth_estimated gauge',
        'xyn_queue_depth_estimated{status="CANCELLED"} 0',
        'xyn_queue_depth_estimated{status="QUEUED"} 0',
        'xyn_queue_depth_estimated{status="RUNNING"} 0',
        '',
        `# HELP xyn_queue_ready_depth ${METRICS.readyDepth.help}`,
        '# TYPE xyn_queue_ready_depth gauge',
        'xyn_queue_ready_depth 2',
        '',
        `# HELP xyn_queue_future_depth ${METRICS.futureDepth.help}`,
        '# TYPE xyn_queue_future_depth gauge',
        'xyn_queue_future_depth 1',
        '',
        `# HELP xyn_queue_oldest_ready_seconds ${METRICS.oldestReadySeconds.help}`,
        '# TYPE xyn_queue_oldest_ready_seconds gauge',
        'xyn_queue_oldest_ready_seconds 12.5',
        '',
        `# HELP xyn_queue_oldest_due_seconds ${METRICS.oldestDueSeconds.help}`,
        '# TYPE xyn_queue_oldest_due_seconds gauge',
        'xyn_queue_oldest_due_seconds 10',
        '',
        `# HELP xyn_running_with_expired_lease ${METRICS.expiredLeases.help}`,
        '# TYPE xyn_running_with_expired_lease gauge',
        'xyn_running_with_expired_lease 1',
        '',
        `# HELP xyn_running_with_active_lease ${METRICS.activeLeases.help}`,
        '# TYPE xyn_running_with_active_lease gauge',
        'xyn_running_with_active_lease 1',
        '',
        `# HELP xyn_running_without_lease ${METRICS.withoutLease.help}`,
        '# TYPE xyn_running_without_lease gauge',
        'xyn_running_without_lease 0',
        '',
        `# HELP xyn_collector_up ${METRICS.collectorUp.help}`,
        '# TYPE xyn_collector_up gauge',
        'xyn_collector_up 1',
        '',
        `# HELP xyn_collector_degraded ${METRICS.collectorDegraded.help}`,
        '# TYPE xyn_collector_degraded gauge',
        'xyn_collector_degraded 0',
        '',
        `# HELP xyn_collector_duration_seconds ${METRICS.collectorDuration.help}`,
        '# TYPE xyn_collector_duration_seconds gauge',
        'xyn_collector_duration_seconds 0.25',
        '',
      ].join('\n'),
    );
  });

  it('marks each estimated status 1 and each counted one 0', async () => {
    const text = await buildRegistry(
      { ...snapshot, statuses: [...snapshot.statuses, { status: 'SUCCEEDED', count: 9_000_000, estimated: true }] },
      { up: true, durationSeconds: 0.1 },
    ).metrics();
    const estimated = text.split('\n').filter((l) => l.startsWith('xyn_queue_depth_estimated{'));
    expect(estimated).toEqual([
      'xyn_queue_depth_estimated{status="CANCELLED"} 0',
      'xyn_queue_depth_estimated{status="QUEUED"} 0',
      'xyn_queue_depth_estimated{status="RUNNING"} 0',
      'xyn_queue_depth_estimated{status="SUCCEEDED"} 1',
    ]);
  });

  it('says degraded, with every alerting gauge, when the terminal counts are missing', async () => {
    const degraded: QueueSnapshot = { ...snapshot, statuses: snapshot.statuses.filter((s) => s.status !== 'CANCELLED'), terminalCountsMissing: true, missing: ['terminal_counts'] };
    const samples = (await buildRegistry(degraded, { up: true, durationSeconds: 0.1 }).metrics()).split('\n').filter((l) => l && !l.startsWith('#'));
    expect(samples).toContain('xyn_collector_degraded 1');
    expect(samples).toContain('xyn_collector_up 1');
    expect(samples.filter((l) => l.startsWith('xyn_queue_depth{'))).toEqual(['xyn_queue_depth{status="QUEUED"} 3', 'xyn_queue_depth{status="RUNNING"} 2']);
    for (const name of ['xyn_queue_ready_depth 2', 'xyn_queue_future_depth 1', 'xyn_queue_oldest_ready_seconds 12.5', 'xyn_running_with_expired_lease 1', 'xyn_running_with_active_lease 1']) {
      expect(samples).toContain(name);
    }
  });

  it('says degraded when an extra is missing, the terminal counts present', async () => {
    const text = await buildRegistry({ ...snapshot, missing: ['heartbeat'] }, { up: true, durationSeconds: 0.1 }).metrics();
    expect(text).toContain('\nxyn_collector_degraded 1\n');
    expect(text).toContain('xyn_queue_depth{status="CANCELLED"} 0');
  });

  it('holds only the collector-health gauges when the database could not be read', async () => {
    const text = await buildRegistry(undefined, { up: false, durationSeconds: 1.5 }).metrics();
    const samples = text.split('\n').filter((l) => l && !l.startsWith('#'));
    expect(samples).toEqual(['xyn_collector_up 0', 'xyn_collector_duration_seconds 1.5']);
  });

  it('builds a fresh registry every time and never touches the global one (warm containers)', async () => {
    const first = buildRegistry(snapshot, { up: true, durationSeconds: 0.1 });
    const second = buildRegistry(snapshot, { up: true, durationSeconds: 0.1 });
    expect(first).not.toBe(second);
    expect(await first.metrics()).toBe(await second.metrics());
    expect(globalRegistry.getMetricsAsArray()).toHaveLength(0);
  });

  it('gives every metric a HELP text and a xyn_ name', () => {
    for (const def of Object.values(METRICS)) {
      expect(def.name).toMatch(/^xyn_[a-z_]+$/);
      expect(def.help.length).toBeGreaterThan(20);
    }
  });
});
