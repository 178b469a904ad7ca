/**
 * The push: HTTP PUT of the whole registry to one group
 * {job=<PUSHGATEWAY_JOB>, <static grouping labels>}. PUT replaces the group, so
 * a series the tick no longer has is gone after the push; there is never a
 * per-invocation label, so there is never more than one group to go stale.
 *
 * Each attempt is bounded by the tick's deadline and by PUSH_TIMEOUT_MS of wall
 * time, not only by prom-client's `timeout` (a socket idle timeout, which a
 * gateway trickling a byte a second never trips). A cut attempt is aborted, so
 * its socket closes. Retried with backoff on network errors, 429 and 5xx, never
 * on other 4xx; the backoff never sleeps past the deadline.
 */

import { readFileSync } from 'node:fs';
import { Pushgateway, type Registry } from 'prom-client';
import type { PushgatewayConfig } from './config';
import { DeadlineError, sleep, withDeadline, type Deadline } from './deadline';
import { describeError } from './redact';

export class PushError extends Error {
  override name = 'PushError';
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly attempts: number,
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

/** Where a group lives, for logs and docs: no credentials. */
export function groupPath(config: PushgatewayConfig): string {
  const labels = Object.entries(config.grouping).map(([k, v]) => `/${k}/${v}`).join('');
  return `${config.url}/metrics/job/${config.job}${labels}`;
}

function statusOf(error: unknown): number | undefined {
  const match = /push failed with status (\d{3})/.exec(error instanceof Error ? error.message : '');
  return match ? Number(match[1]) : undefined;
}

/** Redaction happens in the tick, with the configured secrets; here only the wording. */
function reason(error: unknown): string {
  const status = statusOf(error);
  if (status !== undefined) {
    const body = (error as Error).message.replace(/^push failed with status \d{3},\s*/, '').trim();
    return `HTTP ${status}${body ? `: ${body.slice(0, 300)}` : ''}`;
  }
  return describeError(error, []);
}

function retryable(error: unknown): boolean {
  const status = statusOf(error);
  return status === undefined || status >= 500 || status === 429;
}

export async function pushToGateway(
  registry: Registry,
  config: PushgatewayConfig,
  deadline: Deadline,
  options: PushOptions,
): Promise<PushResult> {
  const ca = config.caFile ? readFileSync(config.caFile) : undefined;
  let lastError: unknown;
  let attempt = 0;
  while (attempt <= options.retries && deadline.remainingMs() > 0) {
    attempt += 1;
    const abort = new AbortController();
    const gateway = new Pushgateway(
      config.url,
      {
        timeout: options.attemptTimeoutMs,
        headers: authHeaders(config),
        // No keep-alive: no socket may outlive the tick in a warm container.
        agent: false,
        signal: abort.signal,
        ...(ca ? { ca } : {}),
      } as ConstructorParameters<typeof Pushgateway>[1],
      registry,
    );
    try {
      await withDeadline(
        `push attempt ${attempt}`,
        deadline,
        gateway.push({ jobName: config.job, groupings: config.grouping }),
        () => abort.abort(),
        options.attemptTimeoutMs,
        'PUSH_TIMEOUT_MS',
      );
      return { attempts: attempt };
    } catch (error) {
      abort.abort();
      lastError = error;
      if (!retryable(error)) break;
      const backoff = Math.min(200 * 2 ** (attempt - 1), 2_000);
      if (attempt <= options.retries && deadline.remainingMs() > backoff) await sleep(backoff, deadline);
      else break;
    }
  }
  throw new PushError(
    `push to ${groupPath(config)} failed after ${attempt} attempt${attempt === 1 ? '' : 's'}: ${reason(lastError ?? new DeadlineError('no time left before the tick deadline'))}`,
    statusOf(lastError),
    attempt,
  );
}
