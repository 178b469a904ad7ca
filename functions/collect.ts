/**
 * The scheduled Lambda: a thin adapter from (event, context) to runTick.
 * The deadline is the smaller of TICK_TIMEOUT_MS and the function's remaining
 * time less a margin, so the tick always ends (and logs) before Lambda kills it.
 *
 * Warm-container safe: nothing is kept between invocations but the secrets
 * read from SSM (lib/runtime/secrets.ts, for SECRETS_CACHE_SECONDS). Every call parses
 * the environment, opens its own connection and builds its own registry; no
 * global prom-client metric.
 *
 * Secrets first: resolveSecrets fills in X from X_SSM_PARAMETER (deployed) or
 * leaves the plain X (local), within the tick's deadline; parseConfig only ever
 * sees plain values. A tick whose credentials are refused after a rotation
 * refetches them once and, when any changed, runs once more.
 */

import type { Context, ScheduledEvent } from 'aws-lambda';
import { ConfigError, parseConfig, type Config, type Env } from '../lib/config/parse';
import { deadlineIn, tickBudgetMs, type Deadline } from '../lib/core/deadline';
import { redactingSink, stdoutSink } from '../lib/core/log';
import { describeError } from '../lib/core/redact';
import { runSamples } from '../lib/runtime/sampling';
import { changedSecrets, resolveSecrets, secretParameters, SecretsError, startupBudgetMs } from '../lib/runtime/secrets';
import { lateBySeconds, TickError, type TickResult } from '../lib/runtime/tick';

/** Room left after the deadline to log and return before Lambda's own timeout. */
export const EXIT_MARGIN_MS = 1_500;

export type CollectResponse = Pick<TickResult, 'outcome' | 'pushedTo' | 'durationMs'> | { outcome: 'skipped_late'; ageSeconds: number };

/** Secrets, then configuration; each failure is one error line and one thrown message. */
async function configure(env: Env, deadline: Deadline, refresh = false): Promise<{ env: Env; config: Config; secretsMs: number }> {
  const started = Date.now();
  let resolved: Env;
  let secretsMs: number;
  try {
    resolved = await resolveSecrets(env, deadline, { refresh });
    secretsMs = Date.now() - started;
  } catch (error) {
    // Neither error carries a secret value (they name parameters and variables); redact anyway.
    const message = error instanceof ConfigError || error instanceof SecretsError ? error.message : describeError(error, []);
    const what = error instanceof SecretsError ? 'secrets unavailable' : 'configuration error';
    stdoutSink({ level: 'error', msg: what, error: message });
    throw new Error(`xyn-metrics ${what}: ${message}`);
  }
  try {
    return { env: resolved, config: parseConfig(resolved), secretsMs };
  } catch (error) {
    // Config errors never carry values of secrets; redact anyway in case of a bug.
    const message = error instanceof ConfigError ? error.message : describeError(error, []);
    stdoutSink({ level: 'error', msg: 'configuration error', error: message });
    throw new Error(`xyn-metrics configuration error: ${message}`);
  }
}

/**
 * After a tick whose credentials were refused: read the secrets from SSM
 * again, once. Returns the new configuration when any value changed (the tick
 * is worth running again), undefined otherwise.
 */
async function refetchAfterRefusal(error: unknown, before: Env, deadline: Deadline, context: Record<string, unknown>): Promise<Config | undefined> {
  const refused = error instanceof TickError ? (error.result.authFailures ?? []) : [];
  if (refused.length === 0 || secretParameters(process.env).length === 0) return undefined;
  const { env, config } = await configure(process.env, deadline, true);
  const changed = changedSecrets(before, env);
  redactingSink(stdoutSink, config.secrets)({
    level: 'warn',
    msg: changed.length > 0 ? 'credentials refused; secrets changed in SSM, tick runs again' : 'credentials refused; secrets unchanged in SSM',
    refused,
    changed,
    ...context,
  });
  return changed.length > 0 ? config : undefined;
}

export async function collect(event: Partial<ScheduledEvent> | undefined, context: Partial<Context> | undefined): Promise<CollectResponse> {
  // TICK_TIMEOUT_MS bounds the SSM read and the tick together.
  const setupDeadline = deadlineIn(tickBudgetMs(startupBudgetMs(process.env), context?.getRemainingTimeInMillis?.(), EXIT_MARGIN_MS));
  const { env, config, secretsMs } = await configure(process.env, setupDeadline);

  let late: number | undefined;
  try {
    late = lateBySeconds(event?.time, Date.now(), config.maxEventAgeSeconds);
  } catch (error) {
    const message = describeError(error, config.secrets);
    stdoutSink({ level: 'error', msg: 'bad scheduled event', error: message });
    throw new Error(`xyn-metrics: ${message}`);
  }
  if (late !== undefined) {
    stdoutSink({
      level: 'warn',
      msg: 'late tick skipped',
      outcome: 'skipped_late',
      scheduled_at: event?.time,
      age_seconds: Math.round(late),
      max_event_age_seconds: config.maxEventAgeSeconds,
    });
    return { outcome: 'skipped_late', ageSeconds: Math.round(late) };
  }

  const remaining = context?.getRemainingTimeInMillis?.();
  const budget = tickBudgetMs(config.tickTimeoutMs - secretsMs, remaining, EXIT_MARGIN_MS);
  const deadline = deadlineIn(budget);
  const invocationDeadline = remaining === undefined ? undefined : deadlineIn(Math.max(0, remaining - EXIT_MARGIN_MS));
  const tickContext = { request_id: context?.awsRequestId, scheduled_at: event?.time };
  // One runTick, or SAMPLES_PER_INVOCATION ticks spread over the schedule period (lib/runtime/sampling.ts).
  const run = (current: Config) => runSamples(current, { deadline, context: tickContext, eventTime: event?.time, invocationDeadline });
  let result: TickResult;
  try {
    result = await run(config);
  } catch (error) {
    // A refused credential may have been rotated since it was cached.
    const rotated = await refetchAfterRefusal(error, env, deadline, tickContext);
    if (rotated === undefined) throw error;
    result = await run(rotated);
  }
  return { outcome: result.outcome, pushedTo: result.pushedTo, durationMs: result.durationMs };
}
