/**
 * The tick's log record (lib/runtime/tick-record.ts) is a contract: log
 * filters and npm start's tick line (scripts/dev/tick-line.ts) read it. Both
 * are pure; here each shape a tick can end in, built by one and read by the other.
 */

import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config/parse';
import { tickRecord, type TickFacts } from '../../lib/runtime/tick-record';
import type { SinkResult } from '../../lib/sinks/send';
import type { QueueSnapshot } from '../../lib/source/snapshot';
import { age, formatRecord, parseHandlerRecord } from '../../scripts/dev/tick-line';

const SNAPSHOT: QueueSnapshot = {
  dbNowSeconds: 1_800_000_000,
  statuses: [
    { status: 'FAILED', count: 3, estimated: false },
    { status: 'QUEUED', count: 7, estimated: false },
    { status: 'RUNNING', count: 4, estimated: false },
    { status: 'SUCCEEDED', count: 250_000, estimated: true },
  ],
  ready: 5,
  future: 2,
  oldestReadySeconds: 125.2504,
  oldestDueSeconds: 110.0004,
  expiredLeases: 1,
  activeLeases: 3,
  runningWithoutLease: 0,
};

const FLOW: QueueSnapshot['flow'] = {
  windowSeconds: 300,
  finished: [
    { status: 'CANCELLED', count: 0 },
    { status: 'FAILED', count: 2 },
    { status: 'SUCCEEDED', count: 10 },
  ],
  started: 14,
  waitSeconds: { '0.5': 2.0004, '0.9': 9, '0.99': 61 },
};

const GATEWAY = 'http://gw.example:9091/metrics/job/xyn_metrics';
const ok = (sink: SinkResult['sink'], target: string): SinkResult => ({ sink, target, attempts: 1, error: undefined, credentialsRefused: false });

const config = (env: Record<string, string> = {}) =>
  parseConfig({ DATABASE_URL: 'postgresql://u:p@127.0.0.1/db', PUSHGATEWAY_URL: 'http://gw.example:9091', ...env });

const facts = (over: Partial<TickFacts> = {}): TickFacts => ({
  outcome: 'ok',
  durationMs: 41,
  dbMs: 35,
  snapshot: SNAPSHOT,
  degraded: [],
  dbCloseForced: false,
  sinks: [ok('pushgateway', GATEWAY)],
  error: undefined,
  exposition: 'xyn_collector_up 1\n',
  ...over,
});

const NOW = new Date(2026, 11, 2, 3, 56, 0);

describe('tickRecord', () => {
  it('an ok tick: level info, where it went, the figures and the estimated statuses, in a fixed order', () => {
    const record = tickRecord(facts({ context: { request_id: 'r-1' } }), config());
    expect(record).toEqual({
      level: 'info',
      msg: 'tick',
      outcome: 'ok',
      request_id: 'r-1',
      duration_ms: 41,
      db_ms: 35,
      pushed_to: GATEWAY,
      push_attempts: 1,
      figures: {
        ready: 5,
        future: 2,
        oldest_ready_seconds: 125.25,
        oldest_due_seconds: 110,
        expired_leases: 1,
        active_leases: 3,
        running_without_lease: 0,
        depth: { FAILED: 3, QUEUED: 7, RUNNING: 4, SUCCEEDED: 250_000 },
      },
      estimated_statuses: ['SUCCEEDED'],
    });
    expect(Object.keys(record).slice(0, 4)).toEqual(['level', 'msg', 'outcome', 'request_id']);
  });

  it('a degraded tick warns and says what is missing; a failed read errors with no figures', () => {
    const degraded = tickRecord(facts({ degraded: [{ part: 'terminal_counts', error: 'database h: canceling statement due to statement timeout' }] }), config());
    expect(degraded).toMatchObject({
      level: 'warn',
      msg: 'tick degraded',
      outcome: 'ok',
      degraded: 'terminal counts missing: database h: canceling statement due to statement timeout',
      missing: ['terminal_counts'],
    });
    // An extra that failed is named with its setting; what the batch did not reach says so.
    const extra = tickRecord(facts({ degraded: [{ part: 'heartbeat', error: 'database h: canceling statement due to lock timeout' }, { part: 'terminal_counts', error: undefined }] }), config());
    expect(extra).toMatchObject({
      level: 'warn',
      msg: 'tick degraded',
      degraded: 'workers alive (HEARTBEAT_TABLE) missing: database h: canceling statement due to lock timeout; terminal counts missing: not read, an earlier SELECT of the batch failed',
      missing: ['heartbeat', 'terminal_counts'],
    });
    const failed = tickRecord(facts({ outcome: 'db_failed', snapshot: undefined, error: 'database h: connect ECONNREFUSED' }), config());
    expect(failed).toMatchObject({ level: 'error', msg: 'tick failed', outcome: 'db_failed', pushed_to: GATEWAY, error: 'database h: connect ECONNREFUSED' });
    expect(failed).not.toHaveProperty('figures');
  });

  it('a failing sink: no pushed_to for it, and which sink failed by name', () => {
    const failing: SinkResult = { sink: 'pushgateway', target: GATEWAY, attempts: 3, error: 'HTTP 503', credentialsRefused: false };
    const remote = ok('remote_write', 'https://mimir.example/api/v1/push');
    const record = tickRecord(
      facts({ outcome: 'push_failed', sinks: [failing, remote], error: 'HTTP 503' }),
      config({ REMOTE_WRITE_URL: 'https://mimir.example/api/v1/push' }),
    );
    expect(record).toMatchObject({ push_attempts: 3, remote_write_to: 'https://mimir.example/api/v1/push', remote_write_attempts: 1, sinks: { pushgateway: 'failed', remote_write: 'ok' } });
    expect(record).not.toHaveProperty('pushed_to');
  });

  it('a dry run says so and carries the exposition; a plain-text opt-in is said on every tick', () => {
    const dry = tickRecord(facts({ sinks: [] }), parseConfig({ DATABASE_URL: 'postgresql://u:p@127.0.0.1/db', PUSH_DRY_RUN: 'true' }));
    expect(dry).toMatchObject({ pushed_to: 'dry-run', exposition: 'xyn_collector_up 1\n' });
    expect(dry).not.toHaveProperty('push_attempts');
    const plain = tickRecord(facts(), config({ DATABASE_URL: 'postgresql://u:p@db.internal/db?sslmode=disable', DATABASE_ALLOW_PLAINTEXT: 'true' }));
    expect(plain).toMatchObject({ level: 'warn', db_plaintext: 'DATABASE_ALLOW_PLAINTEXT=true: the session to db.internal may be unencrypted' });
  });
});

