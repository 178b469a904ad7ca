/**
 * One structured JSON line per tick on stdout (CloudWatch Logs under Lambda).
 * Every string value is redacted with the configured secrets before it is
 * written; keys, numbers and the record's structure are never touched, so a
 * secret of any length or content (a password "1", "e" or '"') cannot break
 * the line. Writing a log line never throws: a log line must not fail a tick.
 */

import { describeError, redact } from './redact';

export type LogRecord = Record<string, unknown> & { level: 'info' | 'warn' | 'error'; msg: string };
export type LogSink = (record: LogRecord) => void;

export const stdoutSink: LogSink = (record) => {
  process.stdout.write(`${JSON.stringify(record)}\n`);
};

/**
 * A copy of `value` with every string redacted. Keys are the code's own names,
 * never data, so they stay as they are. What JSON cannot hold (bigint, a
 * cycle) becomes a string rather than an exception later.
 */
export function redactValue(value: unknown, secrets: readonly string[], seen = new WeakSet<object>()): unknown {
  if (typeof value === 'string') return redact(value, secrets);
  if (typeof value === 'bigint') return value.toString();
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value)) return '[cycle]';
  seen.add(value);
  if (value instanceof Error) return describeError(value, secrets);
  const copy = Array.isArray(value)
    ? value.map((item) => redactValue(item, secrets, seen))
    : Object.fromEntries(Object.entries(value).map(([key, item]) => [key, redactValue(item, secrets, seen)]));
  seen.delete(value);
  return copy;
}

export function redactingSink(sink: LogSink, secrets: readonly string[]): LogSink {
  return (record) => {
    try {
      // level and msg are the code's own words, which log filters match on; never data.
      sink({ ...(redactValue(record, secrets) as LogRecord), level: record.level, msg: record.msg });
    } catch (error) {
      // The tick's outcome must survive a broken sink; say so on stderr, once, redacted.
      try {
        process.stderr.write(
          `${JSON.stringify({ level: 'error', msg: 'log line not written', dropped: String(record.msg), error: describeError(error, secrets) })}\n`,
        );
      } catch {
        // Nowhere left to say it.
      }
    }
  };
}
