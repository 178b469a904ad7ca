/**
 * When the secrets cannot be read at all (SSM down, the parameter deleted, no
 * cached value left), the tick has nothing to read the database with. Pushing
 * nothing would leave the last good figures on display until the freshness
 * gate notices, minutes later; so wherever a sink needs none of the missing
 * secrets (a gateway without auth, remote write signed with the role's own
 * credentials, or a sink whose secret is still cached), it gets
 * xyn_collector_up 0 and the duration alone, as for a failed database read.
 */

import { parseSinks } from '../config/sinks';
import { withPlaceholders } from '../config/placeholders';
import type { Env } from '../config/read';
import type { SettingName } from '../config/settings';
import type { Deadline } from '../core/deadline';
import { buildRegistry } from '../metrics/registry';
import { sendToSinks } from '../sinks/send';
import type { SecretsError } from './secrets';

const SINK_SECRETS = {
  pushgateway: ['PUSHGATEWAY_PASSWORD', 'PUSHGATEWAY_TOKEN'],
  remoteWrite: ['REMOTE_WRITE_PASSWORD', 'REMOTE_WRITE_TOKEN'],
} as const satisfies Record<string, readonly SettingName[]>;

/**
 * Push xyn_collector_up 0 to every sink whose own settings are whole without
 * the missing secrets. Returns the fields for the error line: where it went,
 * or why nowhere. Never throws for a sink's failure.
 */
export async function pushCollectorDown(env: Env, error: SecretsError, deadline: Deadline, secrets: readonly string[]): Promise<Record<string, unknown>> {
  const missing = error.missing as readonly SettingName[];
  let sinks;
  try {
    // The missing secrets stand in (never sent: a sink that needs one is dropped below), the cached ones are real.
    sinks = parseSinks(withPlaceholders({ ...env, ...error.resolved }, missing), true).sinks;
  } catch {
    return { down_pushed_to: [] };
  }
  const usable = {
    ...sinks,
    pushgateway: SINK_SECRETS.pushgateway.some((s) => missing.includes(s)) ? undefined : sinks.pushgateway,
    remoteWrite: SINK_SECRETS.remoteWrite.some((s) => missing.includes(s)) ? undefined : sinks.remoteWrite,
  };
  if (!usable.pushgateway && !usable.remoteWrite) return { down_pushed_to: [] };
  const registry = buildRegistry(undefined, { up: false, durationSeconds: 0 });
  const results = await sendToSinks(registry, usable, deadline, Date.now(), [...secrets, ...Object.values(error.resolved).filter((v): v is string => !!v)]);
  return {
    down_pushed_to: results.filter((r) => !r.error).map((r) => r.target),
    ...(results.some((r) => r.error) ? { down_push_errors: results.filter((r) => r.error).map((r) => r.error) } : {}),
  };
}
