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
import type { MissingPart, QueueSnapshot } from '../source/snapshot';
import type { DegradedPart } from './collect';

export type TickOutcome = 'ok' | 'db_failed' | 'push_failed' | 'db_and_push_failed';

/** The figures a tick read, as the log line carries them. */
export interface TickFigures {
  ready: number;
  future: number;
  oldest_ready_seconds: number;
  oldest_due_seconds: number;
  expired_leases: number;
  active_leases: number;
  running_without_lease: number;
  /** Bounded like the series: labels cut to 128 characters, at most STATUS_TOP_K + 3 of them. */
  depth: Record<string, number>;
  workers_alive?: number;
  /** Only the number of blueprint labels: blueprint names are the workload's business, not the log's. */
  blueprint_labels?: number;
  /** The flow figures (RUN_FINISHED_COLUMN / RUN_STARTED_COLUMN), over the last flow_window_seconds. */
  flow_window_seconds?: number;
  finished_in_window?: Record<string, number>;
  started_in_window?: number;
  /** Wait from due to start over the runs started in the window; absent when none started. */
  wait_seconds?: { p50: number; p90: number; p99: number };
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
  /** A degraded tick: what is missing and why, in words. */
  degraded?: string;
  /** A degraded tick: the parts missing (terminal_counts, flow, heartbeat, blueprints). */
  missing?: MissingPart[];
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
  /** A degraded read: the parts missing and why. */
  degraded: DegradedPart[];
  dbCloseForced: boolean;
  sinks: SinkResult[];
  /** Everything that failed, joined. */
  error: string | undefined;
  exposition: string;
  /** Extra fields (the Lambda request id, the sample number). */
  context?: Record<string, unknown>;
}

const millis = (seconds: number) => Math.round(seconds * 1000) / 1000;

function flowFigures(flow: NonNullable<QueueSnapshot['flow']>): Partial<TickFigures> {
  const wait = flow.waitSeconds;
  return {
    flow_window_seconds: flow.windowSeconds,
    ...(flow.finished ? { finished_in_window: Object.fromEntries(flow.finished.map((f) => [f.status, f.count])) } : {}),
    ...(flow.started !== undefined ? { started_in_window: flow.started } : {}),
    ...(wait ? { wait_seconds: { p50: millis(wait['0.5']), p90: millis(wait['0.9']), p99: millis(wait['0.99']) } } : {}),
  };
}

export function summarize(snapshot: QueueSnapshot): TickFigures {
  return {
    ready: snapshot.ready,
    future: snapshot.future,
    oldest_ready_seconds: millis(snapshot.oldestReadySeconds),
    oldest_due_seconds: millis(snapshot.oldestDueSeconds),
    expired_leases: snapshot.expiredLeases,
    active_leases: snapshot.activeLeases,
    running_without_lease: snapshot.runningWithoutLease,
    depth: Object.fromEntries(snapshot.statuses.map((s) => [s.status, s.count])),
    ...(snapshot.workersAlive !== undefined ? { workers_alive: snapshot.workersAlive } : {}),
    ...(snapshot.blueprints ? { blueprint_labels: snapshot.blueprints.counts.length } : {}),
    ...(snapshot.flow ? flowFigures(snapshot.flow) : {}),
  };
}

/** What each missing part is, in the words (and with the settings) an operator looks for. */
const PART_NAMES: Record<MissingPart, string> = {
  terminal_counts: 'terminal counts',
  flow: 'flow (RUN_STARTED_COLUMN, RUN_FINISHED_COLUMN)',
  heartbeat: 'workers alive (HEARTBEAT_TABLE)',
  blueprints: 'blueprints (BLUEPRINT_COLUMN)',
};

/** "flow (…) missing: <error>; terminal counts missing: not read …": one clause per missing part. */
export function describeDegraded(parts: readonly DegradedPart[]): string {
  return parts.map((p) => `${PART_NAMES[p.part]} missing: ${p.error ?? 'not read, an earlier SELECT of the batch failed'}`).join('; ');
}

function level(facts: TickFacts, config: Pick<Config, 'database'>): TickRecord['level'] {
  if (facts.outcome !== 'ok') return 'error';
  return facts.degraded.length > 0 || config.database.plaintextToRemote ? 'warn' : 'info';
}

function message(facts: TickFacts): TickRecord['msg'] {
  // A degraded tick pushed every alerting gauge, so it is not a failed one; the warning says what is missing.
  return facts.outcome !== 'ok' ? 'tick failed' : facts.degraded.length > 0 ? 'tick degraded' : 'tick';
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
  if (facts.degraded.length > 0) {
    record.degraded = describeDegraded(facts.degraded);
    record.missing = facts.degraded.map((p) => p.part);
  }
  if (facts.snapshot) record.figures = summarize(facts.snapshot);
  if (estimated.length > 0) record.estimated_statuses = estimated;
  if (facts.error) record.error = facts.error;
  if (config.sinks.dryRun) record.exposition = facts.exposition;
  return record;
}
