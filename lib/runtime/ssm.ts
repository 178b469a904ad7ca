/**
 * SSM Parameter Store's GetParameters without the AWS SDK: one HTTPS POST in
 * SSM's JSON protocol (awsJson1_1), SigV4-signed with aws4 (the signer the
 * remote-write sink already bundles), on node:http(s) with no keep-alive agent
 * and aborted when cut, so the bundle needs no node_modules at all and a cold
 * start loads no SDK. The request is this file's own (post() below), not the
 * sinks' lib/sinks/http.ts: the scrape function reads secrets too, and sends
 * nothing else.
 *
 * - Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN,
 *   as Lambda sets them from the function's role (no profiles, no IMDS).
 * - Region: AWS_REGION. Endpoint: AWS_ENDPOINT_URL_SSM, else AWS_ENDPOINT_URL
 *   (the SDK's convention), else https://ssm.<region>.amazonaws.com/.
 * - Bounded by the deadline passed in, as a whole; one retry, within it, for a
 *   transient failure (throttling, 429, 5xx, a network error other than a TLS
 *   certificate's).
 * - Errors carry AWS's error type as their name and its message
 *   (AccessDeniedException: User: … is not authorized …), as the SDK's did.
 *   No error or log ever holds a credential or a value: a 200's body is never
 *   quoted, and AWS's messages are cut at their first blank line (an
 *   InvalidSignatureException goes on with the canonical request, which holds
 *   the session token) and redacted of the credentials besides.
 */

import http from 'node:http';
import https from 'node:https';
import aws4 from 'aws4';
import type { Env } from '../config/read';
import { DeadlineError, sleep, withDeadline, type Deadline } from '../core/deadline';
import { describeError, redact } from '../core/redact';
import type { ParameterValue } from './secrets';

export const SSM_TARGET = 'AmazonSSM.GetParameters';
export const SSM_CONTENT_TYPE = 'application/x-amz-json-1.1';

/** 10 names of up to 8 KB (advanced parameters) each, their ARNs and JSON around them fit well under this. */
const MAX_RESPONSE_BYTES = 1024 * 1024;
const ATTEMPTS = 2;
/** Never retry with less than this left: the retry could not finish. */
const MIN_RETRY_MS = 100;

/** Error types AWS uses for "slow down" (the SDK retries the same ones). */
const THROTTLING = new Set([
  'ThrottlingException',
  'Throttling',
  'ThrottledException',
  'RequestThrottledException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'SlowDown',
]);

interface Response {
  status: number;
  /** The first MAX_RESPONSE_BYTES of the body. */
  body: string;
  truncated: boolean;
}

/** One POST, no keep-alive agent (no socket outlives the call), torn down at once when `signal` aborts. */
function post(url: URL, headers: Record<string, string>, body: string, signal: AbortSignal): Promise<Response> {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(body);
    const transport = url.protocol === 'https:' ? https : http;
    const req = transport.request(url, { method: 'POST', headers: { ...headers, 'Content-Length': String(payload.length) }, agent: false, signal }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        if (size < MAX_RESPONSE_BYTES) chunks.push(chunk.subarray(0, MAX_RESPONSE_BYTES - size));
        size += chunk.length;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), truncated: size > MAX_RESPONSE_BYTES }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

// A certificate that does not verify will not verify on a second attempt either (as lib/sinks/http.ts decides for the sinks).
const TLS_CERTIFICATE_CODES = /^(ERR_TLS_CERT_ALTNAME_INVALID|CERT_[A-Z_]+|UNABLE_TO_[A-Z_]+|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|ERR_SSL_[A-Z_]+|HOSTNAME_MISMATCH)$/;

export interface GetParametersResult {
  found: ParameterValue[];
  invalid: string[];
}

/** An error answer from SSM: `name` is AWS's error type (AccessDeniedException, …). */
export class SsmError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = type;
  }
}

interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