describe('npm start\'s tick line', () => {
  const line = (record: object) => formatRecord(parseHandlerRecord(JSON.stringify(record))!, NOW);

  it('reads the tick record: queue, leases, history, time, where it went', () => {
    expect(line(tickRecord(facts(), config()))).toBe(
      `03:56:00  tick ok   queued 7 (ready 5, future 2, oldest due 1m50s) | running 4 (1 lease expired) | failed 3, succeeded 250000 | 41 ms | pushed to ${GATEWAY}`,
    );
  });

  it('shows throughput and wait over the flow window when the flow figures are configured', () => {
    const record = tickRecord(facts({ snapshot: { ...SNAPSHOT, flow: FLOW } }), config());
    expect(record.figures).toMatchObject({
      flow_window_seconds: 300,
      finished_in_window: { CANCELLED: 0, FAILED: 2, SUCCEEDED: 10 },
      started_in_window: 14,
      wait_seconds: { p50: 2, p90: 9, p99: 61 },
    });
    expect(line(record)).toBe(
      `03:56:00  tick ok   queued 7 (ready 5, future 2, oldest due 1m50s) | running 4 (1 lease expired) | failed 3, succeeded 250000 | last 5m00s: started 14, finished 12 (2 failed), wait p50 2s p90 9s | 41 ms | pushed to ${GATEWAY}`,
    );
    const idle = tickRecord(facts({ snapshot: { ...SNAPSHOT, flow: { windowSeconds: 60, started: 0 } } }), config());
    expect(line(idle)).toContain('| last 1m00s: started 0, no wait (nothing started) |');
  });

  it('says a degraded tick, a failed one, a dry run', () => {
    expect(line(tickRecord(facts({ degraded: [{ part: 'terminal_counts', error: 'timeout' }] }), config()))).toMatch(/^03:56:00 {2}tick ok {3}\(degraded: terminal counts missing\) queued 7/);
    expect(line(tickRecord(facts({ degraded: [{ part: 'flow', error: 'x' }, { part: 'terminal_counts', error: undefined }] }), config()))).toMatch(/\(degraded: flow, terminal counts missing\)/);
    expect(line(tickRecord(facts({ outcome: 'db_failed', snapshot: undefined, error: 'database h: down' }), config()))).toBe(
      `03:56:00  FAILED    db_failed: database h: down  | 41 ms | pushed to ${GATEWAY}`,
    );
    const dry = tickRecord(facts({ sinks: [] }), parseConfig({ DATABASE_URL: 'postgresql://u:p@127.0.0.1/db', PUSH_DRY_RUN: 'true' }));
    expect(line(dry)).toMatch(/\| dry run, not pushed$/);
  });

  it('reads the other records the handlers log: a scrape, a late tick, a configuration error; ignores other output', () => {
    expect(line({ level: 'info', msg: 'scrape', status: 200, duration_ms: 12 })).toBe('03:56:00  scrape    HTTP 200 scrape | 12 ms');
    expect(line({ level: 'warn', msg: 'late tick skipped', outcome: 'skipped_late', age_seconds: 130 })).toBe('03:56:00  skipped   scheduled event 130 s old (MAX_EVENT_AGE_SECONDS)');
    expect(line({ level: 'error', msg: 'configuration error', error: 'RUNS_TABLE must be …' })).toBe('03:56:00  CONFIG    RUNS_TABLE must be …');
    expect(parseHandlerRecord('offline: Function names exposed for local invocation by aws-sdk:')).toBeUndefined();
    expect(parseHandlerRecord('{"not":"a record"}')).toBeUndefined();
  });

  it('writes ages as people read them', () => {
    expect([age(42.4), age(125), age(3600 * 2 + 60 * 7 + 5)]).toEqual(['42s', '2m05s', '2h07m']);
  });
});
