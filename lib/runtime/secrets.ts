/**
 * Secrets at run time. Deployed, the template carries only parameter names
 * (`X_SSM_PARAMETER=/xyn-metrics/<stage>/…`, never values); the handlers call
 * resolveSecrets before parseConfig, which fills in each X from SSM Parameter
 * Store (SecureString, one GetParameters call for every name, decrypted by
 * SSM, signed and sent by lib/runtime/ssm.ts without the AWS SDK). Locally X
 * is a plain environment variable and SSM is never touched.
 *
 * Values are cached per warm container for SECRETS_CACHE_SECONDS (the one
 * piece of module-level state), so a rotated secret takes effect within that
 * time without a redeploy; a handler that meets an authentication failure
 * refetches at once with `refresh: true`.
 *
 * Errors name the parameter and the variable, never a value.
 */

import { ConfigError } from '../config/errors';
import { integer, text, type Env } from '../config/read';
import { defaultOf, SECRET_SETTINGS, SSM_PARAMETER_SUFFIX, type SettingName } from '../config/settings';
import type { Deadline } from '../core/deadline';
import { describeError } from '../core/redact';
import { getParameters } from './ssm';

export { SSM_PARAMETER_SUFFIX } from '../config/settings';

/** Every variable that may come from SSM instead of the environment (the secret contract: the settings table's secrets). */
export const SECRET_VARIABLES = SECRET_SETTINGS;

export type SecretVariable = SettingName;

/** Short enough that a rotation lands within minutes; long enough that a warm container rarely calls SSM. */
export const DEFAULT_SECRETS_CACHE_SECONDS = defaultOf('SECRETS_CACHE_SECONDS');

/** GetParameters takes at most 10 names; the contract has 6 variables. */
const MAX_NAMES_PER_CALL = 10;

// A parameter name (/a/b_c.d-e) or its ARN; names are not secrets and may be echoed.
const PARAMETER_NAME = /^(arn:aws[a-z-]*:ssm:[a-z0-9-]+:\d{12}:parameter\/[A-Za-z0-9_.\-/]+|[A-Za-z0-9_.\-/]{1,2048})$/;

/**
 * A secret that could not be read from SSM. The tick must fail; `resolved`
 * holds what could be had (from the cache) and `missing` what could not, so the
 * handler can still tell the sinks that need none of the missing ones.
 */
export class SecretsError extends Error {
  override name = 'SecretsError';
  constructor(
    message: string,
    readonly missing: readonly SecretVariable[] = [],
    readonly resolved: Env = {},
  ) {
    super(message);
  }
}

/** Values used past their refresh because SSM could not be read (a warning, not a failure). */
export interface StaleSecrets {
  variables: SecretVariable[];
  /** Age of the oldest of them, seconds. */
  oldestAgeSeconds: number;
  /** Why the refresh failed. */
  error: string;
}

/** Which variable each SSM parameter fills. */
export interface SecretParameter {
  variable: SecretVariable;
  parameter: string;
}

export interface ParameterValue {
  name: string;
  value: string;
  type: string | undefined;
}

/** What the SSM call returns; replaceable only so the unit tests of the cache can count calls. */
export type FetchParameters = (names: string[], deadline: Deadline, env: Env) => Promise<{ found: ParameterValue[]; invalid: string[] }>;

export interface ResolveOptions {
  /** Drop the cached values of these parameters and read them again (after an authentication failure). */
  refresh?: boolean;
  /** Resolve only these variables (the scrape reads its token before anything else). */
  only?: readonly SecretVariable[];
  /** Keep these variables' cached values at least this many seconds, whatever SECRETS_CACHE_SECONDS says. */
  keepFor?: Partial<Record<SecretVariable, number>>;
  /** Told when cached values are used past their refresh because SSM could not be read. */
  onStale?: (stale: StaleSecrets) => void;
  now?: () => number;
  fetchParameters?: FetchParameters;
}

/** The SSM parameters `env` asks for, validated; pure. */
export function secretParameters(env: Env): SecretParameter[] {
  const wanted: SecretParameter[] = [];
  for (const variable of SECRET_VARIABLES) {
    const pointer = `${variable}${SSM_PARAMETER_SUFFIX}`;
    const parameter = text(env, pointer);
    if (parameter === undefined) continue;
    if (text(env, variable) !== undefined) {
      throw new ConfigError(`${variable} and ${pointer} are both set; set only one (${pointer} in a deploy, ${variable} locally)`);
    }
    if (!PARAMETER_NAME.test(parameter)) {
      throw new ConfigError(`${pointer} must be an SSM parameter name such as /xyn-metrics/prod/database-url, got "${parameter.slice(0, 100)}"`);
    }
    wanted.push({ variable, parameter });
  }
  return wanted;
}

/** SECRETS_CACHE_SECONDS: how long a warm container reuses values read from SSM (0: read every invocation). */
export function secretsCacheSeconds(env: Env): number {
  return integer(env, 'SECRETS_CACHE_SECONDS');
}

interface CachedValue {
  value: string;
  fetchedAt: number;
}

/** Per warm container, keyed by parameter name. */
const cache = new Map<string, CachedValue>();

/** For tests: forget every cached value. */
export function clearSecretsCache(): void {
  cache.clear();
}

function describeParameters(wanted: SecretParameter[]): string {
  return wanted.map((w) => `${w.parameter} (for ${w.variable})`).join(', ');
}