function text(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

function credentials(env: Env): Credentials {
  const accessKeyId = text(env, 'AWS_ACCESS_KEY_ID');
  const secretAccessKey = text(env, 'AWS_SECRET_ACCESS_KEY');
  if (!accessKeyId || !secretAccessKey) {
    throw new Error(
      'AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set (Lambda sets them from the function\'s role; locally, export them, e.g. eval "$(aws configure export-credentials --format env)")',
    );
  }
  const sessionToken = text(env, 'AWS_SESSION_TOKEN');
  return { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
}

/** Where GetParameters goes: AWS_ENDPOINT_URL_SSM, AWS_ENDPOINT_URL, or SSM's regional endpoint. */
export function ssmEndpoint(env: Env): { url: URL; region: string } {
  const region = text(env, 'AWS_REGION');
  if (!region) throw new Error('AWS_REGION is not set (Lambda sets it)');
  if (!/^[a-z]{2}(-[a-z0-9]+)+-\d+$/.test(region)) throw new Error(`AWS_REGION is not a region name: "${region.slice(0, 40)}"`);
  for (const name of ['AWS_ENDPOINT_URL_SSM', 'AWS_ENDPOINT_URL']) {
    const raw = text(env, name);
    if (raw === undefined) continue;
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new Error(`${name} is not a URL`);
    }
    if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.username || url.password || url.search || url.hash) {
      throw new Error(`${name} must be an http(s) URL without credentials, query or fragment`);
    }
    return { url, region };
  }
  const domain = region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com';
  return { url: new URL(`https://ssm.${region}.${domain}/`), region };
}

/** The signed request; signed per attempt (a SigV4 signature ages). */
export function signedRequest(url: URL, region: string, creds: Credentials, body: string, now: Date = new Date()): Record<string, string> {
  const signed = aws4.sign(
    {
      service: 'ssm',
      region,
      method: 'POST',
      host: url.host,
      path: url.pathname || '/',
      headers: {
        'Content-Type': SSM_CONTENT_TYPE,
        'X-Amz-Target': SSM_TARGET,
        'X-Amz-Date': now.toISOString().replace(/[:-]|\.\d{3}/g, ''),
      },
      body,
    },
    creds,
  );
  return { ...Object.fromEntries(Object.entries(signed.headers ?? {}).map(([k, v]) => [k, String(v)])), 'User-Agent': 'xyn-metrics' };
}

/** AWS's message, first paragraph only, on one line, bounded, without a credential. */
function awsMessage(raw: unknown, creds: Credentials): string | undefined {
  if (typeof raw !== 'string' || raw.trim() === '') return undefined;
  const first = raw.split(/\n\s*\n/)[0]!.replace(/\s+/g, ' ').trim();
  return redact(first.length > 500 ? `${first.slice(0, 500)}…` : first, [creds.secretAccessKey, creds.sessionToken ?? '']);
}

/** An error answer (status outside 2xx) as an SsmError: AWS's `__type` and `message`/`Message`. */
export function errorFromResponse(response: Pick<Response, 'status' | 'body'>, creds: Credentials): SsmError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(response.body);
  } catch {
    parsed = undefined;
  }
  const fields = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
  // "com.amazonaws.ssm#AccessDeniedException" or "AccessDeniedException:http://internal…": the name is the part between.
  const rawType = typeof fields.__type === 'string' ? fields.__type : typeof fields.code === 'string' ? fields.code : '';
  const type = rawType.split('#').pop()!.split(':')[0]!.trim();
  const message = awsMessage(fields.message ?? fields.Message ?? fields.errorMessage, creds);
  if (!/^[A-Za-z][A-Za-z0-9.]{0,99}$/.test(type)) {
    // Not an AWS error body (a proxy's page, say): say so without quoting it.
    return new SsmError('SsmHttpError', `HTTP ${response.status} from the SSM endpoint, not an AWS error answer`, response.status);
  }
  return new SsmError(type, message ?? `HTTP ${response.status}`, response.status);
}

