/**
 * The queue snapshot: the batch's rows in, one plain validated object out,
 * extras included (buildSnapshot), never changed after it is built. Pure, so
 * the arithmetic and the shape checks are unit-tested without a database.
 */

import type { ExtrasConfig } from '../config/types';
import { toBlueprintSnapshot, type BlueprintSnapshot } from './blueprints';
import { count, jsonArray, oneRow, seconds, SnapshotError } from './rows';
import { toWorkersAlive } from './workers';

export { SnapshotError } from './rows';

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

/**
 * The whole snapshot from the batch's rows, in the order lib/source/sql.ts
 * tickSelects put them: the queue, then each configured extra.
 */
export function buildSnapshot(rows: (Record<string, unknown> | undefined)[], extras: ExtrasConfig): QueueSnapshot {
  const [queueRow, ...extraRows] = rows;
  const queue = toQueueSnapshot(oneRow(queueRow, 'snapshot'));
  const workersAlive = extras.heartbeat ? toWorkersAlive(extraRows.shift()) : undefined;
  const blueprints = extras.blueprints ? toBlueprintSnapshot(extraRows.shift(), extras.blueprints.topK) : undefined;
  if (extraRows.length > 0) throw new SnapshotError(`the batch returned ${extraRows.length} row(s) more than its SELECTs`);
  return {
    ...queue,
    ...(workersAlive !== undefined ? { workersAlive } : {}),
    ...(blueprints !== undefined ? { blueprints } : {}),
  };
}
