/**
 * One HTTP request for the sinks (the Pushgateway PUT, a remote-write POST),
 * on node:http(s) so that:
 * - the status comes from the response itself: retry decisions rest on facts,
 *   never on the wording of somebody's error message;
 * - no socket outlives the tick (no keep-alive agent);
 * - a private CA bundle can be trusted for this request only;
 * - an AbortSignal (the tick's deadline) tears the socket down at once.
 */

import http from 'node:http';
import https from 'node:https';
import { DeadlineError, sleep, withDeadline, type Deadline } from '../core/deadline';

export interface HttpRequest {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  url: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  /** CA certificates (PEM) trusted for this https request instead of Node's bundled roots (a private CA). */
  ca?: string | Buffer;
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  /** The first MAX_BODY_BYTES of the body, as text (error bodies are short). */
  body: string;
}

const MAX_BODY_BYTES = 64 * 1024;

/** A response that arrived with a status the caller does not accept. */
export class HttpStatusError extends Error {
  override name = 'HttpStatusError';
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    const text = body.replace(/\s+/g, ' ').trim().slice(0, 300);
    super(`HTTP ${status}${text ? `: ${text}` : ''}`);
  }
}

/** 429 (slow down) and 5xx may pass; any other 4xx will answer the same again. */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || status >= 500;
}

// A certificate that does not verify will not verify on the next attempt either.
const TLS_CERTIFICATE_CODES = /^(ERR_TLS_CERT_ALTNAME_INVALID|CERT_[A-Z_]+|UNABLE_TO_[A-Z_]+|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|ERR_SSL_[A-Z_]+|HOSTNAME_MISMATCH)$/;

/**
 * Whether another attempt may succeed: 429 and 5xx, and network failures
 * (refused, reset, timed out); never another 4xx, never a TLS certificate error.
 */
export function isRetryableError(error: unknown): boolean {
  if (error instanceof HttpStatusError) return isRetryableStatus(error.status);
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && TLS_CERTIFICATE_CODES.test(code)) return false;
  return true;
}

export function httpRequest(request: HttpRequest): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const url = new URL(request.url);
    const transport = url.protocol === 'https:' ? https : http;
    const body = request.body === undefined ? undefined : Buffer.from(request.body);
    const req = transport.request(
      url,
      {
        method: request.method,
        headers: { ...request.headers, ...(body ? { 'Content-Length': String(body.length) } : {}) },
        agent: false,
        signal: request.signal,
        ...(request.ca !== undefined && url.protocol === 'https:' ? { ca: request.ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          if (size < MAX_BODY_BYTES) chunks.push(chunk.subarray(0, MAX_BODY_BYTES - size));
          size += chunk.length;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Like httpRequest, but a status outside 2xx rejects with an HttpStatusError. */
export async function httpRequestOk(request: HttpRequest): Promise<HttpResponse> {
  const response = await httpRequest(request);
  if (response.status < 200 || response.status > 299) throw new HttpStatusError(response.status, response.body);
  return response;
}

export interface RetryOptions {
  /** Wall-time bound of one attempt (PUSH_TIMEOUT_MS), under the deadline. */
  attemptTimeoutMs: number;
  retries: number;
}

export interface RetriedRequest {
  attempts: number;
  /** Why the last attempt failed (or why none could start); undefined on success. */
  error: unknown;
  /** The status of the last answer, when the peer answered with one outside 2xx. */
  status: number | undefined;
}

/**
 * One sink's send: up to 1 + retries attempts, each bounded by the deadline and
 * attemptTimeoutMs of wall time (a socket timeout is only an idle timeout) and
 * aborted when cut, so its socket closes. Retried with backoff only where
 * isRetryableError says another attempt may succeed; the backoff never sleeps
 * past the deadline. `request` is called per attempt (a SigV4 signature ages).
 * Never throws: the caller words its own error from the result.
 */
export async function requestWithRetries(
  what: string,
  request: () => HttpRequest,
  deadline: Deadline,
  options: RetryOptions,
): Promise<RetriedRequest> {
  let lastError: unknown = new DeadlineError('no time left before the tick deadline');
  let attempt = 0;
  while (attempt <= options.retries && deadline.remainingMs() > 0) {
    attempt += 1;
    const abort = new AbortController();
    try {
      await withDeadline(
        `${what} attempt ${attempt}`,
        deadline,
        httpRequestOk({ ...request(), signal: abort.signal }),
        () => abort.abort(),
        options.attemptTimeoutMs,
        'PUSH_TIMEOUT_MS',
      );
      return { attempts: attempt, error: undefined, status: undefined };
    } catch (error) {
      abort.abort();
      lastError = error;
      if (!isRetryableError(error)) break;
      const backoff = Math.min(200 * 2 ** (attempt - 1), 2_000);
      if (attempt <= options.retries && deadline.remainingMs() > backoff) await sleep(backoff, deadline);
      else break;
    }
  }
  return { attempts: attempt, error: lastError, status: lastError instanceof HttpStatusError ? lastError.status : undefined };
}