/** A 200's body as the result; never quoted in an error (it holds the values). */
function resultFromResponse(response: Response): GetParametersResult {
  let parsed: unknown;
  try {
    parsed = response.truncated ? undefined : JSON.parse(response.body);
  } catch {
    parsed = undefined;
  }
  const output = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as { Parameters?: unknown; InvalidParameters?: unknown };
  const parameters = output.Parameters ?? [];
  const invalid = output.InvalidParameters ?? [];
  if (
    parsed === undefined ||
    !Array.isArray(parameters) ||
    !Array.isArray(invalid) ||
    !invalid.every((n) => typeof n === 'string') ||
    !parameters.every((p) => typeof p === 'object' && p !== null && typeof p.Name === 'string')
  ) {
    const why = response.truncated ? `larger than ${MAX_RESPONSE_BYTES} bytes` : 'not a GetParameters result';
    throw new SsmError('SerializationException', `SSM answered HTTP ${response.status} with a body that is ${why}`, response.status);
  }
  return {
    found: (parameters as { Name: string; Value?: unknown; Type?: unknown }[]).map((p) => ({
      name: p.Name,
      value: typeof p.Value === 'string' ? p.Value : '',
      type: typeof p.Type === 'string' ? p.Type : undefined,
    })),
    invalid: invalid as string[],
  };
}

/** Whether a second attempt may succeed: throttling, 429 and 5xx, a network error that is not a TLS certificate's. */
function transient(error: unknown): boolean {
  if (error instanceof SsmError) return THROTTLING.has(error.type) || error.status === 429 || error.status >= 500;
  const code = (error as { code?: unknown } | undefined)?.code;
  return !(typeof code === 'string' && TLS_CERTIFICATE_CODES.test(code));
}

export interface GetParametersOptions {
  /** Where credentials, region and endpoint come from; process.env by default. */
  env?: Env;
  now?: () => Date;
}

/**
 * One GetParameters call for `names`, decrypted (WithDecryption), bounded by
 * `deadline` as a whole; retried once on a transient failure if time is left.
 * Rejects with an SsmError (AWS's answer), a network error, or a DeadlineError
 * ("SSM GetParameters did not finish within … ms (tick deadline)").
 */
export async function getParameters(names: string[], deadline: Deadline, options: GetParametersOptions = {}): Promise<GetParametersResult> {
  const env = options.env ?? process.env;
  const creds = credentials(env);
  const { url, region } = ssmEndpoint(env);
  const body = JSON.stringify({ Names: names, WithDecryption: true });
  const abort = new AbortController();

  const attempts = async (): Promise<GetParametersResult> => {
    for (let attempt = 1; ; attempt++) {
      try {
        const response = await post(url, signedRequest(url, region, creds, body, options.now?.()), body, abort.signal);
        if (response.status < 200 || response.status > 299) throw errorFromResponse(response, creds);
        return resultFromResponse(response);
      } catch (error) {
        if (abort.signal.aborted) throw error;
        const backoff = 50 + Math.floor(Math.random() * 100);
        if (attempt >= ATTEMPTS || !transient(error) || deadline.remainingMs() < backoff + MIN_RETRY_MS) throw withAttempts(error, attempt, creds);
        await sleep(backoff, deadline);
        if (abort.signal.aborted) throw error;
      }
    }
  };

  try {
    return await withDeadline('SSM GetParameters', deadline, attempts(), () => abort.abort());
  } finally {
    // Nothing of this call outlives it: a cut attempt's socket is destroyed.
    abort.abort();
  }
}

/** The last attempt's error, saying how many attempts were made when there were more than one. */
function withAttempts(error: unknown, attempts: number, creds: Credentials): unknown {
  if (attempts === 1 || error instanceof DeadlineError) return error;
  const suffix = ` (after ${attempts} attempts)`;
  if (error instanceof SsmError) return new SsmError(error.type, `${error.message}${suffix}`, error.status);
  return new Error(`${describeError(error, [creds.secretAccessKey, creds.sessionToken ?? ''])}${suffix}`);
}
