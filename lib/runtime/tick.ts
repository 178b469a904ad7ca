/**
 * One tick, shared by the Lambda handler, the CLI and the dev stack:
 * config -> database -> snapshot -> registry (lib/runtime/collect.ts)
 *   -> sinks (lib/sinks/send.ts: push, remote write) -> log line (lib/runtime/tick-record.ts).
 *
 * When the database cannot be read, a registry holding only
 * xyn_collector_up 0 and xyn_collector_duration_seconds is pushed (PUT
 * replaces the group, so no stale queue value stays on display) and the tick
 * still fails, so Lambda's error metrics see it.
 * When only part of the read fails (counting the history, an extra), the tick
 * is degraded, not failed: what was read is kept, the alerting figures are
 * re-read from the same snapshot if need be, and pushed; the part that failed
 * is absent and named in the log line.
 */

import type { Config } from '../config/types';
import { startStopwatch } from '../core/clock';
import { deadlineBefore, deadlineIn, type Deadline } from '../core/deadline';
import { redactingSink, stdoutSink, type LogSink } from '../core/log';
import type { SinkName } from '../sinks/errors';
import { sendToSinks, sinkReserveMs } from '../sinks/send';
import type { QueueSnapshot } from '../source/snapshot';
import { collectRegistry } from './collect';
import { tickRecord, type TickOutcome } from './tick-record';

export type { TickOutcome } from './tick-record';

export class TickError extends Error {
  override name = 'TickError';
  constructor(
    message: string,
    readonly result: TickResult,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

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
  /** Which credentials were refused, if any (empty: none). */
  authFailures: AuthFailure[];
}

export interface TickOptions {
  deadline?: Deadline;
  log?: LogSink;
  /** Extra fields for the log line (e.g. the Lambda request id). */
  context?: Record<string, unknown>;
}

export async function runTick(config: Config, options: TickOptions = {}): Promise<TickResult> {
  const elapsed = startStopwatch();
  const deadline = options.deadline ?? deadlineIn(config.tick.timeoutMs);
  const log = redactingSink(options.log ?? stdoutSink, config.secrets);

  const dbDeadline = deadlineBefore(deadline, sinkReserveMs(config.sinks, deadline), 'for the push');
  const collected = await collectRegistry(config, dbDeadline);
  const { snapshot, dbError, exposition } = collected;

  // Remote-written samples carry the database's time of the snapshot; a failed read has none, so now.
  const sinks = await sendToSinks(collected.registry, config.sinks, deadline, snapshot ? snapshot.dbNowSeconds * 1000 : Date.now(), config.secrets);
  const pushError = sinks.map((s) => s.error).filter(Boolean).join('; ') || undefined;
  const outcome: TickOutcome = dbError && pushError ? 'db_and_push_failed' : dbError ? 'db_failed' : pushError ? 'push_failed' : 'ok';
  const error = [dbError, pushError].filter(Boolean).join('; ') || undefined;
  const durationMs = Math.round(elapsed());
  const result: TickResult = {
    outcome,
    snapshot,
    exposition,
    pushedTo: sinks.find((s) => !s.error)?.target,
    durationMs,
    dbMs: collected.dbMs,
    error,
    authFailures: [...(collected.dbAuthFailed ? ['database' as const] : []), ...sinks.filter((s) => s.credentialsRefused).map((s) => s.sink)],
  };
  log(tickRecord({ ...collected, outcome, durationMs, sinks, error, context: options.context }, config));

  if (outcome !== 'ok') throw new TickError(`xyn-metrics tick failed: ${error}`, result);
  return result;
}
