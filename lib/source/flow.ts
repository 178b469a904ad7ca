/**
 * Flow (opt-in): the flow SELECT's row in, a validated object out. Which
 * parts are present follows the configuration (RUN_FINISHED_COLUMN,
 * RUN_STARTED_COLUMN); the finished counts are capped like the depths
 * (lib/source/labels.ts), with the runtime's terminal statuses always named.
 */

import type { FlowConfig } from '../config/types';
import { BLUEPRINT_QUANTILES, type BlueprintQuantile } from './blueprints';
import { capLabels, type LabelCount } from './labels';
import { count, jsonArray, oneRow, seconds, SnapshotError } from './rows';

/** The runtime's terminal statuses: always named (0 when none finished), so a failure ratio always has its terms. */
export const TERMINAL_STATUSES = ['SUCCEEDED', 'FAILED', 'CANCELLED'] as const;

export const WAIT_QUANTILES = BLUEPRINT_QUANTILES;
export type WaitQuantile = BlueprintQuantile;

export interface FinishedCount {
  status: string;
  count: number;
}

export interface FlowSnapshot {
  windowSeconds: number;
  /** Runs finished in the window per terminal status (RUN_FINISHED_COLUMN), every known terminal label present. */
  finished?: FinishedCount[];
  /** Runs started in the window (RUN_STARTED_COLUMN). */
  started?: number;
  /**
   * Quantiles of the wait from due to start over the runs started in the
   * window; absent when none started (a quantile of nothing is not 0).
   */
  waitSeconds?: Record<WaitQuantile, number>;
}

function finishedCounts(row: Record<string, unknown>, topK: number): FinishedCount[] {
  const present: LabelCount[] = jsonArray(row.finished_in_window, 'finished_in_window').map((entry) => {
    const e = entry as { status?: unknown; count?: unknown };
    return { label: String(e.status), count: count(e.count, `finished count of ${String(e.status)}`), estimated: false };
  });
  // Every known terminal label (the runtime's, and an enum's) reads 0 when nothing finished with it.
  const seen = new Set(present.map((p) => p.label));
  const known = new Set([...TERMINAL_STATUSES, ...jsonArray(row.terminal_labels, 'terminal_labels').map(String)]);
  const zeros = [...known].filter((label) => !seen.has(label)).map((label) => ({ label, count: 0, estimated: false }));
  return capLabels([...present, ...zeros], { alwaysNamed: TERMINAL_STATUSES, topK }).map((l) => ({ status: l.label, count: l.count }));
}

function waitQuantiles(row: Record<string, unknown>): Record<WaitQuantile, number> | undefined {
  const values = [row.wait_p50, row.wait_p90, row.wait_p99];
  if (values.every((v) => v === null || v === undefined)) return undefined;
  if (values.some((v) => v === null || v === undefined)) throw new SnapshotError(`unexpected wait quantiles: ${JSON.stringify(values)}`);
  return Object.fromEntries(WAIT_QUANTILES.map((q, i) => [q, Math.max(0, seconds(values[i], `wait p${q}`))])) as Record<WaitQuantile, number>;
}

export function toFlowSnapshot(given: Record<string, unknown> | undefined, config: FlowConfig, topK: number): FlowSnapshot {
  const row = oneRow(given, 'flow');
  const snapshot: FlowSnapshot = { windowSeconds: config.windowSeconds };
  if (config.finishedColumn) snapshot.finished = finishedCounts(row, topK);
  if (config.startedColumn) {
    snapshot.started = count(row.started_in_window, 'started_in_window');
    const waits = waitQuantiles(row);
    if (waits && snapshot.started === 0) throw new SnapshotError('wait quantiles without a run started in the window');
    if (waits) snapshot.waitSeconds = waits;
  }
  return snapshot;
}
