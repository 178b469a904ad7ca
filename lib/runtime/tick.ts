/**
 * One tick, shared by the Lambda handler, the CLI and the dev stack:
 * config -> database -> snapshot -> registry -> sinks (lib/sinks/send.ts: push, remote write) -> log line.
 *
 * When the database cannot be read, a registry holding only
 * xyn_collector_up 0 and xyn_collector_duration_seconds is pushed (PUT
 * replaces the group, so no stale queue value stays on display) and the tick
 * still fails, so Lambda's error metrics see it.
 * When only counting the history fails, the tick is degraded, not failed: the
 * alerting figures are re-read alone from the same snapshot and pushed.
 */

import type { Registry } from 'prom-client';
import type { Config } from '../config/parse';
import { openDatabase } from '../source/connection';
import { deadlineBefore, deadlineIn, type Deadline } from '../core/deadline';
import { redactingSink, stdoutSink, type LogSink } from '../core/log';
import { buildRegistry } from '../metrics/registry';
import { sendToSinks, sinkReserveMs, type SinkName } from '../sinks/send';
import { toBlueprintSnapshot } from '../source/blueprints';
import { blueprintSql, degradedBatchSql, queueSnapshotSql, snapshotBatchSql, workersAliveSql } from '../source/sql';
import { describeError } from '../core/redact';
import { summarize, toQueueSnapshot, type QueueSnapshot } from '../source/snapshot';
import { toWorkersAlive } from '../source/workers';

export class TickError extends Error {
  override name = 'TickError';
  constructor(
    message: string,
    readonly result: TickResult,
  ) {
    super(message);
  }
}

export type TickOutcome = 'ok' | 'db_failed' | 'push_failed' | 'db_and_push_failed';

/**
 * A credential was refused (database SQLSTATE 28P01, gateway 401/403): the
 * handler may refetch rotated secrets and run the tick once more.
 */
export type AuthFailure = 'database' | SinkName;

export interface TickResult {
  outcome: TickOutcome;
  snapshot: QueueSnapshot | undefined;
  /** The exposition text that was (or would have been) pushed. */
  exposition: string;
  /** Where it was pushed; undefined for a dry run. */
  pushedTo: string | undefined;
  durationMs: number;
  dbMs: number;
  error: string | undefined;
  /** Which credentials were refused, if any (empty or absent: none). */
  authFailures?: AuthFailure[];
}

export interface TickOptions {
  deadline?: Deadline;
  log?: LogSink;
  /** Extra fields for the log line (e.g. the Lambda request id). */
  context?: Record<string, unknown>;
}

/** The statement timeout never outlives the database's share of the tick. */
function statementBudgetMs(config: Config, deadline: Deadline): number {
  return Math.max(10, Math.min(config.statementTimeoutMs, Math.floor(deadline.remainingMs())));
}

/**
 * The share of the statement budget the whole read may take; the rest is kept
 * for a degraded tick's second round trip (the alerting figures alone).
 */
export const HISTORY_BUDGET_SHARE = 0.75;

/**
 * Every SELECT of a tick, in batch order: the queue snapshot, then the opt-in
 * extras. All run in one batch, one round trip, one snapshot; an extra that is
 * not configured adds nothing to the batch. `history: false` is a degraded
 * tick's re-read: the queue snapshot without the terminal counts.
 */
export function tickSelects(config: Config, { history = true } = {}): string[] {
  return [
    queueSnapshotSql({ table: config.runsTable, estimateAbove: config.statusEstimateAbove, history }),
    ...(config.heartbeat ? [workersAliveSql(config.heartbeat)] : []),
    ...(config.blueprints ? [blueprintSql(config.runsTable, config.blueprints)] : []),
  ];
}

/** An error PostgreSQL itself reported (a SQLSTATE), so the connection is still up and the transaction open. */
function isServerError(error: unknown): boolean {
  const e = error as { code?: unknown; severity?: unknown } | null;
  return typeof e?.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && typeof e.severity === 'string';
}

export interface QueueRead {
  snapshot: QueueSnapshot;
  /** Why the whole read failed, when the tick fell back to the alerting figures alone (a degraded tick). */
  historyError: unknown;
}

/**
 * One round trip normally. When the server rejects the batch (the history part
 * over its budget, a lock timeout, an error in the estimate path), a second
 * round trip on the same connection rolls back to the savepoint and reads the
 * alerting figures alone from the same snapshot; only if that fails too does
 * the read fail (with the first error).
 * `deadline` bounds connect, statements and close; `onClosed` learns whether the close had to be cut.
 */
