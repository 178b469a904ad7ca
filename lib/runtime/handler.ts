/**
 * The setup both handlers share (functions/collect.ts, functions/metrics.ts):
 * the tick's budgets first (no I/O yet), then secrets (from SSM when
 * deployed), then the configuration; each failure one log line and one error
 * in one wording. And the one exit margin: the tick ends (and logs its line)
 * this long before Lambda would kill it.
 */

import type { Context } from 'aws-lambda';
import { parseConfig, parseTick, type ParseOptions } from '../config/parse';
import { withPlaceholders } from '../config/placeholders';
import type { Env } from '../config/read';
import type { Config, TickConfig } from '../config/types';
import { startStopwatch } from '../core/clock';
import { deadlineIn, tickBudgetMs, type Deadline } from '../core/deadline';
import { redactingSink, stdoutSink, type LogSink } from '../core/log';
import { describeError } from '../core/redact';
import { changedSecrets, resolveSecrets, secretParameters, SecretsError, type ResolveOptions } from './secrets';

/** Room left after the deadline to log and return before Lambda's own timeout. */
export const EXIT_MARGIN_MS = 1_500;

export type SetupFailure = 'configuration error' | 'secrets unavailable';

/** A setup that could not finish: `message` is the one line a handler throws or logs ("xyn-metrics <what>: <detail>"). */
export class SetupError extends Error {
  override name = 'SetupError';
  constructor(
    readonly what: SetupFailure,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`xyn-metrics ${what}: ${detail}`, options);
  }
}

/** The AWS credentials a function holds: redacted from everything it says, whatever reads them. */
export function environmentSecrets(env: Env): string[] {
  return [env.AWS_SECRET_ACCESS_KEY, env.AWS_SESSION_TOKEN].filter((s): s is string => typeof s === 'string' && s.trim().length > 0);
}

/** The one wording of a setup failure, logged once (with what the function still did, `done`). */
function setupError(error: unknown, env: Env, done: Record<string, unknown> = {}): SetupError {
  if (error instanceof SetupError) return error;
  const secrets = environmentSecrets(env);
  // Neither a ConfigError nor a SecretsError carries a secret value (they name variables and parameters); redact anyway.
  const detail = describeError(error, secrets);
  const what: SetupFailure = error instanceof SecretsError ? 'secrets unavailable' : 'configuration error';
  redactingSink(stdoutSink, secrets)({ level: 'error', msg: what, error: detail, ...done });
  return new SetupError(what, detail, { cause: error });
}

/** The invocation's budget, from the tick's timeout and what Lambda has left (less the exit margin). */
export function invocationDeadline(tick: TickConfig, context: Partial<Context> | undefined): Deadline {
  return deadlineIn(tickBudgetMs(tick.timeoutMs, context?.getRemainingTimeInMillis?.(), EXIT_MARGIN_MS));
}

export interface Setup {
  /** The environment as the function got it (secrets as X_SSM_PARAMETER names when deployed). */
  rawEnv: Env;
  /** The environment with every secret filled in. */
  env: Env;
  config: Config;
  /** The tick's deadline (secrets included), set before the secrets were read. */
  deadline: Deadline;
  secretsMs: number;
}

export interface SetupOptions extends ParseOptions, Pick<ResolveOptions, 'only' | 'keepFor'> {
  /**
   * When a secret cannot be had at all: what the function can still do (collect
   * pushes xyn_collector_up 0 where a sink needs none of the missing secrets);
   * the fields it returns join the one error line.
   */
  onSecretsUnavailable?: (error: SecretsError, env: Env) => Promise<Record<string, unknown>>;
}

/** The tick's budgets alone, validated before any I/O. */
export function parseBudgets(env: Env): TickConfig {
  try {
    return parseTick(env);
  } catch (error) {
    throw setupError(error, env);
  }
}

/**
 * Secrets (within `deadline`), then the configuration. With `only`, just those
 * secrets are read and the others stand in (lib/config/placeholders.ts): the
 * configuration is then fit for checks, not for a connection.
 */
export async function configure(env: Env, deadline: Deadline, options: SetupOptions, refresh = false): Promise<Omit<Setup, 'deadline' | 'rawEnv'>> {
  const elapsed = startStopwatch();
  let resolved: Env;
  const log = redactingSink(stdoutSink, environmentSecrets(env));
  try {
    resolved = await resolveSecrets(env, deadline, {
      refresh,
      only: options.only,
      keepFor: options.keepFor,
      onStale: (stale) =>
        log({
          level: 'warn',
          msg: 'secrets stale: SSM could not be read, cached values used',
          variables: stale.variables,
          age_seconds: stale.oldestAgeSeconds,
          error: stale.error,
        }),
    });
  } catch (error) {
    const done = error instanceof SecretsError && options.onSecretsUnavailable && !refresh
      ? await options.onSecretsUnavailable(error, env).catch((hookError: unknown) => ({ down_not_pushed: describeError(hookError, environmentSecrets(env)) }))
      : {};
    throw setupError(error, env, done);
  }
  const secretsMs = Math.round(elapsed());
  // Secrets not read yet (only some were asked for) get stand-ins, so every other setting is checked now.
  const pending = options.only ? secretParameters(env).map((w) => w.variable).filter((v) => !options.only!.includes(v)) : [];
  try {
    const config = parseConfig(withPlaceholders(resolved, pending), options);
    config.secrets.push(...environmentSecrets(resolved));
    return { env: resolved, config, secretsMs };
  } catch (error) {
    throw setupError(error, env);
  }
}

/** Budgets, secrets, configuration: what a handler needs before its first query. */
export async function setUp(env: Env, context: Partial<Context> | undefined, options: SetupOptions): Promise<Setup> {
  const deadline = invocationDeadline(parseBudgets(env), context);
  return { ...(await configure(env, deadline, options)), rawEnv: env, deadline };
}

export interface Refetch {
  /** What was refused (database, pushgateway, remote_write). */
  refused: readonly string[];
  /** How the log line names it ("credentials refused") and what follows a change ("tick runs again"). */
  wording: { refused: string; again: string };
  log: LogSink;
  context?: Record<string, unknown>;
}

/**
 * After a credential was refused: read the secrets from SSM again, once, with a
 * deadline of its own from what the invocation has left. Returns the new
 * configuration when any value changed (worth running again), undefined when
 * none did or nothing comes from SSM. Throws a SetupError when the read fails.
 */
export async function refetchSecrets(before: Setup, context: Partial<Context> | undefined, options: SetupOptions, refetch: Refetch): Promise<Config | undefined> {
  if (refetch.refused.length === 0 || secretParameters(before.rawEnv).length === 0) return undefined;
  const { env, config } = await configure(before.rawEnv, invocationDeadline(before.config.tick, context), options, true);
  const changed = changedSecrets(before.env, env);
  refetch.log({
    level: 'warn',
    msg: `${refetch.wording.refused}; secrets ${changed.length > 0 ? `changed in SSM, ${refetch.wording.again}` : 'unchanged in SSM'}`,
    refused: refetch.refused,
    changed,
    ...refetch.context,
  });
  return changed.length > 0 ? config : undefined;
}
