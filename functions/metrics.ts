/**
 * GET /metrics (httpApi): the same figures as the scheduled push, read fresh
 * per request and returned as Prometheus text, for a Prometheus that can scrape
 * the function directly. It shares the tick's read-and-build code
 * (collectRegistry) and never pushes.
 *
 * Access needs `Authorization: Bearer <METRICS_BEARER_TOKEN>`; without a
 * configured token the endpoint refuses to serve (503) rather than being open.
 * The token is checked before any database work, so unauthenticated requests
 * cost no connection.
 */

import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { createHash, timingSafeEqual } from 'node:crypto';
import { ConfigError, parseConfig, type Config } from '../lib/config';
import { deadlineIn, tickBudgetMs } from '../lib/deadline';
import { redactingSink, stdoutSink, type LogSink } from '../lib/log';
import { describeError } from '../lib/redact';
import { summarize } from '../lib/snapshot';
import { collectRegistry } from '../lib/tick';

/** Room left after the deadline to log and answer before Lambda's own timeout. */
const EXIT_MARGIN_MS = 1_000;

type Response = APIGatewayProxyStructuredResultV2 & { statusCode: number; body: string };

function plain(statusCode: number, body: string, headers: Record<string, string> = {}): Response {
  return {
    statusCode,
    headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers },
    body: `${body}\n`,
  };
}

/** The token from an `Authorization: Bearer <token>` header (any case of the header and scheme). */
export function bearerToken(headers: Record<string, string | undefined> | undefined): string | undefined {
  const value = Object.entries(headers ?? {}).find(([name]) => name.toLowerCase() === 'authorization')?.[1];
  const match = /^\s*bearer\s+(\S+)\s*$/i.exec(value ?? '');
  return match?.[1];
}

/**
 * Constant-time comparison: both sides are hashed first, so neither the content
 * nor the length of the expected token shows in the timing.
 */
export function tokenMatches(presented: string | undefined, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  const ok = timingSafeEqual(digest(presented ?? ''), digest(expected));
  return ok && presented !== undefined;
}

export async function metrics(event: Partial<APIGatewayProxyEventV2> | undefined, context: Partial<Context> | undefined): Promise<Response> {
  const started = Date.now();
  let config: Config;
  try {
    config = parseConfig(process.env, { requirePushgateway: false });
  } catch (error) {
    // The details go to the log only: an unauthenticated caller learns nothing of the setup.
    const message = error instanceof ConfigError ? error.message : describeError(error, []);
    stdoutSink({ level: 'error', msg: 'configuration error', error: message });
    return plain(500, 'xyn-metrics: configuration error (see the function log)');
  }
  const log: LogSink = redactingSink(stdoutSink, config.secrets);
  const request = { request_id: context?.awsRequestId, path: event?.rawPath };

  if (config.metricsBearerToken === undefined) {
    log({ level: 'error', msg: 'scrape refused', status: 503, ...request, error: 'METRICS_BEARER_TOKEN is not configured' });
    return plain(503, 'xyn-metrics: METRICS_BEARER_TOKEN is not configured; /metrics refuses to serve without it');
  }
  if (!tokenMatches(bearerToken(event?.headers), config.metricsBearerToken)) {
    log({ level: 'warn', msg: 'scrape unauthorized', status: 401, ...request });
    return plain(401, 'xyn-metrics: missing or wrong bearer token', { 'www-authenticate': 'Bearer realm="xyn-metrics"' });
  }

  const budget = tickBudgetMs(config.tickTimeoutMs, context?.getRemainingTimeInMillis?.(), EXIT_MARGIN_MS);
  // The scrape never pushes, so the whole budget is the database's.
  const collected = await collectRegistry(config, deadlineIn(budget));

  // A failed read still answers 200 with xyn_collector_up 0 alone, as the push does:
  // Prometheus's own `up` then says the endpoint works and this says the database does not.
  log({
    level: collected.dbError ? 'error' : collected.historyError ? 'warn' : 'info',
    msg: collected.dbError ? 'scrape failed' : collected.historyError ? 'scrape degraded' : 'scrape',
    outcome: collected.dbError ? 'db_failed' : 'ok',
    status: 200,
    ...request,
    duration_ms: Date.now() - started,
    db_ms: collected.dbMs,
    ...(collected.snapshot ? { figures: summarize(collected.snapshot) } : {}),
    ...(collected.historyError ? { degraded: `terminal counts missing: ${collected.historyError}` } : {}),
    ...(collected.dbError ? { error: collected.dbError } : {}),
  });
  return {
    statusCode: 200,
    headers: { 'content-type': collected.registry.contentType, 'cache-control': 'no-store' },
    body: collected.exposition,
  };
}
