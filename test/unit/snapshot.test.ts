import { describe, expect, it } from 'vitest';
import { summarize } from '../../lib/runtime/tick-record';
import { SnapshotError, toQueueSnapshot } from '../../lib/source/snapshot';

const row = (over: Record<string, unknown> = {}) => ({
  db_now_seconds: 1_800_000_000.5,
  queued: '7',
  ready: '5',
  future: '2',
  oldest_ready_seconds: 42.25,
  running: '4',
  expired_leases: '1',
  active_leases: '2',
  terminal_statuses: [
    { status: 'SUCCEEDED', count: 10, estimated: false },
    { status: 'FAILED', count: 3, estimated: false },
  ],
  enum_labels: ['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'],
  ...over,
});

describe('toQueueSnapshot', () => {
  it('reports every enum label, 0 where no run has it, sorted by status', () => {
    const snapshot = toQueueSnapshot(row());
    expect(snapshot.statuses).toEqual([
      { status: 'CANCELLED', count: 0, estimated: false },
      { status: 'FAILED', count: 3, estimated: false },
      { status: 'QUEUED', count: 7, estimated: false },
      { status: 'RUNNING', count: 4, estimated: false },
      { status: 'SUCCEEDED', count: 10, estimated: false },
    ]);
    expect(snapshot).toMatchObject({ ready: 5, future: 2, oldestReadySeconds: 42.25, expiredLeases: 1, activeLeases: 2 });
  });

  it('always reports QUEUED and RUNNING, even for a text status column with nothing queued', () => {
    const snapshot = toQueueSnapshot(
      row({ queued: '0', ready: '0', future: '0', running: '0', expired_leases: '0', active_leases: '0', enum_labels: [], terminal_statuses: [{ status: 'DONE', count: 2, estimated: false }] }),
    );
    expect(snapshot.statuses.map((s) => [s.status, s.count])).toEqual([
      ['DONE', 2],
      ['QUEUED', 0],
      ['RUNNING', 0],
    ]);
  });

  it('accepts json given as text (driver without json parsing)', () => {
    const snapshot = toQueueSnapshot(row({ enum_labels: '["QUEUED","RUNNING"]', terminal_statuses: '[]' }));
    expect(snapshot.statuses.map((s) => s.status)).toEqual(['QUEUED', 'RUNNING']);
  });

  it('refuses a snapshot where ready + future differs from the QUEUED depth', () => {
    expect(() => toQueueSnapshot(row({ ready: '4' }))).toThrow(SnapshotError);
  });

  it('never reports a negative age', () => {
    expect(toQueueSnapshot(row({ oldest_ready_seconds: -3 })).oldestReadySeconds).toBe(0);
  });

  it.each([
    ['ready', 'x'],
    ['expired_leases', -1],
    ['active_leases', 1.5],
    ['oldest_ready_seconds', 'NaN'],
    ['terminal_statuses', { not: 'a list' }],
  ])('rejects a malformed %s', (field, value) => {
    expect(() => toQueueSnapshot(row({ [field]: value }))).toThrow(SnapshotError);
  });

  it('reports only QUEUED and RUNNING, marked incomplete, from the alerting-only read of a degraded tick', () => {
    const snapshot = toQueueSnapshot(row({ terminal_statuses: null, enum_labels: null }));
    expect(snapshot.statuses).toEqual([
      { status: 'QUEUED', count: 7, estimated: false },
      { status: 'RUNNING', count: 4, estimated: false },
    ]);
    expect(snapshot).toMatchObject({ terminalCountsMissing: true, ready: 5, future: 2, expiredLeases: 1, activeLeases: 2 });
    expect(toQueueSnapshot(row()).terminalCountsMissing).toBeUndefined();
  });

  it('marks planner estimates', () => {
    const snapshot = toQueueSnapshot(row({ terminal_statuses: [{ status: 'SUCCEEDED', count: 9_000_000, estimated: true }] }));
    expect(snapshot.statuses.find((s) => s.status === 'SUCCEEDED')).toEqual({ status: 'SUCCEEDED', count: 9_000_000, estimated: true });
  });
});

describe('summarize', () => {
  it('gives the figures for the log line', () => {
    expect(summarize(toQueueSnapshot(row()))).toEqual({
      ready: 5,
      future: 2,
      oldest_ready_seconds: 42.25,
      expired_leases: 1,
      active_leases: 2,
      depth: { CANCELLED: 0, FAILED: 3, QUEUED: 7, RUNNING: 4, SUCCEEDED: 10 },
    });
  });
});
