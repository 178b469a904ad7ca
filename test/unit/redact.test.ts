import { describe, expect, it } from 'vitest';
import { describeError, redact } from '../../lib/core/redact';

const SECRET = 'S3cr/t:Pa55@x';

describe('redact', () => {
  it('masks a secret in every form it travels in', () => {
    for (const form of [SECRET, encodeURIComponent(SECRET), JSON.stringify(SECRET).slice(1, -1), Buffer.from(SECRET).toString('base64')]) {
      const out = redact(`before ${form} after`, [SECRET]);
      expect(out).toBe('before *** after');
    }
  });

  it('masks the longer of two overlapping secrets whole', () => {
    expect(redact('token abcdef123 end', ['abc', 'abcdef123'])).toBe('token *** end');
  });

  it('masks URL userinfo, Authorization headers and password-like query values it was not told about', () => {
    expect(redact('GET https://user:hunter2@gw.example/x', [])).toBe('GET https://user:***@gw.example/x');
    expect(redact('authorization: Bearer abc.def.ghi', [])).toBe('authorization: Bearer ***');
    expect(redact('Authorization: Basic dXNlcjpwYXNz', [])).toBe('Authorization: Basic ***');
    expect(redact('postgres://h/db?sslmode=require&password=hunter2&x=1', [])).toBe('postgres://h/db?sslmode=require&password=***&x=1');
    expect(redact('https://gw/?access_token=abc123', [])).toBe('https://gw/?access_token=***');
  });

  it('leaves a message without secrets alone', () => {
    const message = 'relation "xyn.runs" does not exist';
    expect(redact(message, [SECRET])).toBe(message);
  });

  it('ignores empty secrets', () => {
    expect(redact('abc', [''])).toBe('abc');
  });
});

describe('describeError', () => {
  it('gives one line with the code, redacted', () => {
    const error = Object.assign(new Error(`connect failed\n  for ${SECRET}`), { code: 'ECONNREFUSED' });
    expect(describeError(error, [SECRET])).toBe('connect failed for *** (ECONNREFUSED)');
  });

  it('names the cause of a wrapped error', () => {
    const error = new TypeError('fetch failed', { cause: new Error('self-signed certificate') });
    expect(describeError(error, [])).toBe('fetch failed: self-signed certificate');
  });

  it('joins the errors of an AggregateError', () => {
    expect(describeError(new AggregateError([new Error('a'), new Error(`b ${SECRET}`)]), [SECRET])).toBe('a; b ***');
  });

  it('describes what is not an Error', () => {
    expect(describeError(`plain ${SECRET}`, [SECRET])).toBe('plain ***');
    expect(describeError(undefined, [])).toBe('undefined');
  });
});
