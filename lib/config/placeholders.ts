/**
 * Stand-ins for secrets whose values are not known yet (read from SSM later,
 * or, at deploy, never known at all), valid for their setting, so that every
 * other setting can be checked by the function's own parser before any I/O.
 * A stand-in never reaches a connection: only the check sees it.
 */

import { flag, type Env } from './read';
import type { SettingName } from './settings';

/**
 * A loopback database URL without a password: the most permissive stand-in,
 * so no check that depends on the real URL (its host, its sslmode) can refuse
 * on its behalf; those checks run when the real value is read. With
 * DATABASE_IAM_AUTH=true it asks for verify-full, which IAM authentication
 * demands of the real URL.
 */
function databaseUrlPlaceholder(env: Env): string {
  const url = 'postgresql://xyn_metrics@127.0.0.1:5432/xyn';
  return flag(env, 'DATABASE_IAM_AUTH') ? `${url}?sslmode=verify-full` : url;
}
const PLACEHOLDER_SECRET = 'placeholder-for-a-secret-read-later';

export function withPlaceholders(env: Env, variables: readonly SettingName[]): Env {
  const out: Env = { ...env };
  for (const name of variables) out[name] = name === 'DATABASE_URL' ? databaseUrlPlaceholder(env) : PLACEHOLDER_SECRET;
  return out;
}
