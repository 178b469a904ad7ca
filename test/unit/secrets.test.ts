import { beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/config/errors';
import { parseTick } from '../../lib/config/parse';
import { deadlineIn } from '../../lib/core/deadline';
import {
  changedSecrets,
  clearSecretsCache,
  DEFAULT_SECRETS_CACHE_SECONDS,
  resolveSecrets,
  SECRET_VARIABLES,
  secretParameters,
  SecretsError,
  secretsCacheSeconds,
  type FetchParameters,
} from '../../lib/runtime/secrets';

const DB = '/xyn-metrics/prod/database-url';
const TOKEN = '/xyn-metrics/prod/pushgateway-token';

/** An SSM stand-in that counts calls (the wire protocol is tested in test/integration/secrets.test.ts). */
function fakeStore(values: Record<string, string>, type = 'SecureString') {
  const calls: string[][] = [];
  const fetchParameters: FetchParameters = async (names) => {
    calls.push(names);
    return {
      found: names.filter((n) => n in values).map((n) => ({ name: n, value: values[n]!, type })),
      invalid: names.filter((n) => !(n in values)),
    };
  };
  return { calls, fetchParameters, values };
}

beforeEach(() => clearSecretsCache());

describe('secretParameters', () => {
  it('is the contract: six variables, X_SSM_PARAMETER each', () => {
    // The settings table's secrets (lib/config/settings.ts), in its order.
    expect([...SECRET_VARIABLES].sort()).toEqual(['DATABASE_URL', 'PUSHGATEWAY_PASSWORD', 'PUSHGATEWAY_TOKEN', 'METRICS_BEARER_TOKEN', 'REMOTE_WRITE_PASSWORD', 'REMOTE_WRITE_TOKEN'].sort());
    expect(secretParameters({ DATABASE_URL_SSM_PARAMETER: DB, PUSHGATEWAY_TOKEN_SSM_PARAMETER: ` ${TOKEN} `, RUNS_TABLE_SSM_PARAMETER: '/x' })).toEqual([
      { variable: 'DATABASE_URL', parameter: DB },
      { variable: 'PUSHGATEWAY_TOKEN', parameter: TOKEN },
    ]);
  });

  it('an empty X_SSM_PARAMETER (a template default) counts as unset', () => {
    expect(secretParameters({ DATABASE_URL: 'postgresql://u:p@h/db', DATABASE_URL_SSM_PARAMETER: '' })).toEqual([]);
  });

  it('X and X_SSM_PARAMETER both set is a ConfigError naming both, without the value', () => {
    const env = { PUSHGATEWAY_PASSWORD: 'Sup3r-Secret', PUSHGATEWAY_PASSWORD_SSM_PARAMETER: '/a/b' };
    expect(() => secretParameters(env)).toThrow(ConfigError);
    expect(() => secretParameters(env)).toThrow(/^PUSHGATEWAY_PASSWORD and PUSHGATEWAY_PASSWORD_SSM_PARAMETER are both set/);
    expect(() => secretParameters(env)).not.toThrow(/Sup3r/);
  });

  it('accepts a name or an ARN, refuses anything else', () => {
    expect(secretParameters({ DATABASE_URL_SSM_PARAMETER: 'arn:aws:ssm:eu-west-1:123456789012:parameter/xyn-metrics/prod/database-url' })).toHaveLength(1);
    expect(() => secretParameters({ DATABASE_URL_SSM_PARAMETER: 'postgresql://u:p@h/db' })).toThrow(/DATABASE_URL_SSM_PARAMETER must be an SSM parameter name/);
  });
});

describe('secretsCacheSeconds', () => {
  it('defaults to a few minutes; 0 disables; out of range or not a number is an error naming the variable', () => {
    expect(secretsCacheSeconds({})).toBe(DEFAULT_SECRETS_CACHE_SECONDS);
    expect(DEFAULT_SECRETS_CACHE_SECONDS).toBe(300);
    expect(secretsCacheSeconds({ SECRETS_CACHE_SECONDS: '0' })).toBe(0);
    expect(() => secretsCacheSeconds({ SECRETS_CACHE_SECONDS: '3601' })).toThrow(/SECRETS_CACHE_SECONDS must be between 0 and 3600/);
    expect(() => secretsCacheSeconds({ SECRETS_CACHE_SECONDS: '5m' })).toThrow(ConfigError);
  });
});

describe('resolveSecrets', () => {
  it('without X_SSM_PARAMETER returns a copy of env and never calls SSM', async () => {
    const store = fakeStore({});
    const env = { DATABASE_URL: 'postgresql://u:p@h/db' };
    const resolved = await resolveSecrets(env, deadlineIn(1000), { fetchParameters: store.fetchParameters });
    expect(resolved).toEqual(env);
    expect(resolved).not.toBe(env);
    expect(store.calls).toEqual([]);
  });

  it('a bad SECRETS_CACHE_SECONDS is an error even when no secret comes from SSM', async () => {
    await expect(resolveSecrets({ DATABASE_URL: 'postgresql://u:p@h/db', SECRETS_CACHE_SECONDS: '-1' }, deadlineIn(1000))).rejects.toThrow(ConfigError);
  });

  it('fills every X in one call and leaves the rest of env alone', async () => {
    const store = fakeStore({ [DB]: 'postgresql://u:rotating@h/db', [TOKEN]: 'tok-123456789' });
    const env = { DATABASE_URL_SSM_PARAMETER: DB, PUSHGATEWAY_TOKEN_SSM_PARAMETER: TOKEN, RUNS_TABLE: 'runs' };
    const resolved = await resolveSecrets(env, deadlineIn(1000), { fetchParameters: store.fetchParameters });
    expect(resolved).toMatchObject({ ...env, DATABASE_URL: 'postgresql://u:rotating@h/db', PUSHGATEWAY_TOKEN: 'tok-123456789' });
    expect(store.calls).toEqual([[DB, TOKEN]]);
  });

  it('reuses values within SECRETS_CACHE_SECONDS, reads again after it or when asked to refresh', async () => {
    const store = fakeStore({ [DB]: 'postgresql://u:one@h/db' });
    const env = { DATABASE_URL_SSM_PARAMETER: DB, SECRETS_CACHE_SECONDS: '60' };
    let now = 1_000_000;
    const options = { fetchParameters: store.fetchParameters, now: () => now };
    await resolveSecrets(env, deadlineIn(1000), options);
    store.values[DB] = 'postgresql://u:two@h/db';
    now += 59_999;
    expect((await resolveSecrets(env, deadlineIn(1000), options)).DATABASE_URL).toBe('postgresql://u:one@h/db');
    expect(store.calls).toHaveLength(1);
    now += 1;
    expect((await resolveSecrets(env, deadlineIn(1000), options)).DATABASE_URL).toBe('postgresql://u:two@h/db');
    expect(store.calls).toHaveLength(2);
    store.values[DB] = 'postgresql://u:three@h/db';
    expect((await resolveSecrets(env, deadlineIn(1000), { ...options, refresh: true })).DATABASE_URL).toBe('postgresql://u:three@h/db');
    expect(store.calls).toHaveLength(3);
  });

  it('when SSM cannot be read, a cached value serves up to SECRETS_STALE_SECONDS, with a warning; then, or after a refusal, it fails (issue 20)', async () => {
    const store = fakeStore({ [DB]: 'postgresql://u:one@h/db', [TOKEN]: 'tok-123456789' });
    const env = { DATABASE_URL_SSM_PARAMETER: DB, PUSHGATEWAY_TOKEN_SSM_PARAMETER: TOKEN, SECRETS_CACHE_SECONDS: '60', SECRETS_STALE_SECONDS: '600' };
    let now = 2_000_000;
    let down = false;
    const fetchParameters: FetchParameters = async (names, deadline, e) => {
      if (down) throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
      return store.fetchParameters(names, deadline, e);
    };
    const warnings: unknown[] = [];
    const options = { fetchParameters, now: () => now, onStale: (w: unknown) => warnings.push(w) };
    await resolveSecrets(env, deadlineIn(1000), options);
    down = true;
    now += 120_000;
    expect((await resolveSecrets(env, deadlineIn(1000), options)).DATABASE_URL).toBe('postgresql://u:one@h/db');
    expect(warnings).toEqual([{ variables: ['DATABASE_URL', 'PUSHGATEWAY_TOKEN'], oldestAgeSeconds: 120, error: expect.stringMatching(/ThrottlingException: Rate exceeded/) }]);
    // A refused credential is not served again from the cache.
    const refused = await resolveSecrets(env, deadlineIn(1000), { ...options, refresh: true }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(SecretsError);
    expect((refused as SecretsError).missing).toEqual(['DATABASE_URL', 'PUSHGATEWAY_TOKEN']);
    // Past SECRETS_STALE_SECONDS nothing is left: the error says what is missing, nothing is resolved.
    now += 600_000;
    const gone = await resolveSecrets(env, deadlineIn(1000), options).catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(SecretsError);
    expect((gone as SecretsError).missing).toEqual(['DATABASE_URL', 'PUSHGATEWAY_TOKEN']);
    expect((gone as SecretsError).resolved).toEqual({});
    expect(warnings).toHaveLength(1);
    // SECRETS_STALE_SECONDS=0: never past the refresh.
    clearSecretsCache();
    down = false;
    await resolveSecrets({ ...env, SECRETS_STALE_SECONDS: '0' }, deadlineIn(1000), options);
    down = true;
    now += 61_000;
    await expect(resolveSecrets({ ...env, SECRETS_STALE_SECONDS: '0' }, deadlineIn(1000), options)).rejects.toThrow(SecretsError);
  });

  it('a missing parameter names the parameter and the variable; a String is refused; a failed call names every parameter', async () => {
    const env = { DATABASE_URL_SSM_PARAMETER: DB, PUSHGATEWAY_TOKEN_SSM_PARAMETER: TOKEN };
    const missing = fakeStore({ [DB]: 'postgresql://u:p@h/db' });
    await expect(resolveSecrets(env, deadlineIn(1000), { fetchParameters: missing.fetchParameters })).rejects.toMatchObject({
      name: 'SecretsError',
      message: `SSM parameter ${TOKEN} (for PUSHGATEWAY_TOKEN) does not exist in this account and region, or the name is wrong`,
      missing: ['DATABASE_URL', 'PUSHGATEWAY_TOKEN'],
    });
    const plain = fakeStore({ [DB]: 'postgresql://u:p@h/db', [TOKEN]: 't' }, 'String');
    await expect(resolveSecrets(env, deadlineIn(1000), { fetchParameters: plain.fetchParameters })).rejects.toThrow(/is a String, not a SecureString/);
    const failing: FetchParameters = async () => {
      throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
    };
    await expect(resolveSecrets(env, deadlineIn(1000), { fetchParameters: failing })).rejects.toThrow(
      `cannot read SSM parameters ${DB} (for DATABASE_URL), ${TOKEN} (for PUSHGATEWAY_TOKEN): ThrottlingException: Rate exceeded`,
    );
  });
});

describe('changedSecrets and the budget of the secret read', () => {
  it('names the secret variables whose values differ', () => {
    expect(changedSecrets({ DATABASE_URL: 'a', PUSHGATEWAY_TOKEN: 't', RUNS_TABLE: 'x' }, { DATABASE_URL: 'b', PUSHGATEWAY_TOKEN: 't', RUNS_TABLE: 'y' })).toEqual(['DATABASE_URL']);
  });

  it('is TICK_TIMEOUT_MS, validated before any I/O: a bad value is a configuration error, not an SSM timeout (issue 25)', () => {
    expect(parseTick({ TICK_TIMEOUT_MS: '1500' }).timeoutMs).toBe(1500);
    expect(() => parseTick({ TICK_TIMEOUT_MS: 'soon' })).toThrow(ConfigError);
    expect(() => parseTick({ TICK_TIMEOUT_MS: '0' })).toThrow(/TICK_TIMEOUT_MS must be between 100 and 900000/);
    expect(parseTick({}).timeoutMs).toBe(25_000);
  });
});
