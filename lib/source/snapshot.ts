/**
 * The queue snapshot: the batch's rows in, one plain validated object out,
 * extras included (buildSnapshot), never changed after it is built. Pure, so
 * the arithmetic and the shape checks are unit-tested without a database.
 */

import type { ExtrasConfig } from '../config/types';
import { toBlueprintSnapshot, type BlueprintSnapshot } from './blueprints';
import { toFlowSnapshot, type FlowSnapshot } from './flow';
import { capLabels, type LabelCount } from './labels';
import { count, jsonArray, oneRow, seconds, SnapshotError } from './rows';
import type { ReadPart } from './sql';
import { toWorkersAlive } from './workers';

export { SnapshotError } from './rows';

export interface StatusCount {
  status: string;
  count: number;
  /** True when the figure is the planner's estimate (above STATUS_ESTIMATE_ABOVE), not a count. */
  estimated: boolean;
}

/** A part of the read a degraded tick lacks: an extra, or the terminal counts of the queue snapshot. */
export type MissingPart = Exclude<ReadPart, 'queue'> | 'terminal_counts';

export interface QueueSnapshot {
  /** The database clock at the snapshot, epoch seconds. */
  dbNowSeconds: number;
  /**
   * Depth per status, sorted by status: every enum label included (0 where
   * empty), labels cut to MAX_LABEL_VALUE_CHARS, QUEUED and RUNNING plus the
   * top STATUS_TOP_K others by count, the rest under "other"; only QUEUED and
   * RUNNING when terminalCountsMissing.
   */
  statuses: StatusCount[];
  /** A degraded tick without the history part: the terminal statuses are absent (not 0). */
  terminalCountsMissing?: boolean;
  ready: number;
  future: number;
  oldestReadySeconds: number;
  /** Seconds since the oldest ready run came due (greatest(queued_at, run_at)). */
  oldestDueSeconds: number;
  expiredLeases: number;
  activeLeases: number;
  /** RUNNING runs with no lease_expires_at: expired + active + without = depth{RUNNING}. */
  runningWithoutLease: number;
  /** Opt-in extras (docs/extras.md); absent when not configured, or when their read failed. */
  workersAlive?: number;
  blueprints?: BlueprintSnapshot;
  flow?: FlowSnapshot;
  /** A degraded tick: the parts of the read that are missing (their series are absent, not 0). */
  missing?: MissingPart[];
}

/** The statuses that are always named, whatever their count. */
const ACTIVE_STATUSES = ['QUEUED', 'RUNNING'] as const;

export function toQueueSnapshot(row: Record<string, unknown>, statusTopK: number): QueueSnapshot {
  const queued = count(row.queued, 'queued');
  const ready = count(row.ready, 'ready');
  const future = count(row.future, 'future');
  if (ready + future !== queued) {
    throw new SnapshotError(`ready (${ready}) + future (${future}) != queued (${queued})`);
  }
  const running = count(row.running, 'running');
  const expiredLeases = count(row.expired_leases, 'expired_leases');
  const activeLeases = count(row.active_leases, 'active_leases');
  const runningWithoutLease = count(row.running_without_lease, 'running_without_lease');
  if (expiredLeases + activeLeases + runningWithoutLease !== running) {
    throw new SnapshotError(`expired (${expiredLeases}) + active (${activeLeases}) + without a lease (${runningWithoutLease}) != running (${running})`);
  }

  // NULL: the alerting-only read of a degraded tick; the terminal statuses are unknown, not empty.
  const terminalCountsMissing = row.terminal_statuses === null;
  const byStatus = new Map<string, LabelCount>();
  for (const label of terminalCountsMissing ? [] : jsonArray(row.enum_labels, 'enum_labels')) {
    byStatus.set(String(label), { label: String(label), count: 0, estimated: false });
  }
  const terminal: LabelCount[] = [];
  for (const entry of terminalCountsMissing ? [] : jsonArray(row.terminal_statuses, 'terminal_statuses')) {
    const e = entry as { status?: unknown; count?: unknown; estimated?: unknown };
    const status = String(e.status);
    byStatus.delete(status);
    terminal.push({ label: status, count: count(e.count, `count of ${status}`), estimated: e.estimated === true });
  }
  byStatus.set('QUEUED', { label: 'QUEUED', count: queued, estimated: false });
  byStatus.set('RUNNING', { label: 'RUNNING', count: running, estimated: false });
  const statuses = capLabels([...byStatus.values(), ...terminal], { alwaysNamed: ACTIVE_STATUSES, topK: statusTopK });

  return {
    dbNowSeconds: seconds(row.db_now_seconds, 'db_now_seconds'),
    statuses: statuses.map((s) => ({ status: s.label, count: s.count, estimated: s.estimated })),
    ready,
    future,
    // The SQL clamps already; clamp again so no path can report a negative age.
    oldestReadySeconds: Math.max(0, seconds(row.oldest_ready_seconds, 'oldest_ready_seconds')),
    oldestDueSeconds: Math.max(0, seconds(row.oldest_due_seconds, 'oldest_due_seconds')),
    expiredLeases,
    activeLeases,
    runningWithoutLease,
    ...(terminalCountsMissing ? { terminalCountsMissing } : {}),
  };
}

export interface SnapshotConfig {
  extras: ExtrasConfig;
  statusTopK: number;
}

/**
 * The whole snapshot from the rows the read got, by part (lib/source/sql.ts
 * tickSelects): the queue row is required, and so is the row of every
 * configured extra but those `missing` names (what a degraded read lacks).
 */
export function buildSnapshot(
  rows: Partial<Record<ReadPart, Record<string, unknown>>>,
  { extras, statusTopK }: SnapshotConfig,
  missing: readonly MissingPart[] = [],
): QueueSnapshot {
  const queue = toQueueSnapshot(oneRow(rows.queue, 'snapshot'), statusTopK);
  for (const part of ['flow', 'heartbeat', 'blueprints'] as const) {
    const configured = { flow: extras.flow, heartbeat: extras.heartbeat, blueprints: extras.blueprints }[part] !== undefined;
    if (rows[part] !== undefined && !configured) throw new SnapshotError(`the batch returned a ${part} row, but ${part} is not configured`);
  }
  // A configured extra not named missing must have its row: a SELECT that completed without one is a SnapshotError.
  const read = (part: MissingPart) => !missing.includes(part);
  const workersAlive = extras.heartbeat && read('heartbeat') ? toWorkersAlive(rows.heartbeat) : undefined;
  const blueprints = extras.blueprints && read('blueprints') ? toBlueprintSnapshot(rows.blueprints, extras.blueprints.topK) : undefined;
  const flow = extras.flow && read('flow') ? toFlowSnapshot(rows.flow, extras.flow, statusTopK) : undefined;
  const parts = [...new Set([...missing, ...(queue.terminalCountsMissing ? ['terminal_counts' as const] : [])])];
  return {
    ...queue,
    ...(workersAlive !== undefined ? { workersAlive } : {}),
    ...(blueprints !== undefined ? { blueprints } : {}),
    ...(flow !== undefined ? { flow } : {}),
    ...(parts.length > 0 ? { missing: parts } : {}),
  };
}
