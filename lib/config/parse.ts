/**
 * Configuration: parsed and validated from the environment before any I/O.
 * Every problem becomes one ConfigError naming the variable; no value of a
 * secret is ever part of a message.
 */

import { readFileSync } from 'node:fs';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export type PushAuth =
  | { kind: 'basic'; username: string; password: string }
  | { kind: 'bearer'; token: string };

export interface PushgatewayConfig {
  /** Base URL without userinfo, e.g. https://pushgateway.example:9091 */
  url: string;
  auth: PushAuth | undefined;
  job: string;
  /** Static grouping labels besides job (e.g. env=prod). Never per-invocation. */
  grouping: Record<string, string>;
  /** Extra CA bundle (PEM file path) for a gateway behind a private CA. */
  caFile: string | undefined;
}

export type RemoteWriteAuth =
  | PushAuth
  /** AWS Signature V4 (Amazon Managed Service for Prometheus): the function's role credentials from the environment. */
  | { kind: 'sigv4'; region: string };

/** Prometheus remote write 1.0 (Mimir, Cortex, Thanos Receive, AMP, Prometheus's own receiver). */
export interface RemoteWriteConfig {
  /** The receiver's write endpoint without userinfo, e.g. https://mimir.example/api/v1/push */
  url: string;
  auth: RemoteWriteAuth | undefined;
  /** The explicit job label of every series (the Pushgateway path gets it from the group). */
  job: string;
  /** Static labels on every series besides job (e.g. env=prod). Never per-invocation. */
  labels: Record<string, string>;
  /** Extra CA bundle (PEM file path) for a receiver behind a private CA. */
  caFile: string | undefined;
}

export interface TableName {
  schema: string | undefined;
  name: string;
  /** Quoted for SQL: "schema"."name" */
  sql: string;
  /** As written by the operator, for messages. */
  display: string;
}

export interface ColumnName {
  name: string;
  /** Quoted for SQL: "name" */
  sql: string;
}

/** Opt-in worker liveness (HEARTBEAT_TABLE): one count, never a per-worker label. */
export interface HeartbeatConfig {
  table: TableName;
  workerColumn: ColumnName;
  atColumn: ColumnName;
  ttlSeconds: number;
}

/** Opt-in per-blueprint metrics (BLUEPRINT_COLUMN with the start and finish columns). */
export interface BlueprintConfig {
  column: ColumnName;
  startedColumn: ColumnName;
  finishedColumn: ColumnName;
  /** Durations cover runs finished within this many seconds of the database clock. */
  windowSeconds: number;
  /** Blueprints beyond the top K by volume are summed under blueprint="other". */
  topK: number;
}

/** libpq's sslmode values, with libpq's meaning (docs/security.md, "Databases"). */
export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** TLS to a non-Neon database over TCP, from DATABASE_URL's sslmode and sslrootcert. */
export interface DatabaseTls {
  /** As libpq would act: require with a root certificate is verify-ca. */
  mode: SslMode;
  /** CA certificates (PEM) from an sslrootcert file; undefined: Node's bundled public CAs. */
  ca: string | undefined;
}

export interface Config {
  databaseUrl: string;
  databaseHost: string;
  /**
   * A Neon-compatible WebSocket proxy: host:port[/path] is a local plain-text
   * bridge (loopback only, for loopback databases); wss://… a remote one.
   */
  databaseWsProxy: string | undefined;
  databaseTls: DatabaseTls;
  /** DATABASE_ALLOW_PLAINTEXT=true let a session to a non-loopback host go unencrypted (logged every tick). */
  databasePlaintextToRemote: boolean;
  pushgateway: PushgatewayConfig | undefined;
  /** REMOTE_WRITE_URL: a second sink, alongside or instead of the Pushgateway. */
  remoteWrite?: RemoteWriteConfig | undefined;
  runsTable: TableName;
  /** Upper bound for one tick; the Lambda's remaining time lowers it further. */
  tickTimeoutMs: number;
  statementTimeoutMs: number;
  lockTimeoutMs: number;
  pushAttemptTimeoutMs: number;
  pushRetries: number;
  /** A scheduled event older than this is not pushed (0 disables the check). */
  maxEventAgeSeconds: number;
  /**
   * Terminal statuses whose planner estimate is above this are reported from the
   * statistics, not counted (DEFAULTS.STATUS_ESTIMATE_ABOVE); undefined
   * (STATUS_ESTIMATE_ABOVE=off) counts every status exactly.
   */
  statusEstimateAbove: number | undefined;
  /** PUSH_DRY_RUN=true: no gateway; the tick logs its exposition text instead (local use). */
  dryRun: boolean;
  /**
   * Extras (docs/extras.md). Optional so code that builds a Config by hand keeps
   * compiling; parseConfig always sets the numbers.
   */
  /** Samples (ticks) per scheduled invocation, evenly spaced within the schedule period. */
  samplesPerInvocation?: number;
  /** The schedule's period; must match the deployed rate (COLLECT_SCHEDULE). */
  schedulePeriodSeconds?: number;
  /** Bearer token the /metrics HTTP function demands; unset means it refuses to serve. */
  metricsBearerToken?: string | undefined;
  heartbeat?: HeartbeatConfig | undefined;
  blueprints?: BlueprintConfig | undefined;
  /** Every secret value held, for redaction of anything that leaves the process. */
  secrets: string[];
}

