import { describe, expect, it } from 'vitest';
import { summarize } from '../../lib/runtime/tick-record';
import { parseConfig } from '../../lib/config/parse';
import { buildSnapshot, SnapshotError, toQueueSnapshot } from '../../lib/source/snapshot';

const row = (over: Record<string, unknown> = {}) => ({
  db_now_seconds: 1_800_000_000.5,
  queued: '7',
  ready: '5',
  future: '2',
  oldest_ready_seconds: 42.25,
  oldest_due_seconds: 30.5,
  running: '4',
  expired_leases: '1',
  active_leases: '2',
  running_without_lease: '1',
  terminal_statuses: [
    { status: 'SUCCEEDED', count: 10, estimated: false },
    { status: 'FAILED', count: 3, estimated: false },
  ],
  enum_labels: ['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'],
  ...over,
});

describe('toQueueSnapshot', () => {
  it('reports every enum label, 0 where no run has it, sorted by status', () => {
    const snapshot = toQueueSnapshot(row(), 20);
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
      row({ queued: '0', ready: '0', future: '0', running: '0', expired_leases: '0', active_leases: '0', running_without_lease: '0', enum_labels: [], terminal_statuses: [{ status: 'DONE', count: 2, estimated: false }] }),
      20,
    );
    expect(snapshot.statuses.map((s) => [s.status, s.count])).toEqual([
      ['DONE', 2],
      ['QUEUED', 0],
      ['RUNNING', 0],
    ]);
  });

  it('accepts json given as text (driver without json parsing)', () => {
    const snapshot = toQueueSnapshot(row({ enum_labels: '["QUEUED","RUNNING"]', terminal_statuses: '[]' }), 20);
    expect(snapshot.statuses.map((s) => s.status)).toEqual(['QUEUED', 'RUNNING']);
  });

  it('refuses a snapshot where ready + future differs from the QUEUED depth', () => {
    expect(() => toQueueSnapshot(row({ ready: '4' }), 20)).toThrow(SnapshotError);
  });

  it('never reports a negative age', () => {
    expect(toQueueSnapshot(row({ oldest_ready_seconds: -3 }), 20).oldestReadySeconds).toBe(0);
    expect(toQueueSnapshot(row({ oldest_due_seconds: -3 }), 20).oldestDueSeconds).toBe(0);
  });

  it.each([
    ['ready', 'x'],
    ['expired_leases', -1],
    ['active_leases', 1.5],
    ['oldest_ready_seconds', 'NaN'],
    ['oldest_due_seconds', null],
    ['running_without_lease', undefined],
    ['terminal_statuses', { not: 'a list' }],
  ])('rejects a malformed %s', (field, value) => {
    expect(() => toQueueSnapshot(row({ [field]: value }), 20)).toThrow(SnapshotError);
  });

  it('refuses a snapshot whose lease figures do not add up to the RUNNING depth', () => {
    expect(() => toQueueSnapshot(row({ running_without_lease: '2' }), 20)).toThrow(/expired \(1\) \+ active \(2\) \+ without a lease \(2\) != running \(4\)/);
  });

  it('reports only QUEUED and RUNNING, marked incomplete, from the alerting-only read of a degraded tick', () => {
    const snapshot = toQueueSnapshot(row({ terminal_statuses: null, enum_labels: null }), 20);
    expect(snapshot.statuses).toEqual([
      { status: 'QUEUED', count: 7, estimated: false },
      { status: 'RUNNING', count: 4, estimated: false },
    ]);
    expect(snapshot).toMatchObject({ terminalCountsMissing: true, ready: 5, future: 2, expiredLeases: 1, activeLeases: 2 });
    expect(toQueueSnapshot(row(), 20).terminalCountsMissing).toBeUndefined();
  });

  it('marks planner estimates', () => {
    const snapshot = toQueueSnapshot(row({ terminal_statuses: [{ status: 'SUCCEEDED', count: 9_000_000, estimated: true }] }), 20);
    expect(snapshot.statuses.find((s) => s.status === 'SUCCEEDED')).toEqual({ status: 'SUCCEEDED', count: 9_000_000, estimated: true });
  });
});

