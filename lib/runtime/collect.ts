/**
 * The read-and-build half of a tick, shared by the push (lib/runtime/tick.ts)
 * and the scrape (functions/metrics.ts): database -> snapshot -> registry.
 * It holds no sink code, so the scrape function's bundle carries none.
 */

import type { Registry } from 'prom-client';
import type { Config } from '../config/types';
import { startStopwatch } from '../core/clock';
import type { Deadline } from '../core/deadline';
import { describeError } from '../core/redact';
import { buildRegistry } from '../metrics/registry';
import { readQueueSnapshot } from '../source/read';
import type { MissingPart, QueueSnapshot } from '../source/snapshot';

/** A part of the read a degraded tick lacks, and why (redacted); `error` undefined: not reached after an earlier failure. */
export interface DegradedPart {
  part: MissingPart;
  error: string | undefined;
}

export interface Collected {
  /** A fresh registry: the queue figures, or only xyn_collector_up 0 (and the duration) when the read failed. */
  registry: Registry;
  exposition: string;
  snapshot: QueueSnapshot | undefined;
  /** Why the database could not be read (redacted), when it could not. */
  dbError: string | undefined;
  /** A degraded tick: the parts missing and why (empty when the read was whole); the alerting figures were read. */
  degraded: DegradedPart[];
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
 * Never throws for a database failure; the registry then says
 * xyn_collector_up 0. `deadline` bounds the database work only; a caller that
 * pushes afterwards passes one that keeps time back for the push.
 */
export async function collectRegistry(config: Config, deadline: Deadline): Promise<Collected> {
  const elapsed = startStopwatch();
  const where = `database ${config.database.host}`;
  let snapshot: QueueSnapshot | undefined;
  let dbError: string | undefined;
  let degraded: DegradedPart[] = [];
  let dbCloseForced = false;
  let dbAuthFailed = false;
  try {
    // An IAM token is made per connection, after the configuration listed its secrets: it joins them,
    // so the tick's log line (which redacts with that same list) can never carry it.
    const open = { onSecret: (secret: string) => config.secrets.push(secret) };
    const read = await readQueueSnapshot(config.database, config.extras, deadline, (closed) => (dbCloseForced = closed.forced), open);
    snapshot = read.snapshot;
    degraded = read.failures.map((f) => ({ part: f.part, error: f.error === undefined ? undefined : `${where}: ${describeError(f.error, config.secrets)}` }));
  } catch (error) {
    dbError = `${where}: ${describeError(error, config.secrets)}`;
    dbAuthFailed = isPasswordRefused(error);
  }
  const dbMs = Math.round(elapsed());
  const registry = buildRegistry(snapshot, { up: snapshot !== undefined, durationSeconds: dbMs / 1000 });
  return { registry, exposition: await registry.metrics(), snapshot, dbError, degraded, dbMs, dbCloseForced, dbAuthFailed };
}
