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

import type { Registry } from 'prom-client';
import type { PushgatewayConfig } from '../config/types';
import type { Deadline } from '../core/deadline';
import { describeError } from '../core/redact';
import { authorizationHeader } from './auth';
import { SinkError } from './errors';
import { requestWithRetries, type RetryOptions } from './http';

export interface PushResult {
  attempts: number;
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
  options: RetryOptions,
): Promise<PushResult> {
  const body = await registry.metrics();
  const request = {
    method: 'PUT' as const,
    url: groupPath(config),
    headers: { 'Content-Type': registry.contentType, ...authorizationHeader(config.auth) },
    body,
    ...(config.ca ? { ca: config.ca } : {}),
  };
  const sent = await requestWithRetries('push', () => request, deadline, options);
  if (sent.error === undefined) return { attempts: sent.attempts };
  // Redaction happens in the tick, with the configured secrets; here only the wording.
  const reason = describeError(sent.error, []);
  throw new SinkError('pushgateway', `push to ${groupPath(config)} failed after ${sent.attempts} attempt${sent.attempts === 1 ? '' : 's'}: ${reason}`, sent);
}
