import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULTS, isLoopbackHost, parseConfig, type Env } from '../../lib/config';

const DB_PASSWORD = 'Db-Pa55/word!';
const TOKEN = 'tok-3F9a8c1e77';
const ENC = encodeURIComponent(DB_PASSWORD);
const BASE: Env = {
  DATABASE_URL: `postgresql://xyn:${encodeURIComponent(DB_PASSWORD)}@db.internal:5432/xyn`,
  PUSHGATEWAY_URL: 'https://pushgateway.example:9091',
};

function parse(over: Env = {}) {
  return parseConfig({ ...BASE, ...over });
}

/** The ConfigError for `over`, which must name `variable` and hold no secret. */
function configError(over: Env, variable: string): string {
  let caught: unknown;
  try {
    parse(over);
  } catch (error) {
    caught = error;
  }
  expect(caught, `expected a ConfigError for ${JSON.stringify(over)}`).toBeInstanceOf(ConfigError);
  const message = (caught as ConfigError).message;
  expect(message).toContain(variable);
  expect(message.split('\n')).toHaveLength(1);
  for (const secret of [DB_PASSWORD, encodeURIComponent(DB_PASSWORD), TOKEN, 'Gw-Pa55']) expect(message).not.toContain(secret);
  return message;
}

describe('parseConfig: defaults', () => {
  it('needs only DATABASE_URL and PUSHGATEWAY_URL', () => {
    const config = parse();
    expect(config).toMatchObject({
      databaseHost: 'db.internal',
      databaseWsProxy: undefined,
      pushgateway: { url: 'https://pushgateway.example:9091', auth: undefined, job: 'xyn_metrics', grouping: {}, caFile: undefined },
      runsTable: { schema: undefined, name: 'runs', sql: '"runs"' },
      tickTimeoutMs: DEFAULTS.TICK_TIMEOUT_MS,
      statementTimeoutMs: DEFAULTS.DB_STATEMENT_TIMEOUT_MS,
      lockTimeoutMs: DEFAULTS.DB_LOCK_TIMEOUT_MS,
      pushAttemptTimeoutMs: DEFAULTS.PUSH_TIMEOUT_MS,
      pushRetries: DEFAULTS.PUSH_RETRIES,
      maxEventAgeSeconds: DEFAULTS.MAX_EVENT_AGE_SECONDS,
      statusEstimateAbove: DEFAULTS.STATUS_ESTIMATE_ABOVE,
      dryRun: false,
    });
  });

  it('estimates terminal statuses above the default threshold unless STATUS_ESTIMATE_ABOVE says otherwise', () => {
    expect(parse().statusEstimateAbove).toBe(100_000);
    expect(parse({ STATUS_ESTIMATE_ABOVE: '250000' }).statusEstimateAbove).toBe(250_000);
    // "off" is the documented way to exact counts of every status.
    expect(parse({ STATUS_ESTIMATE_ABOVE: 'off' }).statusEstimateAbove).toBeUndefined();
    expect(parse({ STATUS_ESTIMATE_ABOVE: ' OFF ' }).statusEstimateAbove).toBeUndefined();
  });

  it('treats every optional variable set to "" or blanks as unset', () => {
    const blank: Env = {};
    for (const name of [
      'PUSHGATEWAY_USERNAME', 'PUSHGATEWAY_PASSWORD', 'PUSHGATEWAY_TOKEN', 'PUSHGATEWAY_CA_FILE', 'PUSHGATEWAY_JOB',
      'PUSHGATEWAY_GROUPING', 'RUNS_TABLE', 'TICK_TIMEOUT_MS', 'DB_STATEMENT_TIMEOUT_MS', 'DB_LOCK_TIMEOUT_MS',
      'PUSH_TIMEOUT_MS', 'PUSH_RETRIES', 'MAX_EVENT_AGE_SECONDS', 'STATUS_ESTIMATE_ABOVE', 'DATABASE_WS_PROXY', 'PUSH_DRY_RUN',
      'NODE_TLS_REJECT_UNAUTHORIZED',
    ]) {
      blank[name] = name.length % 2 ? '' : '  ';
    }
    expect(parse(blank)).toEqual(parse());
  });

  it('quotes RUNS_TABLE as an identifier, with or without a schema', () => {
    expect(parse({ RUNS_TABLE: 'xyn.runs' }).runsTable).toMatchObject({ schema: 'xyn', name: 'runs', sql: '"xyn"."runs"' });
  });
});

