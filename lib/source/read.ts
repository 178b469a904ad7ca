/**
 * The read: one round trip normally. When the server rejects the batch (the
 * history part over its budget, a lock timeout, an error in the estimate
 * path), a second round trip on the same connection rolls back to the
 * savepoint and reads the alerting figures alone from the same snapshot; only
 * if that fails too does the read fail (with the first error).
 */

import type { DatabaseConfig, ExtrasConfig } from '../config/types';
import type { Deadline } from '../core/deadline';
import { isServerError, openDatabase, type OpenOptions } from './connection';
import { buildSnapshot, type QueueSnapshot } from './snapshot';
import { degradedBatchSql, snapshotBatchSql, tickSelects } from './sql';

/**
 * The share of the statement budget the whole read may take; the rest is kept
 * for a degraded tick's second round trip (the alerting figures alone).
 */
export const HISTORY_BUDGET_SHARE = 0.75;

/** The statement timeout never outlives the database's share of the tick. */
function statementBudgetMs(database: DatabaseConfig, deadline: Deadline): number {
  return Math.max(10, Math.min(database.statementTimeoutMs, Math.floor(deadline.remainingMs())));
}

export interface QueueRead {
  snapshot: QueueSnapshot;
  /** Why the whole read failed, when the tick fell back to the alerting figures alone (a degraded tick). */
  historyError: unknown;
}

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
  const timeouts = (budgetMs: number) => ({
    statementTimeoutMs: budgetMs,
    lockTimeoutMs: Math.min(database.lockTimeoutMs, budgetMs),
  });
  const budgetMs = statementBudgetMs(database, deadline);
  const historyMs = Math.max(10, Math.floor(budgetMs * HISTORY_BUDGET_SHARE));
  const session = await openDatabase(database, deadline, open);
  let results;
  let historyError: unknown;
  try {
    try {
      results = await session.batch(snapshotBatchSql(tickSelects(database, extras), timeouts(historyMs)), deadline);
    } catch (error) {
      if (!isServerError(error) || deadline.remainingMs() < 10) throw error;
      historyError = error;
      // What is left of the budget: a degraded tick costs no more statement time than a whole one may.
      const rereadMs = Math.max(10, Math.min(budgetMs - historyMs, statementBudgetMs(database, deadline)));
      const sql = degradedBatchSql(tickSelects(database, extras, { history: false }), timeouts(rereadMs));
      results = await session.batch(sql, deadline).catch(() => {
        throw error;
      });
    }
  } finally {
    onClosed?.(await session.close(deadline));
  }
  // One result per SELECT, in the order tickSelects put them.
  const rows = results.filter((r) => r.command === 'SELECT').map((r) => r.rows[0]);
  return { snapshot: buildSnapshot(rows, extras), historyError };
}
