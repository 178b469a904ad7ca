import { describe, expect, it } from 'vitest';
import { redactingSink, redactValue, type LogRecord } from '../../lib/core/log';

const record: LogRecord = {
  level: 'error',
  msg: 'tick failed',
  outcome: 'db_failed',
  duration_ms: 1219,
  db_ms: 19,
  figures: { ready: 10, oldest_ready_seconds: 1.5 },
  estimated_statuses: ['SUCCEEDED'],
  error: 'database h: password authentication failed for user "u" (password e1)',
};

function logged(secrets: string[]): LogRecord[] {
  const lines: LogRecord[] = [];
  redactingSink((r) => lines.push(r), secrets)(record);
  return lines;
}

describe('redactingSink', () => {
  it.each([['1'], ['e'], ['"'], [':'], ['{'], ['\\'], ['null'], ['db_ms']])(
    'keeps keys, numbers and structure intact with the secret %j',
    (secret) => {
      const [line] = logged([secret]);
      expect(Object.keys(line!)).toEqual(Object.keys(record));
      expect(line).toMatchObject({ level: 'error', msg: 'tick failed', duration_ms: 1219, db_ms: 19, figures: { ready: 10, oldest_ready_seconds: 1.5 } });
      expect(line!.estimated_statuses).toEqual(['SUCCEEDED']);
      expect(line!.error).not.toContain(secret);
    },
  );

  it('masks the secret in every string value, nested ones included', () => {
    const [line] = logged(['e1']);
    expect(line!.error).toBe('database h: password authentication failed for user "u" (password ***)');
    const nested = redactValue({ a: ['x e1 y', { b: 'e1' }], n: 1 }, ['e1']);
    expect(nested).toEqual({ a: ['x *** y', { b: '***' }], n: 1 });
  });

  it('turns what JSON cannot hold into strings instead of throwing later', () => {
    const cyclic: Record<string, unknown> = { n: 10n };
    cyclic.self = cyclic;
    expect(redactValue(cyclic, [])).toEqual({ n: '10', self: '[cycle]' });
  });

  it('never throws out of the log call, even when the sink does', () => {
    const log = redactingSink(() => {
      throw new Error('EPIPE writing secret-1');
    }, ['secret-1']);
    const written: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string) => written.push(chunk) > 0) as typeof process.stderr.write;
    try {
      expect(() => log(record)).not.toThrow();
    } finally {
      process.stderr.write = write;
    }
    expect(written.join('')).toContain('"msg":"log line not written"');
    expect(written.join('')).not.toContain('secret-1');
  });
});