describe('parseConfig: required variables', () => {
  it.each([
    [{ DATABASE_URL: undefined }, 'DATABASE_URL', /DATABASE_URL is not set; it is required/],
    [{ DATABASE_URL: '' }, 'DATABASE_URL', /DATABASE_URL is empty; it is required/],
    [{ DATABASE_URL: '   ' }, 'DATABASE_URL', /DATABASE_URL is empty/],
    [{ PUSHGATEWAY_URL: undefined }, 'PUSHGATEWAY_URL', /PUSHGATEWAY_URL is not set; it is required/],
    [{ PUSHGATEWAY_URL: '' }, 'PUSHGATEWAY_URL', /PUSHGATEWAY_URL is empty; it is required/],
  ])('%j', (over, variable, expected) => {
    expect(configError(over, variable)).toMatch(expected);
  });

  it('the CLI may run without a gateway', () => {
    expect(parseConfig({ DATABASE_URL: BASE.DATABASE_URL }, { requirePushgateway: false }).pushgateway).toBeUndefined();
  });
});

describe('parseConfig: malformed values get one line naming the variable, never a secret', () => {
  it.each<[string, Env, string, RegExp]>([
    ['database URL without a scheme', { DATABASE_URL: `xyn:${DB_PASSWORD}@db.internal:5432/xyn` }, 'DATABASE_URL', /has no scheme/],
    ['database URL with another scheme', { DATABASE_URL: `mysql://xyn:${ENC}@db:3306/xyn` }, 'DATABASE_URL', /must start with postgresql:\/\/ or postgres:\/\//],
    ['database port out of range', { DATABASE_URL: `postgresql://xyn:${ENC}@db:99999/xyn` }, 'DATABASE_URL', /port out of range: 99999/],
    ['database port 0', { DATABASE_URL: `postgresql://xyn:${ENC}@db:0/xyn` }, 'DATABASE_URL', /port out of range: 0/],
    ['database URL without a database', { DATABASE_URL: `postgresql://xyn:${ENC}@db:5432` }, 'DATABASE_URL', /names no database/],
    ['a password with an unencoded /', { DATABASE_URL: `postgresql://xyn:${DB_PASSWORD}@db:5432/xyn` }, 'DATABASE_URL', /not a valid URL.*percent-encoded/],
    ['database URL without a host', { DATABASE_URL: 'postgresql:///xyn' }, 'DATABASE_URL', /no host/],
    ['gateway URL without a scheme', { PUSHGATEWAY_URL: `pusher:${TOKEN}@gw:9091` }, 'PUSHGATEWAY_URL', /has no scheme/],
    ['gateway URL with a bare host:port', { PUSHGATEWAY_URL: 'pushgateway:9091' }, 'PUSHGATEWAY_URL', /has no scheme/],
    ['gateway port out of range', { PUSHGATEWAY_URL: 'https://gw:65536' }, 'PUSHGATEWAY_URL', /port out of range: 65536/],
    ['gateway URL with a query', { PUSHGATEWAY_URL: 'https://gw:9091/?x=1' }, 'PUSHGATEWAY_URL', /query or fragment/],
    ['gateway URL with /metrics', { PUSHGATEWAY_URL: 'https://gw:9091/metrics/job/x' }, 'PUSHGATEWAY_URL', /drop the \/metrics/],
    ['gateway URL with ftp', { PUSHGATEWAY_URL: 'ftp://gw' }, 'PUSHGATEWAY_URL', /must start with http:\/\/ or https:\/\//],
    ['a table name with SQL in it', { RUNS_TABLE: 'runs; DROP TABLE runs' }, 'RUNS_TABLE', /letters, digits and underscores/],
    ['a table name with a quote', { RUNS_TABLE: 'runs"--' }, 'RUNS_TABLE', /letters, digits and underscores/],
    ['a table name with three parts', { RUNS_TABLE: 'db.xyn.runs' }, 'RUNS_TABLE', /schema\.table/],
    ['a non-numeric tick timeout', { TICK_TIMEOUT_MS: 'soon' }, 'TICK_TIMEOUT_MS', /whole number, got "soon"/],
    ['a timeout with a unit', { DB_STATEMENT_TIMEOUT_MS: '5s' }, 'DB_STATEMENT_TIMEOUT_MS', /whole number/],
    ['a negative lock timeout', { DB_LOCK_TIMEOUT_MS: '-1' }, 'DB_LOCK_TIMEOUT_MS', /whole number/],
    ['an exponent', { PUSH_TIMEOUT_MS: '1e3' }, 'PUSH_TIMEOUT_MS', /whole number/],
    ['a fraction', { PUSH_RETRIES: '1.5' }, 'PUSH_RETRIES', /whole number/],
    ['too many retries', { PUSH_RETRIES: '11' }, 'PUSH_RETRIES', /between 0 and 10/],
    ['a tick timeout below the floor', { TICK_TIMEOUT_MS: '5' }, 'TICK_TIMEOUT_MS', /between 100 and/],
    ['a non-numeric event age', { MAX_EVENT_AGE_SECONDS: 'one minute' }, 'MAX_EVENT_AGE_SECONDS', /whole number/],
    ['a zero estimate threshold', { STATUS_ESTIMATE_ABOVE: '0' }, 'STATUS_ESTIMATE_ABOVE', /between 1 and/],
    ['an estimate threshold that is neither a number nor off', { STATUS_ESTIMATE_ABOVE: 'never' }, 'STATUS_ESTIMATE_ABOVE', /whole number or "off", got "never"/],
    ['a dry-run flag that is neither', { PUSHGATEWAY_URL: undefined, PUSH_DRY_RUN: 'maybe' }, 'PUSH_DRY_RUN', /true or false/],
    ['dry run and a gateway', { PUSH_DRY_RUN: 'true' }, 'PUSH_DRY_RUN', /choose one/],
    ['a job with a slash', { PUSHGATEWAY_JOB: 'xyn/metrics' }, 'PUSHGATEWAY_JOB', /letters, digits/],
    ['grouping without =', { PUSHGATEWAY_GROUPING: 'env' }, 'PUSHGATEWAY_GROUPING', /must look like/],
    ['grouping with instance', { PUSHGATEWAY_GROUPING: 'instance=a' }, 'PUSHGATEWAY_GROUPING', /not allowed/],
    ['grouping naming a label twice', { PUSHGATEWAY_GROUPING: 'env=a,env=b' }, 'PUSHGATEWAY_GROUPING', /twice/],
    ['token and basic auth', { PUSHGATEWAY_TOKEN: TOKEN, PUSHGATEWAY_USERNAME: 'u', PUSHGATEWAY_PASSWORD: 'Gw-Pa55' }, 'PUSHGATEWAY_TOKEN', /cannot be combined/],
    ['a password without a user', { PUSHGATEWAY_PASSWORD: 'Gw-Pa55' }, 'PUSHGATEWAY_USERNAME', /PUSHGATEWAY_PASSWORD is set but PUSHGATEWAY_USERNAME is not/],
    ['a user without a password', { PUSHGATEWAY_USERNAME: 'u' }, 'PUSHGATEWAY_PASSWORD', /PUSHGATEWAY_USERNAME is set but PUSHGATEWAY_PASSWORD is not/],
    ['a user with a colon', { PUSHGATEWAY_USERNAME: 'u:x', PUSHGATEWAY_PASSWORD: 'Gw-Pa55' }, 'PUSHGATEWAY_USERNAME', /must not contain ":"/],
    ['a token with a newline', { PUSHGATEWAY_TOKEN: `${TOKEN}\nX-Injected: 1` }, 'PUSHGATEWAY_TOKEN', /control character/],
    ['credentials over plain http', { PUSHGATEWAY_URL: 'http://gw.internal:9091', PUSHGATEWAY_TOKEN: TOKEN }, 'PUSHGATEWAY_URL', /clear text; use https/],
    ['URL userinfo over plain http', { PUSHGATEWAY_URL: 'http://u:Gw-Pa55@gw.internal:9091' }, 'PUSHGATEWAY_URL', /clear text/],
    ['a CA file on http', { PUSHGATEWAY_URL: 'http://127.0.0.1:9091', PUSHGATEWAY_CA_FILE: '/etc/hostname' }, 'PUSHGATEWAY_CA_FILE', /not https/],
    ['a missing CA file', { PUSHGATEWAY_CA_FILE: '/nonexistent/ca.pem' }, 'PUSHGATEWAY_CA_FILE', /cannot be read \(ENOENT\)/],
    ['a CA file that is not PEM', { PUSHGATEWAY_CA_FILE: '/etc/hostname' }, 'PUSHGATEWAY_CA_FILE', /no PEM certificate/],
    ['a proxy with a scheme', { DATABASE_WS_PROXY: 'ws://127.0.0.1:8089/v1' }, 'DATABASE_WS_PROXY', /without a scheme/],
    ['a proxy with junk', { DATABASE_WS_PROXY: '127.0.0.1 8089' }, 'DATABASE_WS_PROXY', /must look like/],
    ['a proxy for a Neon host', { DATABASE_URL: `postgresql://xyn:${ENC}@ep-x-123.eu-central-1.aws.neon.tech/xyn`, DATABASE_WS_PROXY: '127.0.0.1:8089/v1' }, 'DATABASE_WS_PROXY', /Neon hosts always use the secure WebSocket/],
    ['a proxy on another machine', { DATABASE_WS_PROXY: '10.0.0.5:8089/v1' }, 'DATABASE_WS_PROXY', /loopback/],
    ['certificate checks turned off', { NODE_TLS_REJECT_UNAUTHORIZED: '0' }, 'NODE_TLS_REJECT_UNAUTHORIZED', /turns certificate checks off/],
  ])('%s', (_name, over, variable, expected) => {
    expect(configError(over, variable)).toMatch(expected);
  });
});

describe('parseConfig: what is accepted', () => {
  it('takes basic auth from the URL and strips it from the URL', () => {
    const config = parse({ PUSHGATEWAY_URL: 'https://pusher:Gw%2FPa55@gw.example:9091' });
    expect(config.pushgateway?.url).toBe('https://gw.example:9091');
    expect(config.pushgateway?.auth).toEqual({ kind: 'basic', username: 'pusher', password: 'Gw/Pa55' });
  });

  it('allows credentials over http to a loopback gateway (a local sidecar)', () => {
    expect(parse({ PUSHGATEWAY_URL: 'http://127.0.0.1:9091', PUSHGATEWAY_TOKEN: TOKEN }).pushgateway?.auth).toEqual({ kind: 'bearer', token: TOKEN });
  });

  it('accepts a readable PEM CA file for an https gateway', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xyn-ca-'));
    const file = join(dir, 'ca.pem');
    writeFileSync(file, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    expect(parse({ PUSHGATEWAY_CA_FILE: file }).pushgateway?.caFile).toBe(file);
  });

  it('accepts a loopback WebSocket proxy for a local database', () => {
    for (const proxy of ['127.0.0.1:8089/v1', 'localhost:8089', '[::1]:8089/v1']) {
      expect(parse({ DATABASE_WS_PROXY: proxy }).databaseWsProxy).toBe(proxy);
    }
  });

  it('holds every secret form for redaction', () => {
    const basic = parse({ PUSHGATEWAY_USERNAME: 'pusher', PUSHGATEWAY_PASSWORD: 'Gw-Pa55' });
    expect(basic.secrets).toEqual(
      expect.arrayContaining([DB_PASSWORD, encodeURIComponent(DB_PASSWORD), 'Gw-Pa55', Buffer.from('pusher:Gw-Pa55').toString('base64')]),
    );
    expect(parse({ PUSHGATEWAY_TOKEN: TOKEN }).secrets).toContain(TOKEN);
  });

  it('knows loopback hosts', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', 'LOCALHOST', '::1', '[::1]']) expect(isLoopbackHost(host), host).toBe(true);
    for (const host of ['10.0.0.1', 'localhost.example', '127.0.0.1.nip.io', '::2', '0.0.0.0']) expect(isLoopbackHost(host), host).toBe(false);
  });
});