export async function readQueueSnapshot(
  config: Config,
  deadline: Deadline,
  onClosed?: (closed: { forced: boolean }) => void,
): Promise<QueueRead> {
  const timeouts = (budgetMs: number) => ({
    statementTimeoutMs: budgetMs,
    lockTimeoutMs: Math.min(config.lockTimeoutMs, budgetMs),
  });
  const budgetMs = statementBudgetMs(config, deadline);
  const historyMs = Math.max(10, Math.floor(budgetMs * HISTORY_BUDGET_SHARE));
  const session = await openDatabase(config, deadline);
  let results;
  let historyError: unknown;
  try {
    try {
      results = await session.batch(snapshotBatchSql(tickSelects(config), timeouts(historyMs)), deadline);
    } catch (error) {
      if (!isServerError(error) || deadline.remainingMs() < 10) throw error;
      historyError = error;
      // What is left of the budget: a degraded tick costs no more statement time than a whole one may.
      const rereadMs = Math.max(10, Math.min(budgetMs - historyMs, statementBudgetMs(config, deadline)));
      const sql = degradedBatchSql(tickSelects(config, { history: false }), timeouts(rereadMs));
      results = await session.batch(sql, deadline).catch(() => {
        throw error;
      });
    }
  } finally {
    onClosed?.(await session.close(deadline));
  }
  // One result per SELECT, in the order tickSelects put them.
  const rows = results.filter((r) => r.command === 'SELECT').map((r) => r.rows[0]);
  const [queueRow, ...extraRows] = rows;
  if (!queueRow) throw new Error('the snapshot query returned no row');
  const snapshot = toQueueSnapshot(queueRow);
  if (config.heartbeat) snapshot.workersAlive = toWorkersAlive(extraRows.shift());
  if (config.blueprints) snapshot.blueprints = toBlueprintSnapshot(extraRows.shift(), config.blueprints.topK);
  return { snapshot, historyError };
}

export interface Collected {
  /** A fresh registry: the queue figures, or only xyn_collector_up 0 (and the duration) when the read failed. */
  registry: Registry;
  exposition: string;
  snapshot: QueueSnapshot | undefined;
  /** Why the database could not be read (redacted), when it could not. */
  dbError: string | undefined;
  /** A degraded tick: why the terminal counts are missing (redacted); the alerting figures were read. */
  historyError: string | undefined;
  dbMs: number;
  /** The connection would not close in time and was cut (the data was already read). */
  dbCloseForced: boolean;
  /** The database refused the password (SQLSTATE 28P01). */
  dbAuthFailed: boolean;
}

/** invalid_password: the only SQLSTATE that says a rotated password may be the cause. */
function isPasswordRefused(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === '28P01';
}

/**
 * The read-and-build half of a tick, shared by the push (runTick) and the
 * scrape (functions/metrics.ts): database -> snapshot -> registry. Never throws
 * for a database failure; the registry then says xyn_collector_up 0.
 * `deadline` bounds the database work only; a caller that pushes afterwards
 * passes one that keeps time back for the push.
 */
export async function collectRegistry(config: Config, deadline: Deadline): Promise<Collected> {
  const started = Date.now();
  let snapshot: QueueSnapshot | undefined;
  let dbError: string | undefined;
  let historyError: string | undefined;
  let dbCloseForced = false;
  let dbAuthFailed = false;
  try {
    const read = await readQueueSnapshot(config, deadline, (closed) => (dbCloseForced = closed.forced));
    snapshot = read.snapshot;
    if (read.historyError !== undefined) historyError = `database ${config.databaseHost}: ${describeError(read.historyError, config.secrets)}`;
  } catch (error) {
    dbError = `database ${config.databaseHost}: ${describeError(error, config.secrets)}`;
    dbAuthFailed = isPasswordRefused(error);
  }
  const dbMs = Date.now() - started;
  const registry = buildRegistry(snapshot, { up: snapshot !== undefined, durationSeconds: dbMs / 1000 });
  return { registry, exposition: await registry.metrics(), snapshot, dbError, historyError, dbMs, dbCloseForced, dbAuthFailed };
}

