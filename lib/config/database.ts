/**
 * The database section: DATABASE_URL and how it is reached (transport, TLS as
 * libpq's sslmode and channel_binding say, or a Unix socket for local use),
 * how it authenticates (its password, or an RDS IAM token per connection),
 * the runs table, and the read's budgets.
 */

import { AWS_REGION_PATTERN } from './aws';
import { ConfigError } from './errors';
import { isLoopbackHost, isNeonHost, unixSocketDirectory } from './hosts';
import { parseTableName } from './identifiers';
import { readPemFile } from './pem';
import { flag, integer, integerOrWord, required, text, textOrDefault, type Env } from './read';
import { CHANNEL_BINDINGS, SSL_MODES, type ChannelBinding, type DatabaseConfig, type DatabaseIam, type DatabaseTls, type SslMode } from './types';
import { checkPortText, parseUrl, requireScheme } from './urls';

const EXAMPLE = 'postgresql://user:password@host:5432/db';
const SOCKET_EXAMPLE = 'postgresql://user@%2Fvar%2Frun%2Fpostgresql/db';

/**
 * The parts of the URL the drivers percent-decode (decodeURIComponent, which
 * throws "URI malformed" on a raw %): checked here, so a generated password
 * with a % gets one error that says what to do. The value is never echoed.
 */
