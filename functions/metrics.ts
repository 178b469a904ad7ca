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
 *
 * Secrets (DATABASE_URL, METRICS_BEARER_TOKEN) come from SSM when deployed
 * (lib/runtime/secrets.ts), read before parseConfig. A database password refused after
 * a rotation is read again once; a wrong bearer token never triggers a read
 * (an anonymous caller must not be able to make the function call SSM).
 */

import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { createHash, timingSafeEqual } from 'node:crypto';
import { ConfigError, parseConfig, type Config, type Env } from '../lib/config/parse';
import { deadlineIn, tickBudgetMs, type Deadline } from '../lib/core/deadline';
import { changedSecrets, resolveSecrets, secretParameters, SecretsError, startupBudgetMs } from '../lib/runtime/secrets';
import { redactingSink, stdoutSink, type LogSink } from '../lib/core/log';
import { describeError } from '../lib/core/redact';
import { summarize } from '../lib/source/snapshot';
import { collectRegistry } from '../lib/runtime/tick';

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

/**
 * After the database refused the password: read the secrets from SSM again,
 * once. Returns the new configuration when any value changed, else undefined
 * (a failure to read is logged; the scrape then answers with collector_up 0).
 */
async function refetchAfterRefusal(before: Env, deadline: Deadline, log: LogSink): Promise<Config | undefined> {
  try {
    const fresh = await resolveSecrets(process.env, deadline, { refresh: true });
    const changed = changedSecrets(before, fresh);
    log({ level: 'warn', msg: changed.length > 0 ? 'password refused; secrets changed in SSM, reading again' : 'password refused; secrets unchanged in SSM', changed });
    return changed.length > 0 ? parseConfig(fresh, { requirePushgateway: false }) : undefined;
  } catch (error) {
    const what = error instanceof SecretsError ? 'secrets unavailable' : 'configuration error';
    log({ level: 'error', msg: what, error: error instanceof ConfigError || error instanceof SecretsError ? error.message : describeError(error, []) });
    return undefined;
  }
}

export async function metrics(event: Partial<APIGatewayProxyEventV2> | undefined, context: Partial<Context> | undefined): Promise<Response> {
  const started = Date.now();
  const setupDeadline = deadlineIn(tickBudgetMs(startupBudgetMs(process.env), context?.getRemainingTimeInMillis?.(), EXIT_MARGIN_MS));
  let env: Env;
  let config: Config;
  let secretsMs: number;
  try {
    env = await resolveSecrets(process.env, setupDeadline);
    secretsMs = Date.now() - started;
    config = parseConfig(env, { requirePushgateway: false });
  } catch (error) {
    // The details go to the log only: an unauthenticated caller learns nothing of the setup.
    const message = error instanceof ConfigError || error instanceof SecretsError ? error.message : describeError(error, []);
    const what = error instanceof SecretsError ? 'secrets unavailable' : 'configuration error';
    stdoutSink({ level: 'error', msg: what, error: message });
    return plain(500, `xyn-metrics: ${what} (see the function log)`);
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

  const budget = tickBudgetMs(config.tickTimeoutMs - secretsMs, context?.getRemainingTimeInMillis?.(), EXIT_MARGIN_MS);
  // The scrape never pushes, so the whole budget is the database's.
  const deadline = deadlineIn(budget);
  let collected = await collectRegistry(config, deadline);
  if (collected.dbAuthFailed && secretParameters(process.env).length > 0) {
    // The password may have been rotated since it was cached.
    const rotated = await refetchAfterRefusal(env, deadline, (record) => log({ ...record, ...request }));
    if (rotated !== undefined) collected = await collectRegistry(rotated, deadline);
  }

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
