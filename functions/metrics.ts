/**
 * GET /metrics (httpApi): the same figures as the scheduled push, read fresh
 * per request and returned as Prometheus text, for a Prometheus that can scrape
 * the function directly. It shares the read-and-build code (lib/runtime/collect.ts),
 * which holds no sink code, and never pushes.
 *
 * Access needs `Authorization: Bearer <METRICS_BEARER_TOKEN>`; without a
 * configured token the endpoint refuses to serve (503) rather than being open.
 * An anonymous caller costs as little as possible: the token is the one secret
 * read before the check (and kept for TOKEN_CACHE_SECONDS at least, whatever
 * SECRETS_CACHE_SECONDS says, so a flood of anonymous requests is not a flood of
 * SSM and KMS calls); the database URL is read, and the database reached, only
 * for an authorised request. Every plain setting is still checked first.
 *
 * A database password refused after a rotation is read again once.
 */

import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { createHash, timingSafeEqual } from 'node:crypto';
import { startStopwatch } from '../lib/core/clock';
import { redactingSink, stdoutSink, type LogSink } from '../lib/core/log';
import { collectRegistry } from '../lib/runtime/collect';
import { configure, invocationDeadline, parseBudgets, refetchSecrets, SetupError, type Setup, type SetupOptions } from '../lib/runtime/handler';
import { describeDegraded, summarize } from '../lib/runtime/tick-record';

/** The scrape's token stays cached at least this long (docs/extras.md). */
export const TOKEN_CACHE_SECONDS = 60;

const KEEP = { keepFor: { METRICS_BEARER_TOKEN: TOKEN_CACHE_SECONDS } } as const;
const TOKEN_ONLY: SetupOptions = { requireSink: false, only: ['METRICS_BEARER_TOKEN'], ...KEEP };
const FULL: SetupOptions = { requireSink: false, ...KEEP };

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

/** The details go to the log only (the setup logged them): an unauthenticated caller learns nothing of the setup. */
function setupFailed(error: unknown): Response {
  if (error instanceof SetupError) return plain(500, `xyn-metrics: ${error.what} (see the function log)`);
  throw error;
}

export async function metrics(event: Partial<APIGatewayProxyEventV2> | undefined, context: Partial<Context> | undefined): Promise<Response> {
  const elapsed = startStopwatch();
  let checked: Awaited<ReturnType<typeof configure>>;
  let deadline;
  try {
    deadline = invocationDeadline(parseBudgets(process.env), context);
    checked = await configure(process.env, deadline, TOKEN_ONLY);
  } catch (error) {
    return setupFailed(error);
  }
  const token = checked.config.metricsBearerToken;
  const log: LogSink = redactingSink(stdoutSink, checked.config.secrets);
  const request = { request_id: context?.awsRequestId, path: event?.rawPath };

  if (token === undefined) {
    log({ level: 'error', msg: 'scrape refused', status: 503, ...request, error: 'METRICS_BEARER_TOKEN is not configured' });
    return plain(503, 'xyn-metrics: METRICS_BEARER_TOKEN is not configured; /metrics refuses to serve without it');
  }
  if (!tokenMatches(bearerToken(event?.headers), token)) {
    log({ level: 'warn', msg: 'scrape unauthorized', status: 401, ...request });
    return plain(401, 'xyn-metrics: missing or wrong bearer token', { 'www-authenticate': 'Bearer realm="xyn-metrics"' });
  }

  let setup: Setup;
  try {
    setup = { ...(await configure(process.env, deadline, FULL)), rawEnv: process.env, deadline };
  } catch (error) {
    return setupFailed(error);
  }
  // The scrape never pushes, so the whole budget is the database's.
  let collected = await collectRegistry(setup.config, deadline);
  if (collected.dbAuthFailed) {
    // The password may have been rotated since it was cached; a failed read is logged, and the scrape answers with collector_up 0.
    const rotated = await refetchSecrets(setup, context, FULL, { refused: ['database'], wording: { refused: 'password refused', again: 'reading again' }, log, context: request }).catch(() => undefined);
    if (rotated !== undefined) collected = await collectRegistry(rotated, invocationDeadline(rotated.tick, context));
  }

  // A failed read still answers 200 with xyn_collector_up 0 alone, as the push does:
  // Prometheus's own `up` then says the endpoint works and this says the database does not.
  log({
    level: collected.dbError ? 'error' : collected.degraded.length > 0 ? 'warn' : 'info',
    msg: collected.dbError ? 'scrape failed' : collected.degraded.length > 0 ? 'scrape degraded' : 'scrape',
    outcome: collected.dbError ? 'db_failed' : 'ok',
    status: 200,
    ...request,
    duration_ms: Math.round(elapsed()),
    db_ms: collected.dbMs,
    ...(collected.snapshot ? { figures: summarize(collected.snapshot) } : {}),
    ...(collected.degraded.length > 0 ? { degraded: describeDegraded(collected.degraded), missing: collected.degraded.map((p) => p.part) } : {}),
    ...(collected.dbError ? { error: collected.dbError } : {}),
  });
  return {
    statusCode: 200,
    headers: { 'content-type': collected.registry.contentType, 'cache-control': 'no-store' },
    body: collected.exposition,
  };
}
