/**
 * One structured JSON line per tick on stdout (CloudWatch Logs under Lambda).
 * Every string is redacted with the configured secrets before it is written.
 */

import { redact } from './redact';

export type LogRecord = Record<string, unknown> & { level: 'info' | 'warn' | 'error'; msg: string };
export type LogSink = (record: LogRecord) => void;

export const stdoutSink: LogSink = (record) => {
  process.stdout.write(`${JSON.stringify(record)}\n`);
};

export function redactingSink(sink: LogSink, secrets: readonly string[]): LogSink {
  return (record) => {
    const text = redact(JSON.stringify(record), secrets);
    sink(JSON.parse(text) as LogRecord);
  };
}