function checkPercentEncoding(url: URL): void {
  const parts: [string, string][] = [['user name', url.username], ['password', url.password], ['host', url.hostname], ['database name', url.pathname]];
  for (const [what, value] of parts) {
    if (/%(?![0-9a-f]{2})/i.test(value)) {
      throw new ConfigError(
        `DATABASE_URL's ${what} holds a "%" that is not followed by two hex digits: percent-encode the ${what} (a literal % is %25; encodeURIComponent in JavaScript, urllib.parse.quote(value, safe="") in Python)`,
      );
    }
    try {
      decodeURIComponent(value);
    } catch {
      throw new ConfigError(`DATABASE_URL's ${what} is percent-encoded but does not decode to UTF-8 text: percent-encode the ${what} from its UTF-8 bytes (encodeURIComponent in JavaScript)`);
    }
  }
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
 * for a non-loopback host (libpq says prefer), prefer for loopback; verify-full
 * without sslrootcert uses Node's public CAs (libpq wants ~/.postgresql/root.crt),
 * verify-ca without it is refused, as libpq refuses it. A Unix socket carries
 * no TLS at all (libpq ignores sslmode there): disable, and a mode that
 * promises TLS is refused rather than ignored.
 */
export function parseDatabaseTls(url: URL): DatabaseTls {
  const unsupported = UNSUPPORTED_SSL_PARAMETERS.find((p) => url.searchParams.has(p));
  if (unsupported) throw new ConfigError(`DATABASE_URL sets ${unsupported}, which this collector does not support (client certificates, CRLs); remove it`);
  const written = url.searchParams.get('sslmode') ?? undefined;
  if (written !== undefined && !(SSL_MODES as readonly string[]).includes(written)) {
    throw new ConfigError(`DATABASE_URL sslmode must be one of ${SSL_MODES.join(', ')}, got "${written.slice(0, 20)}"`);
  }
  const rootCert = url.searchParams.get('sslrootcert') ?? undefined;
  const socket = unixSocketDirectory(url.hostname);
  if (socket !== undefined) {
    const promised = written !== undefined && !mayBePlaintext(written as SslMode) ? `sslmode=${written}` : rootCert ? 'sslrootcert' : undefined;
    if (promised) {
      throw new ConfigError(`DATABASE_URL's host is a Unix socket (${socket}), which carries no TLS, so ${promised} cannot be honoured; remove it (the socket does not leave the machine)`);
    }
    return { mode: 'disable', ca: undefined };
  }
  let mode = (written as SslMode | undefined) ?? (isLoopbackHost(url.hostname) ? 'prefer' : 'verify-full');
  if (rootCert === 'system') {
    // libpq 16: the public CAs only mean something when the host name is checked too.
    if (mode !== 'verify-full') throw new ConfigError(`DATABASE_URL sslrootcert=system needs sslmode=verify-full, got sslmode=${mode}`);
    return { mode, ca: undefined };
  }
  const ca = rootCert === undefined || rootCert === '' ? undefined : readPemFile('DATABASE_URL sslrootcert', rootCert);
  if (mode === 'verify-ca' && ca === undefined) {
    // Node's public CAs without the host name: a certificate any public CA issued, for any name, would pass.
    throw new ConfigError(
      'DATABASE_URL sslmode=verify-ca needs sslrootcert=<CA file>: without it any publicly issued certificate, for any host name, would pass (libpq refuses it too: "root certificate file does not exist"); name the CA file, or use sslmode=verify-full',
    );
  }
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

/**
 * channel_binding as libpq reads it: prefer (its default) binds SCRAM to the
 * TLS session when the server offers SCRAM-SHA-256-PLUS; require fails unless
 * it did, before any password is sent (lib/source/channel-binding.ts). The
 * Neon driver has no channel binding (its SCRAM is plain SCRAM-SHA-256, and
 * Neon's proxy takes the password inside the WebSocket's TLS), so require is
 * refused there rather than ignored; so is require where no TLS can be.
 */
function parseChannelBinding(url: URL, tls: DatabaseTls, neonDriver: boolean, iamAuth: boolean): ChannelBinding {
  const written = url.searchParams.get('channel_binding') ?? undefined;
  if (written !== undefined && !(CHANNEL_BINDINGS as readonly string[]).includes(written)) {
    throw new ConfigError(`DATABASE_URL channel_binding must be one of ${CHANNEL_BINDINGS.join(', ')}, got "${written.slice(0, 20)}"`);
  }
  const binding = (written as ChannelBinding | undefined) ?? 'prefer';
  if (binding !== 'require') return binding;
  const socket = unixSocketDirectory(url.hostname);
  if (socket !== undefined) {
    throw new ConfigError(`DATABASE_URL channel_binding=require needs TLS, which a Unix socket (${socket}) does not carry; remove channel_binding`);
  }
  if (neonDriver) {
    throw new ConfigError(
      'DATABASE_URL channel_binding=require cannot be honoured by the Neon driver (Neon hosts, DATABASE_WS_PROXY): it has no SCRAM-SHA-256-PLUS and authenticates inside its WebSocket\'s TLS, whose certificate and host name are always checked; remove channel_binding or set channel_binding=prefer',
    );
  }
  if (tls.mode === 'disable') {
    throw new ConfigError('DATABASE_URL channel_binding=require needs TLS but sslmode=disable turns it off (libpq refuses this too); use sslmode=verify-full');
  }
  if (iamAuth) {
    throw new ConfigError('DATABASE_URL channel_binding=require cannot hold with DATABASE_IAM_AUTH=true: RDS takes the IAM token as a cleartext password over TLS, which channel binding refuses; remove channel_binding');
  }
  return binding;
}

/**
 * DATABASE_IAM_AUTH=true: RDS and Aurora over TCP with verify-full TLS, the
 * token made per connection for DATABASE_URL's host, port and user (which
 * then carries no password).
 */
function parseIam(env: Env, url: URL, tls: DatabaseTls, neonDriver: boolean): DatabaseIam | undefined {
  if (!flag(env, 'DATABASE_IAM_AUTH')) return undefined;
  if (neonDriver || unixSocketDirectory(url.hostname) !== undefined) {
    throw new ConfigError('DATABASE_IAM_AUTH=true is for RDS and Aurora over TCP: not for a Neon host, DATABASE_WS_PROXY or a Unix socket');
  }
  if (url.password) {
    throw new ConfigError('DATABASE_URL holds a password but DATABASE_IAM_AUTH=true signs a token for each connection instead; remove the password from DATABASE_URL');
  }
  if (!url.username) throw new ConfigError('DATABASE_URL names no user; DATABASE_IAM_AUTH=true signs its token for that user (postgresql://user@host:5432/db)');
  if (tls.mode !== 'verify-full') {
    const written = url.searchParams.get('sslmode');
    throw new ConfigError(
      `DATABASE_IAM_AUTH=true needs sslmode=verify-full in DATABASE_URL, got ${written ? `sslmode=${written}` : `${tls.mode} (the default for a loopback host)`}: the token travels as a password, so only to a server whose certificate and host name were checked`,
    );
  }
  // Lambda sets AWS_REGION; DATABASE_IAM_REGION names the database's region when it differs.
  const region = text(env, 'DATABASE_IAM_REGION') ?? text(env, 'AWS_REGION');
  if (region === undefined) throw new ConfigError('DATABASE_IAM_AUTH=true needs DATABASE_IAM_REGION (or AWS_REGION), the database\'s region');
  if (!AWS_REGION_PATTERN.test(region)) throw new ConfigError(`DATABASE_IAM_REGION must be an AWS region such as eu-west-1, got "${region.slice(0, 40)}"`);
  return { region, host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port ? Number(url.port) : 5432, user: decodeURIComponent(url.username) };
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
  checkPercentEncoding(url);
  if (url.pathname.length <= 1) throw new ConfigError('DATABASE_URL names no database (…/dbname)');
  const password = url.password ? decodeURIComponent(url.password) : undefined;
  const encodedPassword = url.password || undefined;

  const overriding = OVERRIDING_PARAMETERS.find((p) => url.searchParams.has(p));
  if (overriding) {
    const socketHint = overriding === 'host' ? `; a Unix socket's directory goes there percent-encoded, ${SOCKET_EXAMPLE}` : '';
    throw new ConfigError(`DATABASE_URL sets ${overriding} in its query; write it in the URL itself (${EXAMPLE}${socketHint})`);
  }
  const allowPlaintext = flag(env, 'DATABASE_ALLOW_PLAINTEXT');
  const tls = parseDatabaseTls(url);
  if (isNeonHost(url.hostname) && (tls.mode === 'disable' || tls.mode === 'allow')) {
    throw new ConfigError(`DATABASE_URL sslmode=${tls.mode} is not possible for a Neon host: it is reached over its secure WebSocket only`);
  }
  const socket = unixSocketDirectory(url.hostname);
  const wsProxy = text(env, 'DATABASE_WS_PROXY');
  if (wsProxy !== undefined && socket !== undefined) {
    throw new ConfigError(`DATABASE_WS_PROXY cannot reach DATABASE_URL's Unix socket (${socket}); unset DATABASE_WS_PROXY to connect to it directly`);
  }
  if (wsProxy !== undefined) checkWsProxy(wsProxy, url, tls);
  const neonDriver = wsProxy !== undefined || isNeonHost(url.hostname);
  const iam = parseIam(env, url, tls, neonDriver);
  const channelBinding = parseChannelBinding(url, tls, neonDriver, iam !== undefined);
  // A socket never leaves the machine: it is as local as loopback.
  const remote = socket === undefined && !isLoopbackHost(url.hostname);
  const direct = !neonDriver;
  if (remote && direct && mayBePlaintext(tls.mode) && !allowPlaintext) {
    throw new ConfigError(
      `DATABASE_URL sslmode=${tls.mode} may send the session to ${url.hostname} in clear text; use sslmode=verify-full (the default) or require, or set DATABASE_ALLOW_PLAINTEXT=true`,
    );
  }
  return {
    database: {
      url: raw,
      host: socket ?? url.hostname,
      wsProxy,
      tls,
      channelBinding,
      iam,
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
