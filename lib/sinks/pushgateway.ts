/**
 * The push: HTTP PUT of the whole registry to one group
 * {job=<PUSHGATEWAY_JOB>, <static grouping labels>}. PUT replaces the group, so
 * a series the tick no longer has is gone after the push; there is never a
 * per-invocation label, so there is never more than one group to go stale.
 *
 * The request is lib/sinks/http.ts's: the status comes from the response, no socket
 * is kept alive, the CA bundle is trusted for this request only. Each attempt
 * is bounded by the tick's deadline and by PUSH_TIMEOUT_MS of wall time (a
 * gateway trickling a byte a second never trips a socket idle timeout); a cut
 * attempt is aborted, so its socket closes. Retried with backoff on network
 * errors, 429 and 5xx (isRetryableError); never on another 4xx or a TLS
 * certificate error. The backoff never sleeps past the deadline.
 */

import { readFileSync } from 'node:fs';
import type { Registry } from 'prom-client';
import type { PushgatewayConfig } from '../config/parse';
import type { Deadline } from '../core/deadline';
import { requestWithRetries } from './http';
import { describeError } from '../core/redact';

export class PushError extends Error {
  override name = 'PushError';
  constructor(
    message: string,
    readonly attempts: number,
    /** The gateway's answer to the last attempt, when it answered (401/403: credentials refused). */
    readonly status?: number,
  ) {
    super(message);
  }
}

export interface PushOptions {
  attemptTimeoutMs: number;
  retries: number;
}

export interface PushResult {
  attempts: number;
}

function authHeaders(config: PushgatewayConfig): Record<string, string> {
  if (config.auth?.kind === 'basic') {
    const encoded = Buffer.from(`${config.auth.username}:${config.auth.password}`).toString('base64');
    return { Authorization: `Basic ${encoded}` };
  }
  if (config.auth?.kind === 'bearer') return { Authorization: `Bearer ${config.auth.token}` };
  return {};
}

/** Where a group lives, for the PUT and for logs and docs: no credentials. */
export function groupPath(config: PushgatewayConfig): string {
  const labels = Object.entries(config.grouping)
    .map(([k, v]) => `/${encodeURIComponent(k)}/${encodeURIComponent(v)}`)
    .join('');
  return `${config.url}/metrics/job/${encodeURIComponent(config.job)}${labels}`;
}

export async function pushToGateway(
  registry: Registry,
  config: PushgatewayConfig,
  deadline: Deadline,
  options: PushOptions,
): Promise<PushResult> {
  const ca = config.caFile ? readFileSync(config.caFile) : undefined;
  const body = await registry.metrics();
  const request = {
    method: 'PUT' as const,
    url: groupPath(config),
    headers: { 'Content-Type': registry.contentType, ...authHeaders(config) },
    body,
    ...(ca ? { ca } : {}),
  };
  const sent = await requestWithRetries('push', () => request, deadline, options);
  if (sent.error === undefined) return { attempts: sent.attempts };
  // Redaction happens in the tick, with the configured secrets; here only the wording.
  const reason = describeError(sent.error, []);
  throw new PushError(`push to ${groupPath(config)} failed after ${sent.attempts} attempt${sent.attempts === 1 ? '' : 's'}: ${reason}`, sent.attempts, sent.status);
}
