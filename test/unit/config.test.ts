import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/config/errors';
import { isLoopbackHost } from '../../lib/config/hosts';
import { parseConfig } from '../../lib/config/parse';
import type { Env } from '../../lib/config/read';
import { defaultOf } from '../../lib/config/settings';

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
      database: {
        host: 'db.internal',
        wsProxy: undefined,
        runsTable: { schema: undefined, name: 'runs', sql: '"runs"' },
        statementTimeoutMs: defaultOf('DB_STATEMENT_TIMEOUT_MS'),
        lockTimeoutMs: defaultOf('DB_LOCK_TIMEOUT_MS'),
        statusEstimateAbove: defaultOf('STATUS_ESTIMATE_ABOVE'),
      },
      sinks: {
        pushgateway: { url: 'https://pushgateway.example:9091', auth: undefined, job: 'xyn_metrics', grouping: {}, ca: undefined },
        attemptTimeoutMs: defaultOf('PUSH_TIMEOUT_MS'),
        retries: defaultOf('PUSH_RETRIES'),
        dryRun: false,
      },
      tick: { timeoutMs: defaultOf('TICK_TIMEOUT_MS'), maxEventAgeSeconds: defaultOf('MAX_EVENT_AGE_SECONDS') },
    });
  });

  it('estimates terminal statuses above the default threshold unless STATUS_ESTIMATE_ABOVE says otherwise', () => {
    expect(parse().database.statusEstimateAbove).toBe(100_000);
    expect(parse({ STATUS_ESTIMATE_ABOVE: '250000' }).database.statusEstimateAbove).toBe(250_000);
    // "off" is the documented way to exact counts of every status.
    expect(parse({ STATUS_ESTIMATE_ABOVE: 'off' }).database.statusEstimateAbove).toBeUndefined();
    expect(parse({ STATUS_ESTIMATE_ABOVE: ' OFF ' }).database.statusEstimateAbove).toBeUndefined();
  });

  it('treats every optional variable set to "" or blanks as unset', () => {
    const blank: Env = {};
    for (const name of [
      'PUSHGATEWAY_USERNAME', 'PUSHGATEWAY_PASSWORD', 'PUSHGATEWAY_TOKEN', 'PUSHGATEWAY_CA_FILE', 'PUSHGATEWAY_JOB',
      'PUSHGATEWAY_GROUPING', 'RUNS_TABLE', 'TICK_TIMEOUT_MS', 'DB_STATEMENT_TIMEOUT_MS', 'DB_LOCK_TIMEOUT_MS',
      'PUSH_TIMEOUT_MS', 'PUSH_RETRIES', 'MAX_EVENT_AGE_SECONDS', 'STATUS_ESTIMATE_ABOVE', 'DATABASE_WS_PROXY', 'DATABASE_ALLOW_PLAINTEXT', 'PUSH_DRY_RUN',
      'NODE_TLS_REJECT_UNAUTHORIZED',
    ]) {
      blank[name] = name.length % 2 ? '' : '  ';
    }
    expect(parse(blank)).toEqual(parse());
  });

  it('quotes RUNS_TABLE as an identifier, with or without a schema', () => {
    expect(parse({ RUNS_TABLE: 'xyn.runs' }).database.runsTable).toMatchObject({ schema: 'xyn', name: 'runs', sql: '"xyn"."runs"' });
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
    expect(parseConfig({ DATABASE_URL: BASE.DATABASE_URL }, { requireSink: false }).sinks.pushgateway).toBeUndefined();
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
    ['grouping with a label name over 128 characters', { PUSHGATEWAY_GROUPING: `${'n'.repeat(129)}=a` }, 'PUSHGATEWAY_GROUPING', /at most 128 characters/],
    ['more than 20 static labels', { REMOTE_WRITE_URL: 'https://rw.example/api/v1/push', REMOTE_WRITE_LABELS: Array.from({ length: 21 }, (_, i) => `l${i}=v`).join(',') }, 'REMOTE_WRITE_LABELS', /has 21 labels; at most 20/],
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
    ['a plain-text bridge to a remote database', { DATABASE_WS_PROXY: '127.0.0.1:8089/v1' }, 'DATABASE_WS_PROXY', /not loopback: unset DATABASE_WS_PROXY to reach it over TLS/],
    ['a ws:// proxy', { DATABASE_WS_PROXY: 'ws://proxy.example/v1' }, 'DATABASE_WS_PROXY', /never ws:\/\//],
    ['sslmode=disable to a remote host', { DATABASE_URL: `postgresql://xyn:${ENC}@db.internal/xyn?sslmode=disable` }, 'DATABASE_ALLOW_PLAINTEXT', /sslmode=disable may send the session to db.internal in clear text/],
    ['sslmode=prefer to a remote host', { DATABASE_URL: `postgresql://xyn:${ENC}@db.internal/xyn?sslmode=prefer` }, 'DATABASE_ALLOW_PLAINTEXT', /sslmode=prefer may send/],
    ['sslmode=allow to a remote host', { DATABASE_URL: `postgresql://xyn:${ENC}@db.internal/xyn?sslmode=allow` }, 'DATABASE_ALLOW_PLAINTEXT', /sslmode=allow may send/],
    ['an unknown sslmode', { DATABASE_URL: `postgresql://xyn:${ENC}@db.internal/xyn?sslmode=verify` }, 'DATABASE_URL', /sslmode must be one of disable, allow, prefer, require, verify-ca, verify-full, got "verify"/],
    ['a client certificate', { DATABASE_URL: `postgresql://xyn:${ENC}@db.internal/xyn?sslcert=/tmp/c.pem` }, 'DATABASE_URL', /sets sslcert, which this collector does not support/],
    ['a missing sslrootcert', { DATABASE_URL: `postgresql://xyn:${ENC}@db.internal/xyn?sslrootcert=/nonexistent/ca.pem` }, 'DATABASE_URL', /sslrootcert cannot be read \(ENOENT\)/],
    ['an sslrootcert that is not PEM', { DATABASE_URL: `postgresql://xyn:${ENC}@db.internal/xyn?sslrootcert=/etc/hostname` }, 'DATABASE_URL', /sslrootcert holds no PEM certificate/],
    ['sslrootcert=system without verify-full', { DATABASE_URL: `postgresql://xyn:${ENC}@db.internal/xyn?sslmode=require&sslrootcert=system` }, 'DATABASE_URL', /sslrootcert=system needs sslmode=verify-full/],
    ['sslmode=disable for a Neon host', { DATABASE_URL: `postgresql://xyn:${ENC}@ep-x-123.eu-central-1.aws.neon.tech/xyn?sslmode=disable` }, 'DATABASE_URL', /not possible for a Neon host/],
    ['TLS asked of the plain-text bridge', { DATABASE_URL: `postgresql://xyn:${ENC}@127.0.0.1/xyn?sslmode=verify-full`, DATABASE_WS_PROXY: '127.0.0.1:8089/v1' }, 'DATABASE_WS_PROXY', /bridge relays plain text/],
    ['a host in the query, which the drivers would connect to instead', { DATABASE_URL: 'postgresql://xyn@127.0.0.1/xyn?host=db.remote.example&sslmode=disable' }, 'DATABASE_URL', /sets host in its query/],
    ['a password in the query', { DATABASE_URL: `postgresql://xyn@db.internal/xyn?password=${ENC}` }, 'DATABASE_URL', /sets password in its query/],
    ['plaintext opt-in not a flag', { DATABASE_ALLOW_PLAINTEXT: 'sure' }, 'DATABASE_ALLOW_PLAINTEXT', /true or false/],
    // Issue 22: TLS as libpq does it.
    ['verify-ca without sslrootcert (any public certificate, any name, would pass)', { DATABASE_URL: `postgresql://xyn:${ENC}@db.internal/xyn?sslmode=verify-ca` }, 'DATABASE_URL', /sslmode=verify-ca needs sslrootcert=<CA file>: without it any publicly issued certificate.*root certificate file does not exist/],
    ['verify-ca with an empty sslrootcert', { DATABASE_URL: `postgresql://xyn:${ENC}@db.internal/xyn?sslmode=verify-ca&sslrootcert=` }, 'DATABASE_URL', /sslmode=verify-ca needs sslrootcert/],
    ['an unknown channel_binding', { DATABASE_URL: `postgresql://xyn:${ENC}@db.internal/xyn?channel_binding=yes` }, 'DATABASE_URL', /channel_binding must be one of disable, prefer, require, got "yes"/],
    ['channel_binding=require with sslmode=disable', { DATABASE_URL: `postgresql://xyn:${ENC}@127.0.0.1/xyn?sslmode=disable&channel_binding=require` }, 'DATABASE_URL', /channel_binding=require needs TLS but sslmode=disable turns it off/],
    ['channel_binding=require for a Neon host (Neon\'s default string)', { DATABASE_URL: `postgresql://xyn:${ENC}@ep-x-123.eu-central-1.aws.neon.tech/xyn?sslmode=require&channel_binding=require` }, 'DATABASE_URL', /channel_binding=require cannot be honoured by the Neon driver.*set channel_binding=prefer/],
    ['channel_binding=require through a wss:// proxy', { DATABASE_URL: `postgresql://xyn:${ENC}@db.internal/xyn?channel_binding=require`, DATABASE_WS_PROXY: 'wss://proxy.example/v1' }, 'DATABASE_URL', /cannot be honoured by the Neon driver/],
    // Issue 22: the connection string's edge cases.
    ['a raw % in the password (a generated password)', { DATABASE_URL: `postgresql://xyn:Db-Pa55%word!@db.internal/xyn` }, 'DATABASE_URL', /^DATABASE_URL's password holds a "%" that is not followed by two hex digits: percent-encode the password \(a literal % is %25/],
    ['a raw % at the end of the password', { DATABASE_URL: `postgresql://xyn:Db-Pa55word%@db.internal/xyn` }, 'DATABASE_URL', /DATABASE_URL's password holds a "%"/],
    ['a percent-encoded password that is not UTF-8', { DATABASE_URL: `postgresql://xyn:Db-Pa55%FFword@db.internal/xyn` }, 'DATABASE_URL', /DATABASE_URL's password is percent-encoded but does not decode to UTF-8/],
    ['a raw % in the user name', { DATABASE_URL: `postgresql://xyn%@db.internal/xyn` }, 'DATABASE_URL', /DATABASE_URL's user name holds a "%"/],
    ['a raw % in the database name', { DATABASE_URL: `postgresql://xyn:${ENC}@db.internal/100%` }, 'DATABASE_URL', /DATABASE_URL's database name holds a "%"/],
    ['a Unix socket in ?host=', { DATABASE_URL: 'postgresql://xyn@localhost/xyn?host=/var/run/postgresql' }, 'DATABASE_URL', /sets host in its query.*Unix socket's directory goes there percent-encoded, postgresql:\/\/user@%2Fvar%2Frun%2Fpostgresql\/db/],
    ['TLS asked of a Unix socket', { DATABASE_URL: 'postgresql://xyn@%2Fvar%2Frun%2Fpostgresql/xyn?sslmode=verify-full' }, 'DATABASE_URL', /host is a Unix socket \(\/var\/run\/postgresql\), which carries no TLS, so sslmode=verify-full cannot be honoured/],
    ['an sslrootcert for a Unix socket', { DATABASE_URL: 'postgresql://xyn@%2Fvar%2Frun%2Fpostgresql/xyn?sslrootcert=/etc/hostname' }, 'DATABASE_URL', /Unix socket.*so sslrootcert cannot be honoured/],
    ['channel binding on a Unix socket', { DATABASE_URL: 'postgresql://xyn@%2Fvar%2Frun%2Fpostgresql/xyn?channel_binding=require' }, 'DATABASE_URL', /channel_binding=require needs TLS, which a Unix socket/],
    ['the bridge to a Unix socket', { DATABASE_URL: 'postgresql://xyn@%2Ftmp/xyn', DATABASE_WS_PROXY: '127.0.0.1:8089/v1' }, 'DATABASE_WS_PROXY', /cannot reach DATABASE_URL's Unix socket \(\/tmp\)/],
    // Issue 22: RDS IAM authentication.
    ['IAM auth with a password in the URL', { DATABASE_URL: `postgresql://xyn:${ENC}@db.rds.example/xyn`, DATABASE_IAM_AUTH: 'true', AWS_REGION: 'eu-west-1' }, 'DATABASE_IAM_AUTH', /DATABASE_URL holds a password but DATABASE_IAM_AUTH=true signs a token for each connection instead/],
    ['IAM auth with sslmode=require', { DATABASE_URL: 'postgresql://xyn@db.rds.example/xyn?sslmode=require', DATABASE_IAM_AUTH: 'true', AWS_REGION: 'eu-west-1' }, 'DATABASE_IAM_AUTH', /needs sslmode=verify-full in DATABASE_URL, got sslmode=require/],
    ['IAM auth with verify-ca', { DATABASE_URL: 'postgresql://xyn@db.rds.example/xyn?sslmode=verify-ca&sslrootcert=/etc/ssl/certs/ca-certificates.crt', DATABASE_IAM_AUTH: 'true', AWS_REGION: 'eu-west-1' }, 'DATABASE_IAM_AUTH', /needs sslmode=verify-full in DATABASE_URL, got sslmode=verify-ca/],
    ['IAM auth to loopback without sslmode', { DATABASE_URL: 'postgresql://xyn@127.0.0.1/xyn', DATABASE_IAM_AUTH: 'true', AWS_REGION: 'eu-west-1' }, 'DATABASE_IAM_AUTH', /got prefer \(the default for a loopback host\)/],
    ['IAM auth without a user', { DATABASE_URL: 'postgresql://db.rds.example/xyn', DATABASE_IAM_AUTH: 'true', AWS_REGION: 'eu-west-1' }, 'DATABASE_IAM_AUTH', /names no user/],
    ['IAM auth without a region', { DATABASE_URL: 'postgresql://xyn@db.rds.example/xyn', DATABASE_IAM_AUTH: 'true', AWS_REGION: undefined }, 'DATABASE_IAM_REGION', /needs DATABASE_IAM_REGION \(or AWS_REGION\)/],
    ['IAM auth with a region that is not one', { DATABASE_URL: 'postgresql://xyn@db.rds.example/xyn', DATABASE_IAM_AUTH: 'true', DATABASE_IAM_REGION: 'Frankfurt' }, 'DATABASE_IAM_REGION', /must be an AWS region such as eu-west-1/],
    ['IAM auth for a Neon host', { DATABASE_URL: 'postgresql://xyn@ep-x-123.eu-central-1.aws.neon.tech/xyn', DATABASE_IAM_AUTH: 'true', AWS_REGION: 'eu-west-1' }, 'DATABASE_IAM_AUTH', /is for RDS and Aurora over TCP/],
    ['IAM auth over a Unix socket', { DATABASE_URL: 'postgresql://xyn@%2Ftmp/xyn', DATABASE_IAM_AUTH: 'true', AWS_REGION: 'eu-west-1' }, 'DATABASE_IAM_AUTH', /is for RDS and Aurora over TCP/],
    ['IAM auth with channel_binding=require', { DATABASE_URL: 'postgresql://xyn@db.rds.example/xyn?channel_binding=require', DATABASE_IAM_AUTH: 'true', AWS_REGION: 'eu-west-1' }, 'DATABASE_IAM_AUTH', /channel_binding=require cannot hold with DATABASE_IAM_AUTH=true/],
    ['IAM auth not a flag', { DATABASE_IAM_AUTH: 'iam' }, 'DATABASE_IAM_AUTH', /true or false/],
    ['certificate checks turned off', { NODE_TLS_REJECT_UNAUTHORIZED: '0' }, 'NODE_TLS_REJECT_UNAUTHORIZED', /turns certificate checks off/],
  ])('%s', (_name, over, variable, expected) => {
    expect(configError(over, variable)).toMatch(expected);
  });
});

describe('parseConfig: what is accepted', () => {
  it('takes basic auth from the URL and strips it from the URL', () => {
    const config = parse({ PUSHGATEWAY_URL: 'https://pusher:Gw%2FPa55@gw.example:9091' });
    expect(config.sinks.pushgateway?.url).toBe('https://gw.example:9091');
    expect(config.sinks.pushgateway?.auth).toEqual({ kind: 'basic', username: 'pusher', password: 'Gw/Pa55' });
  });

  it('allows credentials over http to a loopback gateway (a local sidecar)', () => {
    expect(parse({ PUSHGATEWAY_URL: 'http://127.0.0.1:9091', PUSHGATEWAY_TOKEN: TOKEN }).sinks.pushgateway?.auth).toEqual({ kind: 'bearer', token: TOKEN });
  });

  it('accepts a readable PEM CA file for an https gateway', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xyn-ca-'));
    const file = join(dir, 'ca.pem');
    writeFileSync(file, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    expect(parse({ PUSHGATEWAY_CA_FILE: file }).sinks.pushgateway?.ca).toContain('-----BEGIN CERTIFICATE-----');
  });

  it('accepts a loopback WebSocket proxy for a loopback database', () => {
    for (const proxy of ['127.0.0.1:8089/v1', 'localhost:8089', '[::1]:8089/v1']) {
      expect(parse({ DATABASE_URL: 'postgresql://xyn@127.0.0.1:5432/xyn', DATABASE_WS_PROXY: proxy }).database.wsProxy).toBe(proxy);
    }
  });

  it('reads sslmode and sslrootcert as libpq does, with verify-full the default for a remote host', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xyn-ca-'));
    const ca = join(dir, 'ca.pem');
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    writeFileSync(ca, pem);
    const tls = (url: string) => parse({ DATABASE_URL: url }).database.tls;
    expect(tls('postgresql://xyn@db.internal/xyn')).toEqual({ mode: 'verify-full', ca: undefined });
    expect(tls('postgresql://xyn@127.0.0.1/xyn')).toEqual({ mode: 'prefer', ca: undefined });
    expect(tls('postgresql://xyn@localhost/xyn?sslmode=verify-full')).toEqual({ mode: 'verify-full', ca: undefined });
    expect(tls('postgresql://xyn@db.internal/xyn?sslmode=require')).toEqual({ mode: 'require', ca: undefined });
    // libpq: require with a root certificate behaves like verify-ca.
    expect(tls(`postgresql://xyn@db.internal/xyn?sslmode=require&sslrootcert=${ca}`)).toEqual({ mode: 'verify-ca', ca: pem });
    expect(tls(`postgresql://xyn@db.internal/xyn?sslmode=verify-full&sslrootcert=${ca}`)).toEqual({ mode: 'verify-full', ca: pem });
    expect(tls('postgresql://xyn@db.internal/xyn?sslrootcert=system')).toEqual({ mode: 'verify-full', ca: undefined });
    expect(tls('postgresql://xyn@127.0.0.1/xyn?sslmode=disable')).toEqual({ mode: 'disable', ca: undefined });
  });

  it('reads channel_binding as libpq does: prefer by default, disable and require as written', () => {
    const binding = (url: string, env: Env = {}) => parse({ DATABASE_URL: url, ...env }).database.channelBinding;
    expect(binding('postgresql://xyn@db.internal/xyn')).toBe('prefer');
    expect(binding('postgresql://xyn@db.internal/xyn?channel_binding=disable')).toBe('disable');
    expect(binding('postgresql://xyn@db.internal/xyn?channel_binding=require')).toBe('require');
    // libpq lets allow and prefer try: a session that ends up in plain text then fails at authentication.
    expect(binding('postgresql://xyn@127.0.0.1/xyn?sslmode=prefer&channel_binding=require')).toBe('require');
    // The Neon driver never binds; prefer (and disable) say nothing it cannot keep.
    expect(binding('postgresql://xyn@ep-x-123.eu-central-1.aws.neon.tech/xyn?channel_binding=prefer')).toBe('prefer');
  });

  it('takes IPv6 literal hosts: [::1] is loopback, another is remote (verify-full by default)', () => {
    const loopback = parse({ DATABASE_URL: `postgresql://xyn:${ENC}@[::1]:5432/xyn` }).database;
    expect(loopback).toMatchObject({ host: '[::1]', tls: { mode: 'prefer' }, plaintextToRemote: false });
    expect(parse({ DATABASE_URL: 'postgresql://xyn@[2001:db8::5]:5432/xyn' }).database.tls.mode).toBe('verify-full');
    expect(() => parse({ DATABASE_URL: 'postgresql://xyn@[2001:db8::5]/xyn?sslmode=disable' })).toThrow(/may send the session to \[2001:db8::5\] in clear text/);
  });

  it('takes a Unix socket as libpq writes it in a URL: no TLS, local like loopback', () => {
    const socket = parse({ DATABASE_URL: 'postgresql://xyn@%2Fvar%2Frun%2Fpostgresql:5433/xyn' }).database;
    expect(socket).toMatchObject({ host: '/var/run/postgresql', tls: { mode: 'disable', ca: undefined }, plaintextToRemote: false });
    // libpq ignores sslmode on a socket; the modes that do not promise TLS are accepted as such.
    for (const mode of ['disable', 'allow', 'prefer']) {
      expect(parse({ DATABASE_URL: `postgresql://xyn@%2Ftmp/xyn?sslmode=${mode}` }).database.tls.mode).toBe('disable');
    }
  });

  it('RDS IAM authentication: the token\'s host, port, user and region; the database\'s own region when it differs', () => {
    const iam = (url: string, env: Env = {}) => parse({ DATABASE_URL: url, DATABASE_IAM_AUTH: 'true', AWS_REGION: 'eu-west-1', ...env }).database.iam;
    expect(iam('postgresql://xyn_metrics@db.abc.eu-west-1.rds.amazonaws.com/xyn')).toEqual({ region: 'eu-west-1', host: 'db.abc.eu-west-1.rds.amazonaws.com', port: 5432, user: 'xyn_metrics' });
    expect(iam('postgresql://xyn@db.example:6432/xyn?sslmode=verify-full', { DATABASE_IAM_REGION: 'us-east-2' })).toEqual({ region: 'us-east-2', host: 'db.example', port: 6432, user: 'xyn' });
    expect(iam('postgresql://xyn@[::1]:5432/xyn?sslmode=verify-full')).toMatchObject({ host: '::1', port: 5432 });
    expect(parse().database.iam).toBeUndefined();
    expect(parse({ DATABASE_IAM_AUTH: 'false', DATABASE_IAM_REGION: 'eu-west-1' }).database.iam).toBeUndefined();
  });

  it('lets a remote session go unencrypted only with DATABASE_ALLOW_PLAINTEXT=true, and marks it', () => {
    const url = 'postgresql://xyn@db.internal/xyn?sslmode=disable';
    expect(parse({ DATABASE_URL: url, DATABASE_ALLOW_PLAINTEXT: 'true' }).database.plaintextToRemote).toBe(true);
    expect(parse({ DATABASE_URL: 'postgresql://xyn@db.internal/xyn', DATABASE_ALLOW_PLAINTEXT: 'true' }).database.plaintextToRemote).toBe(false);
    expect(parse({ DATABASE_URL: 'postgresql://xyn@127.0.0.1/xyn?sslmode=disable' }).database.plaintextToRemote).toBe(false);
    // The bridge relays to loopback only: no opt-in makes it carry a remote session.
    expect(() => parse({ DATABASE_URL: 'postgresql://xyn@db.internal/xyn', DATABASE_WS_PROXY: '127.0.0.1:8089', DATABASE_ALLOW_PLAINTEXT: 'true' })).toThrow(/not loopback/);
  });

  it('accepts a remote Neon-compatible proxy over wss:// only', () => {
    const config = parse({ DATABASE_WS_PROXY: 'wss://proxy.example/v1' });
    expect(config.database.wsProxy).toBe('wss://proxy.example/v1');
    expect(config.database.plaintextToRemote).toBe(false);
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

describe('parseConfig: remote write', () => {
  const RW = 'https://mimir.example/api/v1/push';
  const RW_PASSWORD = 'Rw-Pa55word';

  it('with only REMOTE_WRITE_URL set, no Pushgateway is required; job and labels default to the push settings', () => {
    const config = parseConfig({ DATABASE_URL: BASE.DATABASE_URL, REMOTE_WRITE_URL: RW, PUSHGATEWAY_GROUPING: 'env=prod' });
    expect(config.sinks.pushgateway).toBeUndefined();
    expect(config.sinks.remoteWrite).toEqual({ url: RW, auth: undefined, job: defaultOf('PUSHGATEWAY_JOB'), labels: { env: 'prod' }, ca: undefined });
  });

  it('REMOTE_WRITE_JOB and REMOTE_WRITE_LABELS override; both sinks may be set', () => {
    const config = parse({ REMOTE_WRITE_URL: RW, PUSHGATEWAY_JOB: 'a', REMOTE_WRITE_JOB: 'b', REMOTE_WRITE_LABELS: 'env=dev,region=eu' });
    expect(config.sinks.pushgateway?.job).toBe('a');
    expect(config.sinks.remoteWrite).toMatchObject({ job: 'b', labels: { env: 'dev', region: 'eu' } });
  });

  it('basic, bearer or SigV4 auth; the secrets join the redaction list', () => {
    const basic = parse({ REMOTE_WRITE_URL: RW, REMOTE_WRITE_USERNAME: 'tenant', REMOTE_WRITE_PASSWORD: RW_PASSWORD });
    expect(basic.sinks.remoteWrite?.auth).toEqual({ kind: 'basic', username: 'tenant', password: RW_PASSWORD });
    expect(basic.secrets).toEqual(expect.arrayContaining([RW_PASSWORD, Buffer.from(`tenant:${RW_PASSWORD}`).toString('base64')]));
    const bearer = parse({ REMOTE_WRITE_URL: RW, REMOTE_WRITE_TOKEN: TOKEN });
    expect(bearer.sinks.remoteWrite?.auth).toEqual({ kind: 'bearer', token: TOKEN });
    expect(bearer.secrets).toContain(TOKEN);
    const amp = 'https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1/api/v1/remote_write';
    expect(parse({ REMOTE_WRITE_URL: amp, REMOTE_WRITE_SIGV4: 'true', AWS_REGION: 'eu-west-1' }).sinks.remoteWrite?.auth).toEqual({ kind: 'sigv4', region: 'eu-west-1' });
    expect(parse({ REMOTE_WRITE_URL: amp, REMOTE_WRITE_SIGV4: 'true', AWS_REGION: 'eu-west-1', REMOTE_WRITE_REGION: 'us-east-2' }).sinks.remoteWrite?.auth).toEqual({ kind: 'sigv4', region: 'us-east-2' });
  });

  it.each([
    [{ REMOTE_WRITE_URL: 'mimir.example/api/v1/push' }, 'REMOTE_WRITE_URL'],
    [{ REMOTE_WRITE_URL: 'https://mimir.example' }, 'REMOTE_WRITE_URL'],
    [{ REMOTE_WRITE_URL: `https://u:${RW_PASSWORD}@mimir.example/api/v1/push` }, 'REMOTE_WRITE_USERNAME'],
    [{ REMOTE_WRITE_URL: 'http://mimir.example/api/v1/push', REMOTE_WRITE_TOKEN: TOKEN }, 'REMOTE_WRITE_URL'],
    [{ REMOTE_WRITE_URL: RW, REMOTE_WRITE_TOKEN: TOKEN, REMOTE_WRITE_SIGV4: 'true' }, 'REMOTE_WRITE_TOKEN and REMOTE_WRITE_SIGV4'],
    [{ REMOTE_WRITE_URL: RW, REMOTE_WRITE_PASSWORD: RW_PASSWORD }, 'REMOTE_WRITE_USERNAME'],
    [{ REMOTE_WRITE_URL: RW, REMOTE_WRITE_SIGV4: 'true', AWS_REGION: undefined }, 'REMOTE_WRITE_REGION'],
    [{ REMOTE_WRITE_URL: RW, REMOTE_WRITE_SIGV4: 'true', REMOTE_WRITE_REGION: 'Europe' }, 'REMOTE_WRITE_REGION'],
    [{ REMOTE_WRITE_URL: RW, REMOTE_WRITE_SIGV4: 'yes' }, 'REMOTE_WRITE_SIGV4'],
    [{ REMOTE_WRITE_URL: RW, REMOTE_WRITE_JOB: 'a b' }, 'REMOTE_WRITE_JOB'],
    [{ REMOTE_WRITE_URL: RW, REMOTE_WRITE_LABELS: 'job=x' }, 'REMOTE_WRITE_LABELS'],
    [{ REMOTE_WRITE_URL: 'http://mimir.example/api/v1/push', REMOTE_WRITE_CA_FILE: '/etc/ssl/ca.pem' }, 'REMOTE_WRITE_CA_FILE'],
    [{ REMOTE_WRITE_TOKEN: TOKEN }, 'REMOTE_WRITE_URL'],
    [{ REMOTE_WRITE_SIGV4: 'true' }, 'REMOTE_WRITE_URL'],
    [{ PUSH_DRY_RUN: 'true', PUSHGATEWAY_URL: undefined, REMOTE_WRITE_URL: RW }, 'REMOTE_WRITE_URL'],
  ])('rejects %j naming %s', (over, variable) => {
    const message = configError(over as Env, variable);
    expect(message).not.toContain(RW_PASSWORD);
  });

  it('the deploy template\'s "off" values mean off', () => {
    expect(parse({ REMOTE_WRITE_URL: '', REMOTE_WRITE_SIGV4: 'false', REMOTE_WRITE_USERNAME: '', REMOTE_WRITE_JOB: '', REMOTE_WRITE_LABELS: '' }).sinks.remoteWrite).toBeUndefined();
  });

  it('without either sink the error names both', () => {
    expect(configError({ PUSHGATEWAY_URL: undefined }, 'PUSHGATEWAY_URL')).toContain('REMOTE_WRITE_URL');
  });
});

describe('parseConfig: static labels never named like a metric\'s own label (issue 25)', () => {
  it('refuses every label name a metric of the table carries, in PUSHGATEWAY_GROUPING and REMOTE_WRITE_LABELS', async () => {
    const { METRIC_LABEL_NAMES } = await import('../../lib/metrics/definitions');
    expect(METRIC_LABEL_NAMES).toEqual(expect.arrayContaining(['status', 'blueprint', 'quantile']));
    for (const label of METRIC_LABEL_NAMES) {
      const pushgateway = configError({ PUSHGATEWAY_GROUPING: `env=prod,${label}=prod` }, 'PUSHGATEWAY_GROUPING');
      expect(pushgateway).toBe(
        `PUSHGATEWAY_GROUPING label "${label}" is a label the metrics carry themselves (${METRIC_LABEL_NAMES.join(', ')}); choose another name, e.g. env or region`,
      );
      const remote = configError({ REMOTE_WRITE_URL: 'https://mimir.example/api/v1/push', REMOTE_WRITE_LABELS: `${label}=x` }, 'REMOTE_WRITE_LABELS');
      expect(remote).toMatch(new RegExp(`^REMOTE_WRITE_LABELS label "${label}" is a label the metrics carry themselves`));
    }
    // Remote write falls back to the grouping labels: the same refusal, naming the variable that holds them.
    expect(configError({ REMOTE_WRITE_URL: 'https://mimir.example/api/v1/push', PUSHGATEWAY_URL: '', PUSHGATEWAY_GROUPING: 'status=x' }, 'PUSHGATEWAY_GROUPING')).toMatch(/label "status"/);
    expect(parse({ PUSHGATEWAY_GROUPING: 'env=prod,region=eu' }).sinks.pushgateway?.grouping).toEqual({ env: 'prod', region: 'eu' });
  });
});
