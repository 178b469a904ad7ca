/**
 * The read: one round trip normally. The batch's SELECTs are the extras, then
 * the queue snapshot (lib/source/sql.ts tickSelects), each under its share of
 * the statement budget. When the server stops the batch at one of them (over
 * its share, a lock, a missing table), what completed before it is kept, and
 * a second round trip on the same connection rolls back to the savepoint and
 * reads, from the same snapshot, the queue's alerting figures and the extras
 * the batch did not reach. The SELECT that failed is not read again: an extra
 * that failed is absent from the tick, the terminal counts are absent when the
 * queue snapshot failed. Only when the alerting figures cannot be read does
 * the read fail; never because of an extra.
 */

import type { DatabaseConfig, ExtrasConfig } from '../config/types';
import { startStopwatch } from '../core/clock';
import type { Deadline } from '../core/deadline';
import { isServerError, openDatabase, type BatchOutcome, type DatabaseSession, type OpenOptions } from './connection';
import { buildSnapshot, type MissingPart, type QueueSnapshot } from './snapshot';
import { alertingSelect, degradedBatch, isPermanentSqlError, snapshotBatch, tickSelects, type Batch, type ReadPart, type TickSelect } from './sql';

/**
 * The share of the statement budget the first round trip may take; the rest
 * is kept for a degraded tick's second round trip.
 */
export const HISTORY_BUDGET_SHARE = 0.75;

/** The statement timeout never outlives the database's share of the tick. */
function statementBudgetMs(database: DatabaseConfig, deadline: Deadline): number {
  return Math.max(10, Math.min(database.statementTimeoutMs, Math.floor(deadline.remainingMs())));
}

/** A part of the read that is missing from the tick, and why: its own error, or none when it was not reached. */
export interface ReadFailure {
  part: MissingPart;
  error: unknown;
}

export interface QueueRead {
  snapshot: QueueSnapshot;
  /** A degraded tick: what is missing and why (empty: the read was whole). */
  failures: ReadFailure[];
}

/** What one round trip read: the rows of the SELECTs that completed, and where and why it stopped. */
interface RoundTrip {
  rows: Partial<Record<ReadPart, Record<string, unknown>>>;
  /** Index (in the selects sent) of the SELECT that failed; undefined when all completed. */
  failedAt: number | undefined;
  error: unknown;
  /** The batch failed before its savepoint: there is nothing to roll back to. */
  beforeSavepoint: boolean;
}

function roundTrip(selects: TickSelect[], batch: Batch, outcome: BatchOutcome): RoundTrip {
  const rows: RoundTrip['rows'] = {};
  let failedAt: number | undefined;
  selects.forEach((select, i) => {
    const result = outcome.completed[batch.selectAt[i]!];
    if (result) rows[select.part] = result.rows[0];
    else failedAt ??= i;
  });
  // An error after every SELECT completed (at COMMIT) leaves the data whole: nothing is missing.
  const error = failedAt === undefined ? undefined : outcome.error;
  // The statement before the first SELECT sets its timeout; the savepoint is the one before that.
  return { rows, failedAt, error, beforeSavepoint: error !== undefined && outcome.completed.length < batch.selectAt[0]! - 1 };
}

/** The part a failure of `part` takes from the tick. */
const missingPart = (part: ReadPart): MissingPart => (part === 'queue' ? 'terminal_counts' : part);

/**
 * `deadline` bounds connect, statements and close; `onClosed` learns whether
 * the close had to be cut; `open` is how the connection is opened (it tells
 * of the secrets it makes).
 */
export async function readQueueSnapshot(
  database: DatabaseConfig,
  extras: ExtrasConfig,
  deadline: Deadline,
  onClosed?: (closed: { forced: boolean }) => void,
  open: OpenOptions = {},
): Promise<QueueRead> {
  const budgetMs = statementBudgetMs(database, deadline);
  const lockTimeoutMs = (ms: number) => Math.min(database.lockTimeoutMs, ms);
  const selects = tickSelects(database, extras);
  const batchMs = Math.max(10, Math.floor(budgetMs * HISTORY_BUDGET_SHARE));
  const batch = snapshotBatch(selects.map((s) => s.sql), { budgetMs: batchMs, lockTimeoutMs: lockTimeoutMs(batchMs) }, budgetMs + database.lockTimeoutMs);
  const session = await openDatabase(database, deadline, open);
  const elapsed = startStopwatch();
  const failures: ReadFailure[] = [];
  let rows: RoundTrip['rows'];
  try {
    const first = roundTrip(selects, batch, await session.batch(batch.sql, deadline));
    rows = first.rows;
    if (first.failedAt !== undefined) {
      const failed = selects[first.failedAt]!;
      if (!isServerError(first.error) || first.beforeSavepoint || deadline.remainingMs() < 10) throw first.error;
      // The queue's alerting figures are retried unless a retry cannot help; an extra never is.
      if (failed.part === 'queue' && isPermanentSqlError(first.error)) throw first.error;
      failures.push({ part: missingPart(failed.part), error: first.error });
      const unread = selects.slice(first.failedAt + 1).filter((s) => s.part !== 'queue');
      for (const s of unread) failures.push({ part: s.part as MissingPart, error: undefined });
      if (failed.part !== 'queue') failures.push({ part: 'terminal_counts', error: undefined });
      const rest = [alertingSelect(database), ...unread];
      rows = { ...rows, ...(await reread(session, rest, budgetMs - elapsed(), database, deadline, failures, failed.part === 'queue' ? first.error : undefined)) };
    }
  } finally {
    onClosed?.(await session.close(deadline));
  }
  const missing = failures.map((f) => f.part);
  return { snapshot: buildSnapshot(rows, { extras, statusTopK: database.statusTopK }, missing), failures };
}

/**
 * The second round trip: the alerting figures first, so an extra failing
 * again cannot take them along. Updates `failures` (a part read now is no
 * longer missing; one that fails now carries its error); throws when the
 * alerting figures cannot be read, with `queueError` when the queue failed
 * before (the first cause), else the re-read's own error.
 */
async function reread(
  session: DatabaseSession,
  selects: TickSelect[],
  leftMs: number,
  database: DatabaseConfig,
  deadline: Deadline,
  failures: ReadFailure[],
  queueError: unknown,
): Promise<RoundTrip['rows']> {
  // What is left of the statement budget: a degraded tick costs no more statement time than a whole one may.
  const budgetMs = Math.max(10, Math.min(Math.floor(leftMs), statementBudgetMs(database, deadline)));
  const batch = degradedBatch(selects.map((s) => s.sql), { budgetMs, lockTimeoutMs: Math.min(database.lockTimeoutMs, budgetMs) });
  const second = roundTrip(selects, batch, await session.batch(batch.sql, deadline));
  if (second.rows.queue === undefined) throw queueError ?? second.error;
  for (const select of selects.slice(1)) {
    const index = failures.findIndex((f) => f.part === select.part);
    if (second.rows[select.part] !== undefined) failures.splice(index, 1);
    else if (selects.indexOf(select) === second.failedAt) failures[index] = { part: select.part as MissingPart, error: second.error };
  }
  return second.rows;
}