describe('bounded status labels', () => {
  const many = (n: number, length: number) =>
    Array.from({ length: n }, (_, i) => ({ status: `${String(i).padStart(4, '0')}${'s'.repeat(length - 4)}`, count: i + 1, estimated: false }));

  it('keeps QUEUED, RUNNING and the top K others by count, sums the rest under "other", cuts every label to 128 characters', () => {
    const snapshot = toQueueSnapshot(row({ enum_labels: [], terminal_statuses: many(500, 3_000) }), 20);
    expect(snapshot.statuses).toHaveLength(23);
    expect(snapshot.statuses.map((s) => s.status)).toEqual(expect.arrayContaining(['QUEUED', 'RUNNING', 'other']));
    for (const s of snapshot.statuses) expect([...s.status].length, s.status.slice(0, 10)).toBeLessThanOrEqual(128);
    // The top 20 by count are the last 20 generated (counts 481..500); the other 480 are summed.
    const other = snapshot.statuses.find((s) => s.status === 'other')!;
    expect(other.count).toBe((480 * 481) / 2);
    expect(snapshot.statuses.find((s) => s.status.startsWith('0499'))!.count).toBe(500);
    expect(snapshot.statuses.some((s) => s.status.startsWith('0479'))).toBe(false);
    expect(summarize(snapshot).depth).toEqual(Object.fromEntries(snapshot.statuses.map((s) => [s.status, s.count])));
  });

  it('merges labels the cut made equal, and marks "other" estimated when an estimate went into it', () => {
    const long = 'x'.repeat(128);
    const snapshot = toQueueSnapshot(
      row({
        enum_labels: [],
        terminal_statuses: [
          { status: `${long}-a`, count: 2, estimated: false },
          { status: `${long}-b`, count: 3, estimated: false },
          { status: 'BIG', count: 9_000, estimated: true },
          { status: 'other', count: 1, estimated: false },
        ],
      }),
      1,
    );
    expect(snapshot.statuses).toEqual([
      { status: 'BIG', count: 9_000, estimated: true },
      { status: 'QUEUED', count: 7, estimated: false },
      { status: 'RUNNING', count: 4, estimated: false },
      // The two long ones became one label of 5, folded with the literal "other".
      { status: 'other', count: 6, estimated: false },
    ]);
    const fitting = toQueueSnapshot(row({ enum_labels: [], terminal_statuses: [{ status: 'A', count: 1, estimated: false }, { status: 'BIG', count: 9_000, estimated: true }] }), 2);
    // Nothing folded: no "other" at all.
    expect(fitting.statuses.find((s) => s.status === 'other')).toBeUndefined();
    const estimatedOther = toQueueSnapshot(row({ enum_labels: [], terminal_statuses: [{ status: 'A', count: 10, estimated: false }, { status: 'BIG', count: 9, estimated: true }] }), 1);
    expect(estimatedOther.statuses.find((s) => s.status === 'other')).toEqual({ status: 'other', count: 9, estimated: true });
  });

  it('zero-fills enum labels while they fit in K, and counts them like any other status', () => {
    const snapshot = toQueueSnapshot(row(), 1);
    // SUCCEEDED (10) is the top 1; FAILED (3) and CANCELLED (0) go to other.
    expect(snapshot.statuses.map((s) => [s.status, s.count])).toEqual([
      ['QUEUED', 7],
      ['RUNNING', 4],
      ['SUCCEEDED', 10],
      ['other', 3],
    ]);
  });
});

describe('summarize', () => {
  it('gives the figures for the log line', () => {
    expect(summarize(toQueueSnapshot(row(), 20))).toEqual({
      ready: 5,
      future: 2,
      oldest_ready_seconds: 42.25,
      oldest_due_seconds: 30.5,
      expired_leases: 1,
      active_leases: 2,
      running_without_lease: 1,
      depth: { CANCELLED: 0, FAILED: 3, QUEUED: 7, RUNNING: 4, SUCCEEDED: 10 },
    });
  });
});

describe('buildSnapshot', () => {
  const extras = parseConfig(
    { DATABASE_URL: 'postgresql://u:p@127.0.0.1/db', PUSH_DRY_RUN: 'true', HEARTBEAT_TABLE: 'hb', RUN_STARTED_COLUMN: 'started_at' },
    { requireSink: false },
  ).extras;
  const flowRow = { finished_in_window: null, terminal_labels: null, started_in_window: '2', wait_p50: '1', wait_p90: '2', wait_p99: '3' };

  it('has every configured extra, and an extra named missing is absent, with the degraded parts listed', () => {
    const whole = buildSnapshot({ queue: row(), heartbeat: { workers_alive: '3' }, flow: flowRow }, { extras, statusTopK: 20 });
    expect(whole).toMatchObject({ workersAlive: 3, flow: { started: 2 } });
    expect(whole).not.toHaveProperty('missing');
    const degraded = buildSnapshot({ queue: row({ terminal_statuses: null, enum_labels: null }), flow: flowRow }, { extras, statusTopK: 20 }, ['heartbeat']);
    expect(degraded).not.toHaveProperty('workersAlive');
    expect(degraded.missing).toEqual(['heartbeat', 'terminal_counts']);
  });

  it('refuses an extra whose SELECT completed without a row, and a row for an extra not configured', () => {
    expect(() => buildSnapshot({ queue: row(), flow: flowRow }, { extras, statusTopK: 20 })).toThrow(/heartbeat query returned no row/);
    expect(() => buildSnapshot({ queue: row(), heartbeat: { workers_alive: '1' }, flow: flowRow, blueprints: {} }, { extras, statusTopK: 20 })).toThrow(/blueprints is not configured/);
    expect(() => buildSnapshot({ heartbeat: { workers_alive: '1' }, flow: flowRow }, { extras, statusTopK: 20 })).toThrow(/snapshot query returned no row/);
  });
});
