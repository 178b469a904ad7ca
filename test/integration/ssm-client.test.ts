/**
 * lib/runtime/ssm.ts on the wire against a scripted endpoint (each request gets
 * the next scripted answer): what is retried and what is not, the deadline,
 * sockets, large answers, and that no value or credential reaches an error.
 * The signature itself is checked by test/support/ssm.ts in secrets.test.ts
 * and lambda-runtime.test.ts.
 */

import { createServer, type IncomingHttpHeaders } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { deadlineIn } from '../../lib/core/deadline';
import { getParameters, SsmError } from '../../lib/runtime/ssm';
import { freePort, listenOnLoopback, type LoopbackListener } from '../../scripts/support/net';
import { awsEnv, TEST_SECRET_ACCESS_KEY, TEST_SESSION_TOKEN } from '../../scripts/support/ssm';
import { selfSignedCertificate } from '../support/tls';

type Answer = { status: number; body: string } | 'reset' | 'hang';

let listener: LoopbackListener;
let url: string;
const script: Answer[] = [];
const seen: { headers: IncomingHttpHeaders; body: string }[] = [];

const ok = (parameters: { Name: string; Value: string; Type?: string }[], invalid: string[] = []): Answer => ({
  status: 200,
  body: JSON.stringify({ Parameters: parameters.map((p) => ({ Type: 'SecureString', ...p })), InvalidParameters: invalid }),
});
const awsError = (status: number, type: string, message?: string): Answer => ({ status, body: JSON.stringify({ __type: type, ...(message ? { message } : {}) }) });

beforeAll(async () => {
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (c: string) => (body += c));
    req.on('end', () => {
      seen.push({ headers: req.headers, body });
      const answer = script.shift() ?? awsError(500, 'NoScriptedAnswer');
      if (answer === 'hang') return;
      if (answer === 'reset') return void req.socket.destroy();
      res.writeHead(answer.status, { 'content-type': 'application/x-amz-json-1.1' }).end(answer.body);
    });
  });
  listener = await listenOnLoopback(server);
  url = `http://127.0.0.1:${listener.port}`;
});
afterAll(async () => {
  await listener?.close();
});
beforeEach(() => {
  script.length = 0;
  seen.length = 0;
});

const env = () => awsEnv(url);

async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a failure');
}