/**
 * The real call: one GetParameters for every name, decrypted, bounded by the
 * deadline, signed and sent by lib/runtime/ssm.ts (no AWS SDK), with the
 * credentials, region and endpoint of `env`.
 */
export const ssmGetParameters: FetchParameters = (names, deadline, env) => getParameters(names, deadline, { env });

/** AWS names its errors (AccessDeniedException, ThrottlingException, …); say which, and why. */
function sdkReason(error: unknown): string {
  const name = error instanceof Error && error.name && error.name !== 'Error' ? error.name : undefined;
  const message = describeError(error, []);
  return name && !message.includes(name) ? `${name}: ${message}` : message;
}

/** Parameters answered by GetParameters: a name may come back as an ARN or as the plain name. */
function matches(parameter: string, answered: string): boolean {
  return answered === parameter || answered.endsWith(`:parameter${parameter.startsWith('/') ? '' : '/'}${parameter}`);
}

async function fetchInto(wanted: SecretParameter[], deadline: Deadline, fetchParameters: FetchParameters, now: number, env: Env): Promise<void> {
  const names = [...new Set(wanted.map((w) => w.parameter))];
  if (names.length > MAX_NAMES_PER_CALL) throw new ConfigError(`at most ${MAX_NAMES_PER_CALL} SSM parameters, got ${names.length}`);
  let answer: Awaited<ReturnType<FetchParameters>>;
  try {
    answer = await fetchParameters(names, deadline, env);
  } catch (error) {
    throw new SecretsError(`cannot read SSM parameter${names.length === 1 ? '' : 's'} ${describeParameters(wanted)}: ${sdkReason(error)}`);
  }
  const problems: string[] = [];
  for (const w of wanted) {
    const found = answer.found.find((p) => matches(w.parameter, p.name) || matches(p.name, w.parameter));
    if (answer.invalid.includes(w.parameter) || found === undefined) {
      problems.push(`SSM parameter ${w.parameter} (for ${w.variable}) does not exist in this account and region, or the name is wrong`);
    } else if (found.type !== undefined && found.type !== 'SecureString') {
      problems.push(`SSM parameter ${w.parameter} (for ${w.variable}) is a ${found.type}, not a SecureString; store it with --type SecureString`);
    } else if (found.value === '') {
      problems.push(`SSM parameter ${w.parameter} (for ${w.variable}) is empty`);
    }
  }
  if (problems.length > 0) throw new SecretsError(problems.join('; '));
  for (const w of wanted) {
    const found = answer.found.find((p) => matches(w.parameter, p.name) || matches(p.name, w.parameter))!;
    cache.set(w.parameter, { value: found.value, fetchedAt: now });
  }
}

/**
 * A copy of `env` with every X whose X_SSM_PARAMETER is set filled in from SSM
 * (cached values while fresh). With no X_SSM_PARAMETER set it returns the copy
 * at once: no network. Throws ConfigError for a bad setting and
 * SecretsError (naming parameter and variable) for anything SSM could not give.
 */
export async function resolveSecrets(env: Env, deadline: Deadline, options: ResolveOptions = {}): Promise<Env> {
  const wanted = secretParameters(env).filter((w) => options.only === undefined || options.only.includes(w.variable));
  // Checked even when unused: a typo must not wait for the first deploy to show.
  const cacheSeconds = secretsCacheSeconds(env);
  const maxAgeMs = (variable: SecretVariable) => Math.max(cacheSeconds, options.keepFor?.[variable] ?? 0) * 1000;
  const resolved: Env = { ...env };
  if (wanted.length === 0) return resolved;

  const staleMaxMs = integer(env, 'SECRETS_STALE_SECONDS') * 1000;
  const now = (options.now ?? Date.now)();
  const due = wanted.filter((w) => {
    const cached = cache.get(w.parameter);
    return options.refresh || cached === undefined || now - cached.fetchedAt >= maxAgeMs(w.variable);
  });
  if (due.length > 0) {
    try {
      await fetchInto(due, deadline, options.fetchParameters ?? ssmGetParameters, now, env);
    } catch (error) {
      if (!(error instanceof SecretsError)) throw error;
      // An outage must not blind a warm container at once: a value read not too long ago still serves,
      // with a warning. Not after a refused credential (refresh): that value was just refused.
      const usable = (w: SecretParameter) => {
        const cached = cache.get(w.parameter);
        return !options.refresh && cached !== undefined && now - cached.fetchedAt < staleMaxMs;
      };
      const missing = wanted.filter((w) => (due.includes(w) ? !usable(w) : false));
      const have = wanted.filter((w) => !missing.includes(w) && (!options.refresh || !due.includes(w)));
      const partial: Env = Object.fromEntries(have.map((w) => [w.variable, cache.get(w.parameter)!.value]));
      if (missing.length > 0 || options.refresh) {
        throw new SecretsError(error.message, (options.refresh ? due : missing).map((w) => w.variable), partial);
      }
      const ages = due.map((w) => now - cache.get(w.parameter)!.fetchedAt);
      options.onStale?.({ variables: due.map((w) => w.variable), oldestAgeSeconds: Math.round(Math.max(...ages) / 1000), error: error.message });
    }
  }
  for (const w of wanted) resolved[w.variable] = cache.get(w.parameter)!.value;
  return resolved;
}

/** The variables whose value differs between two resolutions (names only). */
export function changedSecrets(before: Env, after: Env): SecretVariable[] {
  return SECRET_VARIABLES.filter((v) => before[v] !== after[v]);
}
