/**
 * The tick's log record: one JSON line per tick, a contract that log filters,
 * CloudWatch metric filters and npm start's tick line (scripts/dev/tick-line.ts)
 * read. Built by one pure function from what the tick learned, so its shape
 * is unit-tested without a database or a sink.
 */

import type { Config } from '../config/types';
import type { LogRecord } from '../core/log';
import type { SinkName } from '../sinks/errors';
import type { SinkResult } from '../sinks/send';
import type { QueueSnapshot } from '../source/snapshot';

export type TickOutcome = 'ok' | 'db_failed' | 'push_failed' | 'db_and_push_failed';

/** The figures a tick read, as the log line carries them. */
export interface TickFigures {
  ready: number;
  future: number;
  oldest_ready_seconds: number;
  expired_leases: number;
  active_leases: number;
  depth: Record<string, number>;
  workers_alive?: number;
  /** Only the number of blueprint labels: blueprint names are the workload's business, not the log's. */
  blueprint_labels?: number;
}

/** The tick's own fields (the record also carries the caller's context: request id, sample). */
export interface TickFields {
  level: LogRecord['level'];
  msg: 'tick' | 'tick degraded' | 'tick failed';
  outcome: TickOutcome;
  duration_ms: number;
  db_ms: number;
  /** The gateway's group URL when the push went through; 'dry-run' without any sink; absent when the push failed. */
  pushed_to?: string;
  push_attempts?: number;
  remote_write_to?: string;
  remote_write_attempts?: number;
  /** Which sink failed, by name, when one did. */
  sinks?: Partial<Record<SinkName, 'ok' | 'failed'>>;
  db_close?: 'cut';
  db_plaintext?: string;
  degraded?: string;
  figures?: TickFigures;
  estimated_statuses?: string[];
  error?: string;
  exposition?: string;
}

export type TickRecord = LogRecord & TickFields;

/** What the tick knew when it ended, the builder's input. */
export interface TickFacts {
  outcome: TickOutcome;
  durationMs: number;
  dbMs: number;
  snapshot: QueueSnapshot | undefined;
  /** A degraded read: why the terminal counts are missing. */
  historyError: string | undefined;
  dbCloseForced: boolean;
  sinks: SinkResult[];
  /** Everything that failed, joined. */
  error: string | undefined;
  exposition: string;
  /** Extra fields (the Lambda request id, the sample number). */
  context?: Record<string, unknown>;
}

export function summarize(snapshot: QueueSnapshot): TickFigures {
  return {
    ready: snapshot.ready,
    future: snapshot.future,
    oldest_ready_seconds: Math.round(snapshot.oldestReadySeconds * 1000) / 1000,
    expired_leases: snapshot.expiredLeases,
    active_leases: snapshot.activeLeases,
    depth: Object.fromEntries(snapshot.statuses.map((s) => [s.status, s.count])),
    ...(snapshot.workersAlive !== undefined ? { workers_alive: snapshot.workersAlive } : {}),
    ...(snapshot.blueprints ? { blueprint_labels: snapshot.blueprints.counts.length } : {}),
  };
}

function level(facts: TickFacts, config: Pick<Config, 'database'>): TickRecord['level'] {
  if (facts.outcome !== 'ok') return 'error';
  return facts.historyError || config.database.plaintextToRemote ? 'warn' : 'info';
}

function message(facts: TickFacts): TickRecord['msg'] {
  // A degraded tick pushed every alerting gauge, so it is not a failed one; the warning says what is missing.
  return facts.outcome !== 'ok' ? 'tick failed' : facts.historyError ? 'tick degraded' : 'tick';
}

export function tickRecord(facts: TickFacts, config: Pick<Config, 'database' | 'sinks'>): TickRecord {
  const gateway = facts.sinks.find((s) => s.sink === 'pushgateway');
  const remote = facts.sinks.find((s) => s.sink === 'remote_write');
  const failed = facts.sinks.some((s) => s.error);
  const estimated = facts.snapshot?.statuses.filter((s) => s.estimated).map((s) => s.status) ?? [];
  const record: TickRecord = {
    level: level(facts, config),
    msg: message(facts),
    outcome: facts.outcome,
    ...facts.context,
    duration_ms: facts.durationMs,
    db_ms: facts.dbMs,
  };
  if (gateway) {
    if (!gateway.error) record.pushed_to = gateway.target;
    record.push_attempts = gateway.attempts;
  } else if (!remote) {
    record.pushed_to = 'dry-run';
  }
  if (remote) {
    if (!remote.error) record.remote_write_to = remote.target;
    record.remote_write_attempts = remote.attempts;
  }
  if (failed) record.sinks = Object.fromEntries(facts.sinks.map((s) => [s.sink, s.error ? 'failed' : 'ok']));
  if (facts.dbCloseForced) record.db_close = 'cut';
  // The opt-in is said on every tick, not once: a plain-text session must stay visible.
  if (config.database.plaintextToRemote) {
    record.db_plaintext = `DATABASE_ALLOW_PLAINTEXT=true: the session to ${config.database.host} may be unencrypted`;
  }
  if (facts.historyError) record.degraded = `terminal counts missing: ${facts.historyError}`;
  if (facts.snapshot) record.figures = summarize(facts.snapshot);
  if (estimated.length > 0) record.estimated_statuses = estimated;
  if (facts.error) record.error = facts.error;
  if (config.sinks.dryRun) record.exposition = facts.exposition;
  return record;
}