describe('getParameters on the wire', () => {
  it('one POST with the JSON protocol\'s headers and body; the answer as found and invalid names', async () => {
    script.push(ok([{ Name: '/a', Value: 'value-a' }, { Name: '/b', Value: 'plain', Type: 'String' }], ['/c']));
    const result = await getParameters(['/a', '/b', '/c'], deadlineIn(5_000), { env: env() });
    expect(result).toEqual({
      found: [
        { name: '/a', value: 'value-a', type: 'SecureString' },
        { name: '/b', value: 'plain', type: 'String' },
      ],
      invalid: ['/c'],
    });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.headers).toMatchObject({ 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'AmazonSSM.GetParameters', connection: 'close' });
    expect(JSON.parse(seen[0]!.body)).toEqual({ Names: ['/a', '/b', '/c'], WithDecryption: true });
  });

  it('AWS_ENDPOINT_URL is used when AWS_ENDPOINT_URL_SSM is unset', async () => {
    script.push(ok([{ Name: '/a', Value: 'v' }]));
    const { AWS_ENDPOINT_URL_SSM: _, ...rest } = env();
    await getParameters(['/a'], deadlineIn(5_000), { env: { ...rest, AWS_ENDPOINT_URL: url } });
    expect(seen).toHaveLength(1);
  });

  it('a throttled call is retried once, freshly signed, and succeeds', async () => {
    script.push(awsError(400, 'ThrottlingException', 'Rate exceeded'), ok([{ Name: '/a', Value: 'v' }]));
    const result = await getParameters(['/a'], deadlineIn(5_000), { env: env() });
    expect(result.found).toHaveLength(1);
    expect(seen).toHaveLength(2);
    expect(seen.every((s) => /^AWS4-HMAC-SHA256 /.test(String(s.headers.authorization)))).toBe(true);
  });

  it('a reset connection is retried once', async () => {
    script.push('reset', ok([{ Name: '/a', Value: 'v' }]));
    expect((await getParameters(['/a'], deadlineIn(5_000), { env: env() })).found).toHaveLength(1);
    expect(seen).toHaveLength(2);
  });

  it('5xx twice: the last error, named by its type, saying there were two attempts', async () => {
    script.push(awsError(500, 'InternalServerError', 'oops'), awsError(503, 'ServiceUnavailable', 'later'));
    const error = await failure(getParameters(['/a'], deadlineIn(5_000), { env: env() }));
    expect(error).toBeInstanceOf(SsmError);
    expect([error.name, error.message]).toEqual(['ServiceUnavailable', 'later (after 2 attempts)']);
    expect(seen).toHaveLength(2);
  });

  it('access denied, a KMS failure or any other 4xx is not retried', async () => {
    for (const [type, message] of [
      ['AccessDeniedException', 'User: arn:aws:sts::123456789012:assumed-role/r/f is not authorized to perform: ssm:GetParameters'],
      ['InvalidKeyId', 'The key is disabled'],
      ['ValidationException', 'bad names'],
    ] as const) {
      seen.length = 0;
      script.push(awsError(400, type, message));
      const error = await failure(getParameters(['/a'], deadlineIn(5_000), { env: env() }));
      expect([error.name, error.message]).toEqual([type, message]);
      expect(seen).toHaveLength(1);
    }
  });

  it('a refused connection is tried twice, the error names ECONNREFUSED', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const error = await failure(getParameters(['/a'], deadlineIn(5_000), { env: awsEnv(closed) }));
    expect(error.message).toMatch(/ECONNREFUSED.*\(after 2 attempts\)$/);
  });

  it('an https endpoint whose certificate does not verify is tried once', async () => {
    const certificate = selfSignedCertificate('IP:127.0.0.1');
    let requests = 0;
    const server = createHttpsServer({ key: certificate.key, cert: certificate.cert }, (_req, res) => {
      requests += 1;
      res.end('{}');
    });
    const tls = await listenOnLoopback(server);
    try {
      let attempts = 0;
      server.on('secureConnection', () => (attempts += 1));
      server.on('tlsClientError', () => (attempts += 1));
      const error = await failure(getParameters(['/a'], deadlineIn(5_000), { env: awsEnv(`https://127.0.0.1:${tls.port}`) }));
      expect((error as { code?: string }).code).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY|CERT/);
      expect(error.message).not.toMatch(/after 2 attempts/);
      await expect.poll(() => attempts, { timeout: 2_000 }).toBe(1);
      expect(requests).toBe(0);
    } finally {
      await tls.close();
      certificate.dispose();
    }
  });

  it('an endpoint that never answers is cut at the deadline, and its socket closed', async () => {
    script.push('hang');
    const started = Date.now();
    const error = await failure(getParameters(['/a'], deadlineIn(800), { env: env() }));
    expect(error.message).toMatch(/^SSM GetParameters did not finish within \d+ ms \(tick deadline\)$/);
    expect(Date.now() - started).toBeLessThan(800 + 500);
    await expect.poll(() => listener.openConnections(), { timeout: 2_000 }).toBe(0);
    expect(seen).toHaveLength(1);
  });

  it('no retry when the deadline leaves no time for one', async () => {
    script.push(awsError(500, 'InternalServerError', 'oops'), ok([{ Name: '/a', Value: 'v' }]));
    const error = await failure(getParameters(['/a'], deadlineIn(120), { env: env() }));
    expect(error.name).toBe('InternalServerError');
    expect(seen).toHaveLength(1);
  });

  it('reads a large answer whole (ten 8 KB advanced parameters, beyond the sinks\' 64 KiB error-body cap)', async () => {
    const parameters = Array.from({ length: 10 }, (_, i) => ({ Name: `/big/${i}`, Value: String(i).repeat(8 * 1024) }));
    script.push(ok(parameters));
    const result = await getParameters(parameters.map((p) => p.Name), deadlineIn(5_000), { env: env() });
    expect(result.found.map((p) => p.value.length)).toEqual(Array(10).fill(8 * 1024));
  });

  it('a 200 that is not a GetParameters result is an error that quotes nothing of it', async () => {
    script.push({ status: 200, body: '{"Parameters":"value-that-must-not-leak"' });
    const error = await failure(getParameters(['/a'], deadlineIn(5_000), { env: env() }));
    expect([error.name, error.message]).toEqual(['SerializationException', 'SSM answered HTTP 200 with a body that is not a GetParameters result']);
  });

  it('no credential in any error, even when the endpoint echoes them', async () => {
    script.push(awsError(403, 'UnrecognizedClientException', `The security token ${TEST_SESSION_TOKEN} is invalid; key ${TEST_SECRET_ACCESS_KEY}`));
    const error = await failure(getParameters(['/a'], deadlineIn(5_000), { env: env() }));
    expect(error.message).toBe('The security token *** is invalid; key ***');
  });
});