export async function runTick(config: Config, options: TickOptions = {}): Promise<TickResult> {
  const started = Date.now();
  const deadline = options.deadline ?? deadlineIn(config.tickTimeoutMs);
  const log = redactingSink(options.log ?? stdoutSink, config.secrets);

  const dbDeadline = deadlineBefore(deadline, sinkReserveMs(config, deadline), 'for the push');
  const { registry, snapshot, dbError, historyError, dbMs, dbCloseForced, dbAuthFailed, exposition: text } = await collectRegistry(config, dbDeadline);

  // Remote-written samples carry the database's time of the snapshot; a failed read has none, so now.
  const sinks = await sendToSinks(registry, config, deadline, snapshot ? snapshot.dbNowSeconds * 1000 : Date.now());
  const gateway = sinks.find((s) => s.sink === 'pushgateway');
  const remote = sinks.find((s) => s.sink === 'remote_write');
  const pushError = sinks.map((s) => s.error).filter(Boolean).join('; ') || undefined;
  const pushedTo = [gateway, remote].find((s) => s && !s.error)?.target;
  const attempts = gateway?.attempts ?? 0;

  const outcome: TickOutcome =
    dbError && pushError ? 'db_and_push_failed' : dbError ? 'db_failed' : pushError ? 'push_failed' : 'ok';
  const error = [dbError, pushError].filter(Boolean).join('; ') || undefined;
  const result: TickResult = {
    outcome,
    snapshot,
    exposition: text,
    pushedTo,
    durationMs: Date.now() - started,
    dbMs,
    error,
    authFailures: [...(dbAuthFailed ? ['database' as const] : []), ...sinks.filter((s) => s.credentialsRefused).map((s) => s.sink)],
  };

  // A degraded tick pushed every alerting gauge, so it is not a failed one; the warning says what is missing.
  log({
    level: outcome !== 'ok' ? 'error' : historyError || config.databasePlaintextToRemote ? 'warn' : 'info',
    msg: outcome !== 'ok' ? 'tick failed' : historyError ? 'tick degraded' : 'tick',
    outcome,
    ...options.context,
    duration_ms: result.durationMs,
    db_ms: dbMs,
    pushed_to: gateway ? (gateway.error ? undefined : gateway.target) : remote ? undefined : 'dry-run',
    push_attempts: config.pushgateway ? attempts : undefined,
    ...(remote ? { remote_write_to: remote.error ? undefined : remote.target, remote_write_attempts: remote.attempts } : {}),
    // Which sink failed, by name, when one did.
    ...(pushError ? { sinks: Object.fromEntries(sinks.map((s) => [s.sink, s.error ? 'failed' : 'ok'])) } : {}),
    ...(dbCloseForced ? { db_close: 'cut' } : {}),
    // The opt-in is said on every tick, not once: a plain-text session must stay visible.
    ...(config.databasePlaintextToRemote ? { db_plaintext: `DATABASE_ALLOW_PLAINTEXT=true: the session to ${config.databaseHost} may be unencrypted` } : {}),
    ...(historyError ? { degraded: `terminal counts missing: ${historyError}` } : {}),
    ...(snapshot ? { figures: summarize(snapshot) } : {}),
    ...(snapshot?.statuses.some((s) => s.estimated)
      ? { estimated_statuses: snapshot.statuses.filter((s) => s.estimated).map((s) => s.status) }
      : {}),
    ...(error ? { error } : {}),
    ...(config.dryRun ? { exposition: text } : {}),
  });

  if (outcome !== 'ok') throw new TickError(`xyn-metrics tick failed: ${error}`, result);
  return result;
}

/**
 * A scheduled event delivered late (Lambda retries and queues async events for
 * hours) must not overwrite fresher figures. Returns the age when too old.
 * No time (a manual invoke) is never late; a time that is not a timestamp is a
 * misconfigured schedule input and throws rather than pass unchecked.
 */
export function lateBySeconds(eventTime: string | undefined, nowMs: number, maxAgeSeconds: number): number | undefined {
  if (!eventTime || maxAgeSeconds <= 0) return undefined;
  const scheduled = Date.parse(eventTime);
  if (Number.isNaN(scheduled)) {
    throw new Error(`the event's time "${eventTime.slice(0, 60)}" is not a timestamp; the schedule must deliver its scheduled time in "time"`);
  }
  const age = (nowMs - scheduled) / 1000;
  return age > maxAgeSeconds ? age : undefined;
}
