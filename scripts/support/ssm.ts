/**
 * A local endpoint that speaks SSM's JSON protocol (awsJson1_1) for
 * GetParameters, so the real AWS SDK client can be pointed at it
 * (AWS_ENDPOINT_URL_SSM) with dummy credentials. It checks every request's
 * SigV4 signature for real (recomputed with the dummy secret key) and answers
 * like SSM: the values, InvalidParameters for unknown names, or an AWS error
 * body with `__type`. The test switches its behaviour: refuse access, fail
 * decryption, or hold the answer (a slow endpoint).
 */

import { createHash, createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { listenOnLoopback } from './net';

export const TEST_REGION = 'eu-west-1';
export const TEST_ACCESS_KEY_ID = 'AKIDXYNMETRICSTEST01';
export const TEST_SECRET_ACCESS_KEY = 'xyn-metrics-test-secret-access-key-000000';
export const TEST_SESSION_TOKEN = 'xyn-metrics-test-session-token';

/** The environment Lambda gives a function, pointed at the fake endpoint. */
export function awsEnv(endpoint: string): Record<string, string> {
  return {
    AWS_REGION: TEST_REGION,
    AWS_ACCESS_KEY_ID: TEST_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: TEST_SECRET_ACCESS_KEY,
    AWS_SESSION_TOKEN: TEST_SESSION_TOKEN,
    AWS_ENDPOINT_URL_SSM: endpoint,
  };
}

export type SsmMode = 'answer' | 'access_denied' | 'kms_failure' | 'hang';

export interface SsmRequest {
  target: string | undefined;
  contentType: string | undefined;
  /** Why the signature was refused; undefined when it checked out. */
  signatureProblem: string | undefined;
  credentialScope: string | undefined;
  /** The headers the signature covers. */
  signedHeaders: string[];
  names: string[];
  withDecryption: boolean | undefined;
}

export interface FakeSsm {
  url: string;
  mode: SsmMode;
  requests: SsmRequest[];
  /** Connections open now (a cut request must not leave one behind). */
  openConnections(): number;
  /** Set (or replace: a rotation) a SecureString. */
  put(name: string, value: string, type?: string): void;
  close(): Promise<void>;
}

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();

/** Recompute the SigV4 signature of `req` with the dummy secret key; undefined when it matches. */
function checkSignature(req: IncomingMessage, body: Buffer): { problem: string | undefined; scope: string | undefined; signed: string[] } {
  const authorization = req.headers.authorization ?? '';
  const match = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(authorization);
  if (!match) return { problem: `no SigV4 Authorization header: ${authorization.slice(0, 40)}`, scope: undefined, signed: [] };
  const [, keyId, date, region, service, signedHeaders, signature] = match as unknown as string[];
  const scope = `${date}/${region}/${service}/aws4_request`;
  const names = signedHeaders!.split(';');
  const fail = (problem: string) => ({ problem, scope, signed: names });
  const amzDate = req.headers['x-amz-date'];
  if (typeof amzDate !== 'string' || !amzDate.startsWith(date!)) return fail('x-amz-date missing or not the credential date');
  if (keyId !== TEST_ACCESS_KEY_ID) return fail(`unknown access key ${keyId}`);
  if (service !== 'ssm') return fail(`signed for service ${service}, not ssm`);
  if (!names.includes('host') || !names.includes('x-amz-date')) return fail('host or x-amz-date not signed');
  const canonicalHeaders = names
    .map((name) => {
      const value = req.headers[name];
      return `${name}:${(Array.isArray(value) ? value.join(',') : (value ?? '')).trim().replace(/\s+/g, ' ')}\n`;
    })
    .join('');
  const url = new URL(req.url ?? '/', 'http://x');
  const payloadHash = typeof req.headers['x-amz-content-sha256'] === 'string' ? req.headers['x-amz-content-sha256'] : sha256(body);
  const canonicalRequest = [req.method, url.pathname, url.search.slice(1), canonicalHeaders, signedHeaders, payloadHash].join('\n');
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonicalRequest)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${TEST_SECRET_ACCESS_KEY}`, date!), region!), service!), 'aws4_request');
  const expected = createHmac('sha256', key).update(stringToSign).digest('hex');
  return expected === signature ? { problem: undefined, scope, signed: names } : fail('signature does not match');
}

function answer(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': 'test-request' }).end(JSON.stringify(body));
}

export async function startFakeSsm(): Promise<FakeSsm> {
  const parameters = new Map<string, { value: string; type: string; version: number }>();
  const requests: SsmRequest[] = [];
  const state = { mode: 'answer' as SsmMode };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const target = req.headers['x-amz-target'] as string | undefined;
      const { problem, scope, signed } = checkSignature(req, body);
      let parsed: { Names?: string[]; WithDecryption?: boolean } = {};
      try {
        parsed = JSON.parse(body.toString('utf8') || '{}');
      } catch {
        // answered below as a serialization error
      }
      const names = parsed.Names ?? [];
      requests.push({ target, contentType: req.headers['content-type'], signatureProblem: problem, credentialScope: scope, signedHeaders: signed, names, withDecryption: parsed.WithDecryption });

      if (req.method !== 'POST' || req.url !== '/') return answer(res, 404, { __type: 'UnknownOperationException' });
      if (problem) return answer(res, 403, { __type: 'InvalidSignatureException', message: problem });
      if (target !== 'AmazonSSM.GetParameters') return answer(res, 400, { __type: 'UnknownOperationException', message: `unknown target ${target}` });
      if (req.headers['content-type'] !== 'application/x-amz-json-1.1') return answer(res, 400, { __type: 'SerializationException' });
      if (state.mode === 'hang') return; // accept and never answer
      if (state.mode === 'access_denied') {
        return answer(res, 400, {
          __type: 'AccessDeniedException',
          message: `User: arn:aws:sts::123456789012:assumed-role/xyn-metrics-test-role/xyn-metrics-test-collect is not authorized to perform: ssm:GetParameters on resource: arn:aws:ssm:${TEST_REGION}:123456789012:parameter${names[0] ?? ''} because no identity-based policy allows the ssm:GetParameters action`,
        });
      }
      if (state.mode === 'kms_failure') {
        return answer(res, 400, { __type: 'InvalidKeyId', message: 'The key used to encrypt this parameter is disabled or pending deletion.' });
      }
      const found = names.filter((n) => parameters.has(n));
      return answer(res, 200, {
        Parameters: found.map((name) => {
          const p = parameters.get(name)!;
          return {
            Name: name,
            Type: p.type,
            // Without WithDecryption SSM returns the ciphertext; a caller that forgot it gets garbage, as in AWS.
            Value: parsed.WithDecryption || p.type !== 'SecureString' ? p.value : Buffer.from(`ciphertext:${name}`).toString('base64'),
            Version: p.version,
            ARN: `arn:aws:ssm:${TEST_REGION}:123456789012:parameter${name}`,
            DataType: 'text',
            LastModifiedDate: Date.now() / 1000,
          };
        }),
        InvalidParameters: names.filter((n) => !parameters.has(n)),
      });
    });
  });
  const listener = await listenOnLoopback(server);
  return {
    url: `http://127.0.0.1:${listener.port}`,
    get mode() {
      return state.mode;
    },
    set mode(m: SsmMode) {
      state.mode = m;
    },
    requests,
    openConnections: listener.openConnections,
    put(name, value, type = 'SecureString') {
      parameters.set(name, { value, type, version: (parameters.get(name)?.version ?? 0) + 1 });
    },
    close: listener.close,
  };
}
