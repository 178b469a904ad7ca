/**
 * The database section: DATABASE_URL and how it is reached (transport, TLS as
 * libpq's sslmode says), the runs table, and the read's budgets.
 */

import { ConfigError } from './errors';
import { isLoopbackHost, isNeonHost } from './hosts';
import { parseTableName } from './identifiers';
import { readPemFile } from './pem';
import { flag, integer, integerOrWord, required, text, textOrDefault, type Env } from './read';
import { SSL_MODES, type DatabaseConfig, type DatabaseTls, type SslMode } from './types';
import { checkPortText, parseUrl, requireScheme } from './urls';

const EXAMPLE = 'postgresql://user:password@host:5432/db';

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

function checkWsProxy(proxy: string, url: URL, tls: DatabaseTls): void {
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

function parseEstimateAbove(env: Env): number | undefined {
  const value = integerOrWord(env, 'STATUS_ESTIMATE_ABOVE');
  return value === 'off' ? undefined : (value as number);
}

export interface DatabaseSection {
  database: DatabaseConfig;
  /** The password in both forms it may take: as sent, and as written in the URL (percent-encoded). */
  secrets: (string | undefined)[];
}

export function parseDatabase(env: Env): DatabaseSection {
  const raw = required(env, 'DATABASE_URL', EXAMPLE);
  requireScheme('DATABASE_URL', raw, EXAMPLE);
  checkPortText('DATABASE_URL', raw);
  const url = parseUrl('DATABASE_URL', raw, ['postgresql:', 'postgres:']);
  if (url.pathname.length <= 1) throw new ConfigError('DATABASE_URL names no database (…/dbname)');
  const password = url.password ? decodeURIComponent(url.password) : undefined;
  const encodedPassword = url.password || undefined;

  const overriding = OVERRIDING_PARAMETERS.find((p) => url.searchParams.has(p));
  if (overriding) {
    throw new ConfigError(`DATABASE_URL sets ${overriding} in its query; write it in the URL itself (${EXAMPLE})`);
  }
  const allowPlaintext = flag(env, 'DATABASE_ALLOW_PLAINTEXT');
  const tls = parseDatabaseTls(url);
  if (isNeonHost(url.hostname) && (tls.mode === 'disable' || tls.mode === 'allow')) {
    throw new ConfigError(`DATABASE_URL sslmode=${tls.mode} is not possible for a Neon host: it is reached over its secure WebSocket only`);
  }
  const wsProxy = text(env, 'DATABASE_WS_PROXY');
  if (wsProxy !== undefined) checkWsProxy(wsProxy, url, tls);
  const remote = !isLoopbackHost(url.hostname);
  const direct = wsProxy === undefined && !isNeonHost(url.hostname);
  if (remote && direct && mayBePlaintext(tls.mode) && !allowPlaintext) {
    throw new ConfigError(
      `DATABASE_URL sslmode=${tls.mode} may send the session to ${url.hostname} in clear text; use sslmode=verify-full (the default) or require, or set DATABASE_ALLOW_PLAINTEXT=true`,
    );
  }
  return {
    database: {
      url: raw,
      host: url.hostname,
      wsProxy,
      tls,
      plaintextToRemote: remote && direct && mayBePlaintext(tls.mode),
      runsTable: parseTableName(textOrDefault(env, 'RUNS_TABLE')),
      statementTimeoutMs: integer(env, 'DB_STATEMENT_TIMEOUT_MS'),
      lockTimeoutMs: integer(env, 'DB_LOCK_TIMEOUT_MS'),
      statusEstimateAbove: parseEstimateAbove(env),
      statusTopK: integer(env, 'STATUS_TOP_K'),
    },
    secrets: [password, encodedPassword],
  };
}
