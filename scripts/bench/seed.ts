/**
 * The seed design's collector, as the baseline: its four SQL queries verbatim
 * (only the table name is substituted), each in its own round trip on a fresh
 * connection per tick, then a registry built and pushed like ours. Only the
 * database shape differs from the collector's tick, so the comparison is of
 * that shape.
 */

import type { Config, TableName } from '../../lib/config/types';
import { openDatabase } from '../../lib/source/connection';
import { deadlineIn } from '../../lib/core/deadline';
import { buildRegistry } from '../../lib/metrics/registry';
import { pushToGateway } from '../../lib/sinks/pushgateway';
import type { QueueSnapshot, StatusCount } from '../../lib/source/snapshot';

/** The seed's four queries (seed design, "SQL Queries (All Indexed)"). */
export function seedQueries(table: TableName): [string, string, string, string] {
  const runs = table.sql;
  return [
    `SELECT status::text, COUNT(*)::bigint FROM ${runs} GROUP BY status`,
    `SELECT
  COUNT(*) FILTER (WHERE status='QUEUED' AND run_at <= NOW()) AS ready,
  COUNT(*) FILTER (WHERE status='QUEUED' AND run_at > NOW()) AS future
FROM ${runs}`,
    `SELECT EXTRACT(EPOCH FROM (NOW() - MIN(queued_at)))
FROM ${runs} WHERE status='QUEUED' AND run_at <= NOW()`,
    `SELECT
  COUNT(*) FILTER (WHERE lease_expires_at < NOW()) AS expired,
  COUNT(*) FILTER (WHERE lease_expires_at >= NOW()) AS active
FROM ${runs} WHERE status='RUNNING' AND lease_expires_at IS NOT NULL`,
  ];
}

type Rows = Record<string, unknown>[];

/** The seed's figures as a snapshot (it reports only statuses present, and no run_at-less run as ready). */
export function seedSnapshot([depth, readyFuture, oldest, leases]: [Rows, Rows, Rows, Rows]): QueueSnapshot {
  const num = (v: unknown) => (v === null || v === undefined ? 0 : Number(v));
  const statuses: StatusCount[] = depth
    .map((r) => ({ status: String(r.status), count: num(r.count), estimated: false }))
    .sort((a, b) => (a.status < b.status ? -1 : 1));
  return {
    dbNowSeconds: Date.now() / 1000,
    statuses,
    ready: num(readyFuture[0]?.ready),
    future: num(readyFuture[0]?.future),
    oldestReadySeconds: num(Object.values(oldest[0] ?? {})[0]),
    // The seed had neither figure; the registry needs one, and the bench times the seed's queries, not these.
    oldestDueSeconds: num(Object.values(oldest[0] ?? {})[0]),
    expiredLeases: num(leases[0]?.expired),
    activeLeases: num(leases[0]?.active),
    runningWithoutLease: 0,
  };
}

/** One seed-shaped tick: connect, four round trips, close, build and push a registry. */
export async function runSeedTick(config: Config): Promise<{ durationMs: number; snapshot: QueueSnapshot }> {
  if (!config.sinks.pushgateway) throw new Error('the seed tick needs a Pushgateway');
  const started = performance.now();
  const deadline = deadlineIn(config.tick.timeoutMs);
  const session = await openDatabase(config.database, deadline);
  const results: Rows[] = [];
  try {
    for (const sql of seedQueries(config.database.runsTable)) {
      const { completed, error } = await session.batch(sql, deadline);
      if (error) throw error;
      results.push(completed[0]?.rows ?? []);
    }
  } finally {
    await session.close(deadline);
  }
  const snapshot = seedSnapshot(results as [Rows, Rows, Rows, Rows]);
  const dbSeconds = (performance.now() - started) / 1000;
  const registry = buildRegistry(snapshot, { up: true, durationSeconds: dbSeconds });
  await pushToGateway(registry, config.sinks.pushgateway, deadline, {
    attemptTimeoutMs: config.sinks.attemptTimeoutMs,
    retries: config.sinks.retries,
  });
  return { durationMs: performance.now() - started, snapshot };
}
