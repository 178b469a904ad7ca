/**
 * npm start's one line per tick, from the handlers' JSON log records
 * (lib/runtime/tick-record.ts is the tick's contract), pure and tested
 * (test/unit/tick-line.test.ts).
 */

import type { TickFields } from '../../lib/runtime/tick-record';

/** Any record the handlers log: a tick, a scrape (GET /metrics), a skipped late tick, a configuration error. */
export type HandlerRecord = Partial<Omit<TickFields, 'level' | 'msg' | 'outcome'>> & {
  level: string;
  msg: string;
  /** A tick's outcome, or skipped_late. */
  outcome?: TickFields['outcome'] | 'skipped_late';
  /** HTTP status, on GET /metrics records. */
  status?: number;
  /** A late tick's age. */
  age_seconds?: number;
};

/** A handler log line, or undefined for anything else serverless offline prints. */
export function parseHandlerRecord(line: string): HandlerRecord | undefined {
  const trimmed = line.trim();
  if (!trimmed.startsWith('{')) return undefined;
  try {
    const record = JSON.parse(trimmed) as HandlerRecord;
    return typeof record === 'object' && record !== null && typeof record.msg === 'string' && 'level' in record ? record : undefined;
  } catch {
    return undefined;
  }
}

export function age(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function clock(now = new Date()): string {
  return now.toTimeString().slice(0, 8);
}

/** One readable line per record: the figures, the duration, where they went. */
export function formatRecord(record: HandlerRecord, now = new Date()): string {
  const when = clock(now);
  // GET /metrics logs too: one line per scrape, not a tick.
  if (record.msg.startsWith('scrape')) {
    const took = record.duration_ms === undefined ? '' : ` | ${record.duration_ms} ms`;
    return `${when}  scrape    HTTP ${record.status ?? '?'} ${record.msg}${record.error ? `: ${record.error}` : ''}${took}`;
  }
  if (record.outcome === 'skipped_late') return `${when}  skipped   scheduled event ${record.age_seconds ?? '?'} s old (MAX_EVENT_AGE_SECONDS)`;
  if (record.msg === 'configuration error') return `${when}  CONFIG    ${record.error ?? 'configuration error'}`;
  const took = record.duration_ms === undefined ? '' : `${record.duration_ms} ms`;
  const where = record.pushed_to === 'dry-run' ? 'dry run, not pushed' : record.pushed_to ? `pushed to ${record.pushed_to}` : 'not pushed';
  if (record.outcome !== 'ok') return `${when}  FAILED    ${record.outcome ?? '?'}: ${record.error ?? record.msg}  | ${took} | ${where}`;
  const f = record.figures;
  const depth = f?.depth ?? {};
  const queue = `queued ${depth.QUEUED ?? 0} (ready ${f?.ready ?? 0}, future ${f?.future ?? 0}, oldest due ${age(f?.oldest_due_seconds ?? 0)})`;
  const running = `running ${depth.RUNNING ?? 0} (${f?.expired_leases ?? 0} lease${f?.expired_leases === 1 ? '' : 's'} expired)`;
  const done = Object.entries(depth)
    .filter(([status]) => status !== 'QUEUED' && status !== 'RUNNING')
    .map(([status, n]) => `${status.toLowerCase()} ${n}`)
    .join(', ');
  const missing = (record.missing ?? ['terminal_counts']).map((part) => part.replace('_', ' ')).join(', ');
  const status = record.msg === 'tick degraded' ? `tick ok   (degraded: ${missing} missing)` : 'tick ok  ';
  const flow = flowLine(f);
  return `${when}  ${status} ${queue} | ${running} | ${done} |${flow ? ` ${flow} |` : ''} ${took} | ${where}`;
}

/** Throughput and wait over the flow window, when the flow figures are configured: "last 5m00s: started 14, finished 12 (1 failed), wait p50 2s p90 9s". */
export function flowLine(f: HandlerRecord['figures']): string | undefined {
  if (f?.flow_window_seconds === undefined) return undefined;
  const parts: string[] = [];
  if (f.started_in_window !== undefined) parts.push(`started ${f.started_in_window}`);
  if (f.finished_in_window) {
    const total = Object.values(f.finished_in_window).reduce((a, b) => a + b, 0);
    parts.push(`finished ${total} (${f.finished_in_window.FAILED ?? 0} failed)`);
  }
  if (f.wait_seconds) parts.push(`wait p50 ${age(f.wait_seconds.p50)} p90 ${age(f.wait_seconds.p90)}`);
  else if (f.started_in_window !== undefined) parts.push('no wait (nothing started)');
  return `last ${age(f.flow_window_seconds)}: ${parts.join(', ')}`;
}
