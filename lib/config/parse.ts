/**
 * Configuration: parsed and validated from the environment before any I/O
 * (but the read of secrets from SSM, lib/runtime/secrets.ts, which fills them
 * in first). Every problem becomes one ConfigError naming the variable; no
 * value of a secret is ever part of a message. The deploy calls this very
 * function on the deploy settings (scripts/deploy/settings.ts), so a value a
 * function would refuse is refused by the deploy with the same words.
 */

import { parseDatabase } from './database';
import { ConfigError } from './errors';
import { parseBearerToken, parseExtras, parseSampling } from './extras';
import { integer, type Env } from './read';
import { parseSinks } from './sinks';
import type { Config, TickConfig } from './types';

export interface ParseOptions {
  /** The scheduled function must push (to a Pushgateway or by remote write); the CLI and the scrape may not. */
  requireSink: boolean;
}

/**
 * The budgets of a tick, which the handlers need before anything else (the
 * read of secrets runs within TICK_TIMEOUT_MS): validated on their own, first.
 */
export function parseTick(env: Env): TickConfig {
  return { timeoutMs: integer(env, 'TICK_TIMEOUT_MS'), maxEventAgeSeconds: integer(env, 'MAX_EVENT_AGE_SECONDS') };
}

export function parseConfig(env: Env, options: ParseOptions = { requireSink: true }): Config {
  // Node reads this for every TLS connection of the process (the database and the push).
  if (env.NODE_TLS_REJECT_UNAUTHORIZED?.trim() === '0') {
    throw new ConfigError(
      'NODE_TLS_REJECT_UNAUTHORIZED=0 turns certificate checks off; unset it (for a private CA use PUSHGATEWAY_CA_FILE, or sslrootcert in DATABASE_URL)',
    );
  }
  const database = parseDatabase(env);
  const sinks = parseSinks(env, options.requireSink);
  const tick = parseTick(env);
  const metricsBearerToken = parseBearerToken(env);
  const sampling = parseSampling(env);
  const extras = parseExtras(env);
  const secrets = [...database.secrets, metricsBearerToken, ...sinks.secrets];
  return {
    database: database.database,
    sinks: sinks.sinks,
    tick,
    sampling,
    extras,
    metricsBearerToken,
    secrets: secrets.filter((s): s is string => s !== undefined && s.length > 0),
  };
}
