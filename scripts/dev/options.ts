/**
 * npm start's options, from the environment: the user's database, gateway
 * and token, or none of them (the embedded demo, a local gateway, a
 * throw-away token), and the local settings of the settings table.
 */

import { ConfigError } from '../../lib/config/errors';
import { parseConfig } from '../../lib/config/parse';
import { flag, integer, optionalInteger, text } from '../../lib/config/read';

export class DevError extends Error {
  override name = 'DevError';
}

export interface DevOptions {
  databaseUrl: string | undefined;
  /** The user's own DATABASE_WS_PROXY: used as is, no bridge of ours. */
  wsProxy: string | undefined;
  pushgatewayUrl: string | undefined;
  dryRun: boolean;
  /** Set by the user: must be free. Unset: a free port is picked. */
  lambdaPort: number | undefined;
  httpPort: number | undefined;
  tickEverySeconds: number;
  verbose: boolean;
  /** The user's own token for GET /metrics; unset: a throw-away one is generated. */
  metricsToken: string | undefined;
}

/**
 * DATABASE_URL as the handler will read it, checked now: a refused one (plain
 * text to a remote host, a missing sslrootcert, …) is one line at start rather
 * than a failed tick a minute later.
 */
function checkDatabase(env: NodeJS.ProcessEnv): void {
  if (text(env, 'DATABASE_URL') === undefined) return;
  const { DATABASE_URL, DATABASE_WS_PROXY, DATABASE_ALLOW_PLAINTEXT } = env;
  parseConfig({ DATABASE_URL, DATABASE_WS_PROXY, DATABASE_ALLOW_PLAINTEXT }, { requireSink: false });
}

/** npm start's settings (the settings table's local ones among them), each checked before anything starts. */
export function devOptions(env: NodeJS.ProcessEnv): DevOptions {
  try {
    return readOptions(env);
  } catch (error) {
    if (error instanceof ConfigError) throw new DevError(error.message);
    throw error;
  }
}

function readOptions(env: NodeJS.ProcessEnv): DevOptions {
  checkDatabase(env);
  const pushgatewayUrl = text(env, 'PUSHGATEWAY_URL');
  const dryRun = flag(env, 'PUSH_DRY_RUN');
  if (dryRun && pushgatewayUrl) throw new DevError('PUSH_DRY_RUN=true and PUSHGATEWAY_URL are both set; choose one');
  return {
    databaseUrl: text(env, 'DATABASE_URL'),
    wsProxy: text(env, 'DATABASE_WS_PROXY'),
    pushgatewayUrl,
    dryRun,
    lambdaPort: optionalInteger(env, 'OFFLINE_LAMBDA_PORT'),
    httpPort: optionalInteger(env, 'OFFLINE_HTTP_PORT'),
    tickEverySeconds: integer(env, 'DEV_TICK_SECONDS'),
    verbose: flag(env, 'VERBOSE'),
    metricsToken: text(env, 'METRICS_BEARER_TOKEN'),
  };
}
