/**
 * The queue snapshot: database rows in, a plain validated object out.
 * toQueueSnapshot is pure so the arithmetic is unit-tested without a database.
 */

import type { BlueprintSnapshot } from './blueprints';

export interface StatusCount {
  status: string;
  count: number;
  /** True when the figure is the planner's estimate (above STATUS_ESTIMATE_ABOVE), not a count. */
  estimated: boolean;
}

export interface QueueSnapshot {
  /** The database clock at the snapshot, epoch seconds. */
  dbNowSeconds: number;
  /**
   * Depth per status, every enum label included (0 where empty), sorted by
   * status; only QUEUED and RUNNING when terminalCountsMissing.
   */
  statuses: StatusCount[];
  /** A degraded tick: the history part failed, so the terminal statuses are absent (not 0). */
  terminalCountsMissing?: boolean;
  ready: number;
  future: number;
  oldestReadySeconds: number;
  expiredLeases: number;
  activeLeases: number;
  /** Opt-in extras (docs/extras.md); absent when not configured. */
  workersAlive?: number;
  blueprints?: BlueprintSnapshot;
}

export class SnapshotError extends Error {
  override name = 'SnapshotError';
}

/** Counts arrive as bigint text from the driver; numbers from json. */
export function count(value: unknown, field: string): number {
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0 || !Number.isInteger(n)) {
    throw new SnapshotError(`unexpected value for ${field}: ${JSON.stringify(value)}`);
  }
  return n;
}

export function seconds(value: unknown, field: string): number {
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n)) {
    throw new SnapshotError(`unexpected value for ${field}: ${JSON.stringify(value)}`);
  }
  return n;
}

export function jsonArray(value: unknown, field: string): unknown[] {
  const parsed = typeof value === 'string' ? (JSON.parse(value) as unknown) : value;
  if (!Array.isArray(parsed)) throw new SnapshotError(`unexpected value for ${field}: not a list`);
  return parsed;
}

export function toQueueSnapshot(row: Record<string, unknown>): QueueSnapshot {
  const queued = count(row.queued, 'queued');
  const ready = count(row.ready, 'ready');
  const future = count(row.future, 'future');
  if (ready + future !== queued) {
    throw new SnapshotError(`ready (${ready}) + future (${future}) != queued (${queued})`);
  }

  // NULL: the alerting-only read of a degraded tick; the terminal statuses are unknown, not empty.
  const terminalCountsMissing = row.terminal_statuses === null;
  const byStatus = new Map<string, StatusCount>();
  for (const label of terminalCountsMissing ? [] : jsonArray(row.enum_labels, 'enum_labels')) {
    byStatus.set(String(label), { status: String(label), count: 0, estimated: false });
  }
  for (const entry of terminalCountsMissing ? [] : jsonArray(row.terminal_statuses, 'terminal_statuses')) {
    const e = entry as { status?: unknown; count?: unknown; estimated?: unknown };
    const status = String(e.status);
    byStatus.set(status, { status, count: count(e.count, `count of ${status}`), estimated: e.estimated === true });
  }
  byStatus.set('QUEUED', { status: 'QUEUED', count: queued, estimated: false });
  byStatus.set('RUNNING', { status: 'RUNNING', count: count(row.running, 'running'), estimated: false });

  return {
    dbNowSeconds: seconds(row.db_now_seconds, 'db_now_seconds'),
    statuses: [...byStatus.values()].sort((a, b) => (a.status < b.status ? -1 : a.status > b.status ? 1 : 0)),
    ready,
    future,
    // The SQL clamps already; clamp again so no path can report a negative age.
    oldestReadySeconds: Math.max(0, seconds(row.oldest_ready_seconds, 'oldest_ready_seconds')),
    expiredLeases: count(row.expired_leases, 'expired_leases'),
    activeLeases: count(row.active_leases, 'active_leases'),
    ...(terminalCountsMissing ? { terminalCountsMissing } : {}),
  };
}

/** The figures for the tick's log line. */
export function summarize(snapshot: QueueSnapshot): Record<string, unknown> {
  return {
    ready: snapshot.ready,
    future: snapshot.future,
    oldest_ready_seconds: Math.round(snapshot.oldestReadySeconds * 1000) / 1000,
    expired_leases: snapshot.expiredLeases,
    active_leases: snapshot.activeLeases,
    depth: Object.fromEntries(snapshot.statuses.map((s) => [s.status, s.count])),
    ...(snapshot.workersAlive !== undefined ? { workers_alive: snapshot.workersAlive } : {}),
    // Only the size: blueprint names are the workload's business, not the log's.
    ...(snapshot.blueprints ? { blueprint_labels: snapshot.blueprints.counts.length } : {}),
  };
}