export type Env = Record<string, string | undefined>;

export interface ParseOptions {
  /** The scheduled function must push (to a Pushgateway or by remote write); the CLI may run without either. */
  requirePushgateway: boolean;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const LABEL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// Values travel in a URL path; keep them plain so no encoding games are needed.
const LABEL_VALUE = /^[A-Za-z0-9_.:-]{1,128}$/;

export const DEFAULTS = {
  PUSHGATEWAY_JOB: 'xyn_metrics',
  RUNS_TABLE: 'runs',
  TICK_TIMEOUT_MS: 25_000,
  DB_STATEMENT_TIMEOUT_MS: 5_000,
  DB_LOCK_TIMEOUT_MS: 2_000,
  PUSH_TIMEOUT_MS: 5_000,
  PUSH_RETRIES: 2,
  MAX_EVENT_AGE_SECONDS: 90,
  SAMPLES_PER_INVOCATION: 1,
  SCHEDULE_PERIOD_SECONDS: 60,
  HEARTBEAT_WORKER_COLUMN: 'worker_id',
  HEARTBEAT_AT_COLUMN: 'heartbeat_at',
  HEARTBEAT_TTL_SECONDS: 60,
  BLUEPRINT_WINDOW_SECONDS: 3_600,
  BLUEPRINT_TOP_K: 20,
  // Bounds each exact terminal count to 100k index entries, under 10 ms measured on a loaded machine
  // (docs/benchmarks.md, "The default's trade").
  STATUS_ESTIMATE_ABOVE: 100_000,
} as const;

/** A bearer token shorter than this is guessable; the /metrics function would be as good as open. */
export const MIN_BEARER_TOKEN_LENGTH = 16;

/**
 * An optional variable set to '' counts as unset (deploy templates write '' for
 * "not configured"); required() turns that into an error naming the variable.
 */
function text(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

function required(env: Env, name: string, example: string): string {
  const value = text(env, name);
  if (value === undefined) {
    throw new ConfigError(`${name} is ${env[name] === undefined ? 'not set' : 'empty'}; it is required (${example})`);
  }
  return value;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = text(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(`${name} must be a whole number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) {
    throw new ConfigError(`${name} must be between ${min} and ${max}, got ${value}`);
  }
  return value;
}

/** STATUS_ESTIMATE_ABOVE: a threshold (default DEFAULTS.STATUS_ESTIMATE_ABOVE), or `off` for exact counts. */
function parseEstimateAbove(env: Env): number | undefined {
  const raw = text(env, 'STATUS_ESTIMATE_ABOVE');
  if (raw?.toLowerCase() === 'off') return undefined;
  if (raw !== undefined && !/^\d+$/.test(raw)) {
    throw new ConfigError(`STATUS_ESTIMATE_ABOVE must be a whole number or "off", got "${raw}"`);
  }
  return integer(env, 'STATUS_ESTIMATE_ABOVE', DEFAULTS.STATUS_ESTIMATE_ABOVE, 1, Number.MAX_SAFE_INTEGER);
}

/** A value without "scheme://" is never echoed: it may be a pasted password or token. */
function requireScheme(name: string, raw: string, example: string): void {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(raw)) {
    throw new ConfigError(`${name} has no scheme; it must look like ${example}`);
  }
}

/** Loopback only: where plain text never leaves the machine. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/** Secrets travel in HTTP headers: no control characters, no surrounding blanks. */
function checkSecretText(name: string, value: string): void {
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(value)) throw new ConfigError(`${name} contains a control character (a stray newline?)`);
}

function parseUrl(name: string, raw: string, protocols: string[]): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(
      `${name} is not a valid URL (expected ${protocols[0]}//host:port; characters such as / @ # ? in a password must be percent-encoded)`,
    );
  }
  if (!protocols.includes(url.protocol)) {
    throw new ConfigError(
      `${name} must start with ${protocols.map((p) => `${p}//`).join(' or ')}, got "${url.protocol}//"`,
    );
  }
  if (!url.hostname) throw new ConfigError(`${name} has no host`);
  if (url.port !== '') {
    const port = Number(url.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new ConfigError(`${name} has a port out of range: ${url.port}`);
    }
  }
  return url;
}

/** Node's URL parser rejects ports above 65535 with a generic error; say which part is wrong. */
function checkPortText(name: string, raw: string): void {
  const match = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?(?:\[[^\]]*\]|[^:/?#]*):(\d*)(?:[/?#]|$)/i.exec(raw);
  if (match && match[1] !== undefined && match[1] !== '') {
    const port = Number(match[1]);
    if (port < 1 || port > 65535) throw new ConfigError(`${name} has a port out of range: ${match[1]}`);
  }
}

export function parseTableName(raw: string, variable = 'RUNS_TABLE'): TableName {
  const parts = raw.split('.');
  if (parts.length > 2 || !parts.every((p) => IDENTIFIER.test(p))) {
    throw new ConfigError(
      `${variable} must be a table name or schema.table made of letters, digits and underscores, got "${raw}"`,
    );
  }
  const [first, second] = parts as [string, string | undefined];
  const schema = second === undefined ? undefined : first;
  const name = second === undefined ? first : second;
  const sql = [schema, name]
    .filter((p): p is string => p !== undefined)
    .map((p) => `"${p}"`)
    .join('.');
  return { schema, name, sql, display: raw };
}

export function parseColumnName(raw: string, variable: string): ColumnName {
  if (!IDENTIFIER.test(raw)) {
    throw new ConfigError(`${variable} must be a column name made of letters, digits and underscores, got "${raw}"`);
  }
  return { name: raw, sql: `"${raw}"` };
}

function parseHeartbeat(env: Env): HeartbeatConfig | undefined {
  const table = text(env, 'HEARTBEAT_TABLE');
  if (table === undefined) {
    // A half-configured feature is a typo, not a wish: say so instead of silently doing nothing.
    const stray = ['HEARTBEAT_WORKER_COLUMN', 'HEARTBEAT_AT_COLUMN', 'HEARTBEAT_TTL_SECONDS'].find((v) => text(env, v) !== undefined);
    if (stray) throw new ConfigError(`${stray} is set but HEARTBEAT_TABLE is not; set HEARTBEAT_TABLE to enable worker liveness`);
    return undefined;
  }
  return {
    table: parseTableName(table, 'HEARTBEAT_TABLE'),
    workerColumn: parseColumnName(text(env, 'HEARTBEAT_WORKER_COLUMN') ?? DEFAULTS.HEARTBEAT_WORKER_COLUMN, 'HEARTBEAT_WORKER_COLUMN'),
    atColumn: parseColumnName(text(env, 'HEARTBEAT_AT_COLUMN') ?? DEFAULTS.HEARTBEAT_AT_COLUMN, 'HEARTBEAT_AT_COLUMN'),
    ttlSeconds: integer(env, 'HEARTBEAT_TTL_SECONDS', DEFAULTS.HEARTBEAT_TTL_SECONDS, 1, 86_400),
  };
}

function parseBlueprints(env: Env): BlueprintConfig | undefined {
  const columns = ['BLUEPRINT_COLUMN', 'RUN_STARTED_COLUMN', 'RUN_FINISHED_COLUMN'] as const;
  const set = columns.filter((v) => text(env, v) !== undefined);
  if (set.length === 0) {
    const stray = ['BLUEPRINT_WINDOW_SECONDS', 'BLUEPRINT_TOP_K'].find((v) => text(env, v) !== undefined);
    if (stray) throw new ConfigError(`${stray} is set but BLUEPRINT_COLUMN is not; set ${columns.join(', ')} to enable per-blueprint metrics`);
    return undefined;
  }
  const missing = columns.find((v) => text(env, v) === undefined);
  if (missing) {
    throw new ConfigError(`${missing} is not set; per-blueprint metrics need all of ${columns.join(', ')} (${set.join(', ')} ${set.length === 1 ? 'is' : 'are'} set)`);
  }
  return {
    column: parseColumnName(text(env, 'BLUEPRINT_COLUMN')!, 'BLUEPRINT_COLUMN'),
    startedColumn: parseColumnName(text(env, 'RUN_STARTED_COLUMN')!, 'RUN_STARTED_COLUMN'),
    finishedColumn: parseColumnName(text(env, 'RUN_FINISHED_COLUMN')!, 'RUN_FINISHED_COLUMN'),
    windowSeconds: integer(env, 'BLUEPRINT_WINDOW_SECONDS', DEFAULTS.BLUEPRINT_WINDOW_SECONDS, 60, 7 * 86_400),
    topK: integer(env, 'BLUEPRINT_TOP_K', DEFAULTS.BLUEPRINT_TOP_K, 1, 200),
  };
}

function parseSampling(env: Env): { samplesPerInvocation: number; schedulePeriodSeconds: number } {
  const schedulePeriodSeconds = integer(env, 'SCHEDULE_PERIOD_SECONDS', DEFAULTS.SCHEDULE_PERIOD_SECONDS, 1, 3_600);
  const samplesPerInvocation = integer(env, 'SAMPLES_PER_INVOCATION', DEFAULTS.SAMPLES_PER_INVOCATION, 1, 60);
  if (samplesPerInvocation > schedulePeriodSeconds) {
    throw new ConfigError(
      `SAMPLES_PER_INVOCATION must leave at least 1 second per sample: ${samplesPerInvocation} samples in SCHEDULE_PERIOD_SECONDS=${schedulePeriodSeconds}`,
    );
  }
  return { samplesPerInvocation, schedulePeriodSeconds };
}

function parseBearerToken(env: Env): string | undefined {
  const token = text(env, 'METRICS_BEARER_TOKEN');
  if (token === undefined) return undefined;
  // The length is safe to name; the value never is.
  if (token.length < MIN_BEARER_TOKEN_LENGTH) {
    throw new ConfigError(`METRICS_BEARER_TOKEN must be at least ${MIN_BEARER_TOKEN_LENGTH} characters (e.g. openssl rand -hex 32)`);
  }
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new ConfigError('METRICS_BEARER_TOKEN must be printable ASCII without spaces');
  }
  return token;
}

function parseGrouping(raw: string | undefined, variable = 'PUSHGATEWAY_GROUPING'): Record<string, string> {
  const grouping: Record<string, string> = {};
  if (raw === undefined) return grouping;
  for (const pair of raw.split(',')) {
    const [key, value, ...rest] = pair.split('=').map((s) => s.trim());
    if (!key || value === undefined || rest.length > 0) {
      throw new ConfigError(`${variable} must look like "env=prod,region=eu", got "${raw}"`);
    }
    if (!LABEL_NAME.test(key) || key.startsWith('__') || key === 'job' || key === 'instance') {
      throw new ConfigError(
        `${variable} label "${key}" is not allowed (a Prometheus label name, not job, instance or __*)`,
      );
    }
    if (!LABEL_VALUE.test(value)) {
      throw new ConfigError(
        `${variable} value for "${key}" must be 1-128 of letters, digits, _ . : -`,
      );
    }
    if (key in grouping) throw new ConfigError(`${variable} names "${key}" twice`);
    grouping[key] = value;
  }
  return grouping;
}

function parsePushgateway(env: Env, isRequired: boolean): PushgatewayConfig | undefined {
  const raw = isRequired ? required(env, 'PUSHGATEWAY_URL', 'e.g. http://pushgateway:9091, unless REMOTE_WRITE_URL is set') : text(env, 'PUSHGATEWAY_URL');
  if (raw === undefined) return undefined;
  requireScheme('PUSHGATEWAY_URL', raw, 'https://pushgateway.example:9091');
  checkPortText('PUSHGATEWAY_URL', raw);
  const url = parseUrl('PUSHGATEWAY_URL', raw, ['http:', 'https:']);
  if (url.search || url.hash) throw new ConfigError('PUSHGATEWAY_URL must not have a query or fragment');
  if (/\/metrics(\/|$)/.test(url.pathname)) {
    throw new ConfigError('PUSHGATEWAY_URL is the base URL of the gateway; drop the /metrics… path (the push adds /metrics/job/<job>)');
  }

  const username = text(env, 'PUSHGATEWAY_USERNAME') ?? (url.username ? decodeURIComponent(url.username) : undefined);
  const password = text(env, 'PUSHGATEWAY_PASSWORD') ?? (url.password ? decodeURIComponent(url.password) : undefined);
  const token = text(env, 'PUSHGATEWAY_TOKEN');
  let auth: PushAuth | undefined;
  if (token !== undefined) {
    if (username !== undefined || password !== undefined) {
      throw new ConfigError('PUSHGATEWAY_TOKEN cannot be combined with basic auth (PUSHGATEWAY_USERNAME/PASSWORD or URL userinfo)');
    }
    auth = { kind: 'bearer', token };
  } else if (username !== undefined || password !== undefined) {
    if (username === undefined) throw new ConfigError('PUSHGATEWAY_PASSWORD is set but PUSHGATEWAY_USERNAME is not');
    if (password === undefined) throw new ConfigError('PUSHGATEWAY_USERNAME is set but PUSHGATEWAY_PASSWORD is not');
    if (username.includes(':')) throw new ConfigError('PUSHGATEWAY_USERNAME must not contain ":" (basic auth separates user and password with it)');
    auth = { kind: 'basic', username, password };
  }
  if (auth?.kind === 'bearer') checkSecretText('PUSHGATEWAY_TOKEN', auth.token);
  if (auth?.kind === 'basic') {
    checkSecretText('PUSHGATEWAY_USERNAME', auth.username);
    checkSecretText('PUSHGATEWAY_PASSWORD', auth.password);
  }
  if (auth !== undefined && url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    throw new ConfigError(
      'PUSHGATEWAY_URL is http:// but credentials are configured: they would cross the network in clear text; use https://',
    );
  }

  url.username = '';
  url.password = '';
  const job = text(env, 'PUSHGATEWAY_JOB') ?? DEFAULTS.PUSHGATEWAY_JOB;
  if (!LABEL_VALUE.test(job)) {
    throw new ConfigError('PUSHGATEWAY_JOB must be 1-128 of letters, digits, _ . : -');
  }
  return {
    url: url.toString().replace(/\/+$/, ''),
    auth,
    job,
    grouping: parseGrouping(text(env, 'PUSHGATEWAY_GROUPING')),
    caFile: caFile(text(env, 'PUSHGATEWAY_CA_FILE'), url),
  };
}

/** A CA bundle named by `what` must exist and hold a PEM certificate now, not fail at the first connection. */
function readPemFile(what: string, path: string): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code ?? 'unreadable';
    throw new ConfigError(`${what} cannot be read (${code}): ${path}`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new ConfigError(`${what} holds no PEM certificate (-----BEGIN CERTIFICATE-----): ${path}`);
  }
  return pem;
}

/** The CA bundle of a sink must exist and hold a PEM certificate now, not fail at the first push. */
function caFile(path: string | undefined, url: URL, variable = 'PUSHGATEWAY_CA_FILE', urlVariable = 'PUSHGATEWAY_URL'): string | undefined {
  if (path === undefined) return undefined;
  if (url.protocol !== 'https:') throw new ConfigError(`${variable} is set but ${urlVariable} is not https://`);
  readPemFile(variable, path);
  return path;
}

const AWS_REGION = /^[a-z]{2}(-[a-z]+)+-\d$/;

function parseRemoteWriteAuth(env: Env): RemoteWriteAuth | undefined {
  const username = text(env, 'REMOTE_WRITE_USERNAME');
  const password = text(env, 'REMOTE_WRITE_PASSWORD');
  const token = text(env, 'REMOTE_WRITE_TOKEN');
  const sigv4 = flag(env, 'REMOTE_WRITE_SIGV4');
  const chosen = [
    ...(username !== undefined || password !== undefined ? ['REMOTE_WRITE_USERNAME/PASSWORD'] : []),
    ...(token !== undefined ? ['REMOTE_WRITE_TOKEN'] : []),
    ...(sigv4 ? ['REMOTE_WRITE_SIGV4'] : []),
  ];
  if (chosen.length > 1) throw new ConfigError(`remote write takes one kind of auth; ${chosen.join(' and ')} are both set`);
  if (token !== undefined) {
    checkSecretText('REMOTE_WRITE_TOKEN', token);
    return { kind: 'bearer', token };
  }
  if (username !== undefined || password !== undefined) {
    if (username === undefined) throw new ConfigError('REMOTE_WRITE_PASSWORD is set but REMOTE_WRITE_USERNAME is not');
    if (password === undefined) throw new ConfigError('REMOTE_WRITE_USERNAME is set but REMOTE_WRITE_PASSWORD is not');
    if (username.includes(':')) throw new ConfigError('REMOTE_WRITE_USERNAME must not contain ":" (basic auth separates user and password with it)');
    checkSecretText('REMOTE_WRITE_USERNAME', username);
    checkSecretText('REMOTE_WRITE_PASSWORD', password);
    return { kind: 'basic', username, password };
  }
  if (sigv4) {
    // Lambda sets AWS_REGION; REMOTE_WRITE_REGION names the workspace's region when it differs.
    const region = text(env, 'REMOTE_WRITE_REGION') ?? text(env, 'AWS_REGION');
    if (region === undefined) throw new ConfigError('REMOTE_WRITE_SIGV4=true needs REMOTE_WRITE_REGION (or AWS_REGION), the AMP workspace\'s region');
    if (!AWS_REGION.test(region)) throw new ConfigError(`REMOTE_WRITE_REGION must be an AWS region such as eu-west-1, got "${region.slice(0, 40)}"`);
    return { kind: 'sigv4', region };
  }
  return undefined;
}

/** REMOTE_WRITE_*: undefined unless REMOTE_WRITE_URL is set. */
function parseRemoteWrite(env: Env): RemoteWriteConfig | undefined {
  const raw = text(env, 'REMOTE_WRITE_URL');
  if (raw === undefined) {
    const stray = [
      ...['REMOTE_WRITE_USERNAME', 'REMOTE_WRITE_PASSWORD', 'REMOTE_WRITE_TOKEN', 'REMOTE_WRITE_CA_FILE'].filter((name) => text(env, name) !== undefined),
      // The deploy template writes REMOTE_WRITE_SIGV4=false when remote write is off.
      ...(flag(env, 'REMOTE_WRITE_SIGV4') ? ['REMOTE_WRITE_SIGV4'] : []),
    ][0];
    if (stray) throw new ConfigError(`${stray} is set but REMOTE_WRITE_URL is not`);
    return undefined;
  }
  requireScheme('REMOTE_WRITE_URL', raw, 'https://mimir.example/api/v1/push');
  checkPortText('REMOTE_WRITE_URL', raw);
  const url = parseUrl('REMOTE_WRITE_URL', raw, ['http:', 'https:']);
  if (url.username || url.password) {
    throw new ConfigError('REMOTE_WRITE_URL must not carry credentials; use REMOTE_WRITE_USERNAME and REMOTE_WRITE_PASSWORD');
  }
  if (url.hash) throw new ConfigError('REMOTE_WRITE_URL must not have a fragment');
  if (url.pathname === '/' || url.pathname === '') {
    throw new ConfigError('REMOTE_WRITE_URL is the write endpoint, not a base URL (e.g. …/api/v1/push for Mimir, …/api/v1/write for Prometheus)');
  }
  const auth = parseRemoteWriteAuth(env);
  if (auth !== undefined && url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    throw new ConfigError('REMOTE_WRITE_URL is http:// but auth is configured: it would cross the network in clear text; use https://');
  }
  const job = text(env, 'REMOTE_WRITE_JOB') ?? text(env, 'PUSHGATEWAY_JOB') ?? DEFAULTS.PUSHGATEWAY_JOB;
  if (!LABEL_VALUE.test(job)) throw new ConfigError('REMOTE_WRITE_JOB must be 1-128 of letters, digits, _ . : -');
  // One set of static labels for both sinks unless remote write names its own.
  const labels =
    text(env, 'REMOTE_WRITE_LABELS') !== undefined
      ? parseGrouping(text(env, 'REMOTE_WRITE_LABELS'), 'REMOTE_WRITE_LABELS')
      : parseGrouping(text(env, 'PUSHGATEWAY_GROUPING'));
  return {
    url: url.toString(),
    auth,
    job,
    labels,
    caFile: caFile(text(env, 'REMOTE_WRITE_CA_FILE'), url, 'REMOTE_WRITE_CA_FILE', 'REMOTE_WRITE_URL'),
  };
}

/** Every secret value a sink's auth holds, in each form it may take on the wire. */
function authSecrets(auth: RemoteWriteAuth | undefined): string[] {
  // The Authorization header carries base64("user:password"), which holds no base64 of the password alone.
  if (auth?.kind === 'basic') return [auth.password, Buffer.from(`${auth.username}:${auth.password}`).toString('base64')];
  if (auth?.kind === 'bearer') return [auth.token];
  return [];
}

export function isNeonHost(host: string): boolean {
  return /(^|\.)neon\.(tech|build)$/i.test(host);
}

interface DatabaseSettings {
  databaseUrl: string;
  host: string;
  password: string | undefined;
  encodedPassword: string | undefined;
  proxy: string | undefined;
  tls: DatabaseTls;
  plaintextToRemote: boolean;
}

/**
 * Query parameters that would override the URL's own host, port, user, password
 * or database in the drivers' parser: the TLS rules (loopback or not) and the
 * redaction (which password) read the URL itself, so these are refused.
 */
const OVERRIDING_PARAMETERS = ['host', 'hostaddr', 'port', 'user', 'password', 'database', 'dbname'];

/** libpq parameters this collector cannot honour: refused rather than silently ignored. */
const UNSUPPORTED_SSL_PARAMETERS = ['sslcert', 'sslkey', 'sslpassword', 'sslcrl', 'sslcrldir', 'sslnegotiation', 'sslcompression'];

/**
 * sslmode and sslrootcert as libpq reads them, except the defaults: verify-full
 * for a non-loopback host (libpq says prefer), prefer for loopback; and verify
 * modes without sslrootcert use Node's public CAs (libpq wants ~/.postgresql/root.crt).
 */
export function parseDatabaseTls(url: URL): DatabaseTls {
  const unsupported = UNSUPPORTED_SSL_PARAMETERS.find((p) => url.searchParams.has(p));
  if (unsupported) throw new ConfigError(`DATABASE_URL sets ${unsupported}, which this collector does not support (client certificates, CRLs); remove it`);
  const written = url.searchParams.get('sslmode') ?? undefined;
  if (written !== undefined && !(SSL_MODES as readonly string[]).includes(written)) {
    throw new ConfigError(`DATABASE_URL sslmode must be one of ${SSL_MODES.join(', ')}, got "${written.slice(0, 20)}"`);
  }
  let mode = (written as SslMode | undefined) ?? (isLoopbackHost(url.hostname) ? 'prefer' : 'verify-full');
  const rootCert = url.searchParams.get('sslrootcert') ?? undefined;
  if (rootCert === 'system') {
    // libpq 16: the public CAs only mean something when the host name is checked too.
    if (mode !== 'verify-full') throw new ConfigError(`DATABASE_URL sslrootcert=system needs sslmode=verify-full, got sslmode=${mode}`);
    return { mode, ca: undefined };
  }
  const ca = rootCert === undefined || rootCert === '' ? undefined : readPemFile('DATABASE_URL sslrootcert', rootCert);
  // libpq: "if a root CA file exists, the behavior of sslmode=require will be the same as that of verify-ca".
  if (mode === 'require' && ca !== undefined) mode = 'verify-ca';
  return { mode, ca };
}

/** Modes that may end in a session without TLS: disable always, allow and prefer when the server says no. */
export function mayBePlaintext(mode: SslMode): boolean {
  return mode === 'disable' || mode === 'allow' || mode === 'prefer';
}

function parseWsProxy(proxy: string, url: URL, tls: DatabaseTls): void {
  if (isNeonHost(url.hostname)) {
    throw new ConfigError('DATABASE_WS_PROXY is not for Neon hosts: Neon hosts always use the secure WebSocket');
  }
  if (/^wss:\/\//i.test(proxy)) {
    parseUrl('DATABASE_WS_PROXY', proxy, ['wss:']);
    return;
  }
  if (/^[a-z]+:\/\//i.test(proxy)) {
    throw new ConfigError('DATABASE_WS_PROXY is host:port[/path] without a scheme for a loopback bridge, or wss://host[/path] for a remote proxy (never ws://)');
  }
  if (!/^[A-Za-z0-9.[\]:-]+:\d{1,5}(\/[A-Za-z0-9_./-]*)?$/.test(proxy)) {
    throw new ConfigError(`DATABASE_WS_PROXY must look like 127.0.0.1:8089/v1 or wss://proxy.example/v1, got "${proxy}"`);
  }
  // The bridge path is plain text (ws://, then plain TCP): neither hop may leave the machine.
  const proxyHost = proxy.replace(/:\d{1,5}(\/.*)?$/, '');
  if (!isLoopbackHost(proxyHost)) {
    throw new ConfigError('DATABASE_WS_PROXY without a scheme must be a loopback address (127.0.0.1, ::1 or localhost): it is plain text; use wss:// for a remote proxy');
  }
  if (!isLoopbackHost(url.hostname)) {
    throw new ConfigError(
      `DATABASE_WS_PROXY is a plain-text bridge but DATABASE_URL's host ${url.hostname} is not loopback: unset DATABASE_WS_PROXY to reach it over TLS`,
    );
  }
  if (url.searchParams.has('sslmode') && !mayBePlaintext(tls.mode)) {
    throw new ConfigError(`DATABASE_URL asks for sslmode=${url.searchParams.get('sslmode')} but DATABASE_WS_PROXY's bridge relays plain text; unset DATABASE_WS_PROXY to connect over TLS`);
  }
}

function parseDatabase(env: Env): DatabaseSettings {
  const raw = required(env, 'DATABASE_URL', 'postgresql://user:password@host:5432/db');
  requireScheme('DATABASE_URL', raw, 'postgresql://user:password@host:5432/db');
  checkPortText('DATABASE_URL', raw);
  const url = parseUrl('DATABASE_URL', raw, ['postgresql:', 'postgres:']);
  if (url.pathname.length <= 1) throw new ConfigError('DATABASE_URL names no database (…/dbname)');
  // Both forms are secrets: as written in the URL (percent-encoded) and as sent.
  const password = url.password ? decodeURIComponent(url.password) : undefined;
  const encodedPassword = url.password || undefined;

  const overriding = OVERRIDING_PARAMETERS.find((p) => url.searchParams.has(p));
  if (overriding) {
    throw new ConfigError(`DATABASE_URL sets ${overriding} in its query; write it in the URL itself (postgresql://user:password@host:5432/db)`);
  }
  const allowPlaintext = flag(env, 'DATABASE_ALLOW_PLAINTEXT');
  const tls = parseDatabaseTls(url);
  if (isNeonHost(url.hostname) && (tls.mode === 'disable' || tls.mode === 'allow')) {
    throw new ConfigError(`DATABASE_URL sslmode=${tls.mode} is not possible for a Neon host: it is reached over its secure WebSocket only`);
  }
  const proxy = text(env, 'DATABASE_WS_PROXY');
  if (proxy !== undefined) parseWsProxy(proxy, url, tls);
  const remote = !isLoopbackHost(url.hostname);
  const direct = proxy === undefined && !isNeonHost(url.hostname);
  if (remote && direct && mayBePlaintext(tls.mode) && !allowPlaintext) {
    throw new ConfigError(
      `DATABASE_URL sslmode=${tls.mode} may send the session to ${url.hostname} in clear text; use sslmode=verify-full (the default) or require, or set DATABASE_ALLOW_PLAINTEXT=true`,
    );
  }
  return {
    databaseUrl: raw,
    host: url.hostname,
    password,
    encodedPassword,
    proxy,
    tls,
    plaintextToRemote: remote && direct && mayBePlaintext(tls.mode),
  };
}

function flag(env: Env, name: string): boolean {
  const raw = text(env, name)?.toLowerCase();
  if (raw === undefined || raw === 'false' || raw === '0') return false;
  if (raw === 'true' || raw === '1') return true;
  throw new ConfigError(`${name} must be true or false, got "${raw}"`);
}

export function parseConfig(env: Env, options: ParseOptions = { requirePushgateway: true }): Config {
  // Node reads this for every TLS connection of the process (the Neon WebSocket and the push).
  if (env.NODE_TLS_REJECT_UNAUTHORIZED?.trim() === '0') {
    throw new ConfigError(
      'NODE_TLS_REJECT_UNAUTHORIZED=0 turns certificate checks off; unset it (for a private CA use PUSHGATEWAY_CA_FILE, or sslrootcert in DATABASE_URL)',
    );
  }
  const db = parseDatabase(env);
  const dryRun = flag(env, 'PUSH_DRY_RUN');
  if (dryRun && text(env, 'PUSHGATEWAY_URL') !== undefined) {
    throw new ConfigError('PUSH_DRY_RUN=true and PUSHGATEWAY_URL are both set; choose one');
  }
  if (dryRun && text(env, 'REMOTE_WRITE_URL') !== undefined) {
    throw new ConfigError('PUSH_DRY_RUN=true and REMOTE_WRITE_URL are both set; choose one');
  }
  const remoteWrite = parseRemoteWrite(env);
  // Remote write alone is a complete sink: no Pushgateway needed then.
  const pushgateway = parsePushgateway(env, options.requirePushgateway && !dryRun && !remoteWrite);
  const runsTable = parseTableName(text(env, 'RUNS_TABLE') ?? DEFAULTS.RUNS_TABLE);

  const metricsBearerToken = parseBearerToken(env);
  const sampling = parseSampling(env);
  const heartbeat = parseHeartbeat(env);
  const blueprints = parseBlueprints(env);

  const secrets = [db.password, db.encodedPassword, metricsBearerToken, ...authSecrets(pushgateway?.auth), ...authSecrets(remoteWrite?.auth)];

  return {
    databaseUrl: db.databaseUrl,
    databaseHost: db.host,
    databaseWsProxy: db.proxy,
    databaseTls: db.tls,
    databasePlaintextToRemote: db.plaintextToRemote,
    pushgateway,
    remoteWrite,
    runsTable,
    tickTimeoutMs: integer(env, 'TICK_TIMEOUT_MS', DEFAULTS.TICK_TIMEOUT_MS, 100, 900_000),
    statementTimeoutMs: integer(env, 'DB_STATEMENT_TIMEOUT_MS', DEFAULTS.DB_STATEMENT_TIMEOUT_MS, 10, 600_000),
    lockTimeoutMs: integer(env, 'DB_LOCK_TIMEOUT_MS', DEFAULTS.DB_LOCK_TIMEOUT_MS, 10, 600_000),
    pushAttemptTimeoutMs: integer(env, 'PUSH_TIMEOUT_MS', DEFAULTS.PUSH_TIMEOUT_MS, 10, 600_000),
    pushRetries: integer(env, 'PUSH_RETRIES', DEFAULTS.PUSH_RETRIES, 0, 10),
    maxEventAgeSeconds: integer(env, 'MAX_EVENT_AGE_SECONDS', DEFAULTS.MAX_EVENT_AGE_SECONDS, 0, 86_400),
    statusEstimateAbove: parseEstimateAbove(env),
    dryRun,
    ...sampling,
    metricsBearerToken,
    heartbeat,
    blueprints,
    secrets: secrets.filter((s): s is string => s !== undefined && s.length > 0),
  };
}

/** A URL fit for logs: no userinfo, no query (which may carry a password). */
export function displayUrl(raw: string): string {
  try {
    const url = new URL(raw);
    url.username = '';
    url.password = '';
    url.search = '';
    url.hash = '';
    return url.toString().replace(/\/+$/, '');
  } catch {
    return '<invalid url>';
  }
}
