/**
 * The database connection: a fresh client per tick, never a pool, never a
 * global setting, over one of two transports behind one session interface:
 * - the Neon driver over a WebSocket: to a Neon host its secure defaults
 *   (wss://, TLS always on); through DATABASE_WS_PROXY a wss:// proxy, or the
 *   local plain-text bridge (loopback databases only, see lib/config/database.ts);
 * - node-postgres over TCP to every other host, with TLS as DATABASE_URL's
 *   sslmode, sslrootcert and channel_binding say (verify-full by default for
 *   remote hosts), or over a Unix socket (local use, no TLS); with
 *   DATABASE_IAM_AUTH=true a fresh RDS IAM token is each connection's password.
 */

import type { ConnectionOptions } from 'node:tls';
import { Client } from '@neondatabase/serverless';
import PgClient from 'pg/lib/client';
import ws from 'ws';
import { awsCredentials } from '../config/aws';
import { isNeonHost } from '../config/hosts';
import type { Env } from '../config/read';
import type { DatabaseConfig, DatabaseTls } from '../config/types';
import { withDeadline, type Deadline } from '../core/deadline';
import { redact } from '../core/redact';
import { requireChannelBinding } from './channel-binding';
import { rdsAuthToken, tokenSignature } from './iam-token';

/**
 * How long a clean close may take before the socket is cut. A WebSocket close
 * waits for the peer's close frame (the ws library gives up only after 30 s),
 * so a peer that never answers would hold the tick. Cutting is safe: the data
 * is already in hand, the transaction was READ ONLY, and the server sees the
 * TCP connection drop. So a cut close does not fail the tick (it is logged).
 */
export const CLOSE_GRACE_MS = 1_000;

export interface DriverSettings {
  wsProxy?: (host: string, port: number | string) => string;
  useSecureWebSocket?: boolean;
  pipelineTLS?: boolean;
  pipelineConnect?: 'password' | false;
  forceDisablePgSSL?: boolean;
}

/** The driver settings for a configuration; exported so tests can assert the secure defaults. */
export function driverSettings(database: Pick<DatabaseConfig, 'wsProxy'>): DriverSettings {
  if (database.wsProxy === undefined) return {};
  const secure = /^wss:\/\//i.test(database.wsProxy);
  const written = database.wsProxy.replace(/^wss:\/\//i, '').replace(/\/+$/, '');
  const proxy = written.includes('/') ? written : `${written}/v1`;
  return {
    wsProxy: (host, port) => `${proxy}?address=${encodeURIComponent(`${host}:${port}`)}`,
    // wss://: TLS is the WebSocket's, certificate checked by Node, as with Neon's own proxy.
    // host:port: the local bridge, plain text on loopback (lib/config/database.ts allows nothing else).
    useSecureWebSocket: secure,
    pipelineTLS: false,
    pipelineConnect: false,
    forceDisablePgSSL: true,
  };
}

export interface QueryResultLike {
  command?: string;
  rows: Record<string, unknown>[];
}

/**
 * What a batch got: the result of every statement that completed, in order,
 * and the error that stopped it, if one did (the statements after it did not
 * run). Completed results are kept so a batch whose fourth SELECT failed
 * still yields its first three.
 */
export interface BatchOutcome {
  completed: QueryResultLike[];
  error: unknown;
}

interface NeonSocketLike {
  ws?: { terminate?: () => void; close?: () => void } | null;
}

export interface DatabaseSession {
  /**
   * Run a simple-protocol batch: one result per completed statement, and the
   * error that stopped it (server or connection); rejects only when the
   * deadline cuts it.
   */
  batch(sql: string, deadline: Deadline): Promise<BatchOutcome>;
  /** Close, and cut the socket if the peer does not answer in time. Never throws. */
  close(deadline: Deadline): Promise<{ forced: boolean }>;
}

/**
 * The driver rejects with whatever its socket emitted, which for a WebSocket
 * failure is an ErrorEvent, not an Error ("[object Object]" in a message).
 */
export function asError(error: unknown): Error {
  if (error instanceof Error) return error;
  const event = error as { error?: unknown; message?: unknown; type?: unknown } | null;
  if (event?.error instanceof Error) return event.error;
  if (typeof event?.message === 'string' && event.message) return new Error(event.message);
  if (typeof event?.type === 'string') return new Error(`WebSocket ${event.type}`);
  return new Error(String(error));
}

export type Transport = 'neon-websocket' | 'tcp';

/** Neon hosts and configured WebSocket proxies go through the Neon driver; every other host over TCP. */
export function transportFor(database: Pick<DatabaseConfig, 'host' | 'wsProxy'>): Transport {
  return database.wsProxy !== undefined || isNeonHost(database.host) ? 'neon-websocket' : 'tcp';
}

/** node-postgres's `ssl` for a mode that does not fall back: false, or what TLS must verify. */
export function tlsOptions(tls: DatabaseTls): false | ConnectionOptions {
  switch (tls.mode) {
    case 'disable':
      return false;
    case 'allow':
    case 'prefer':
    case 'require':
      // Encrypted, nothing verified (libpq's meaning; require with a root certificate became verify-ca).
      return { rejectUnauthorized: false };
    case 'verify-ca':
      return { ca: tls.ca, rejectUnauthorized: true, checkServerIdentity: () => undefined };
    case 'verify-full':
      // node-postgres sends the host as SNI servername; Node checks it against the certificate.
      return { ca: tls.ca, rejectUnauthorized: true };
  }
}

/**
 * What to try, in order, as libpq does: prefer tries TLS then plain text when
 * the server has no TLS; allow tries plain text then TLS when the server
 * demands it; every other mode tries exactly once.
 */
export function tlsAttempts(tls: DatabaseTls): (false | ConnectionOptions)[] {
  if (tls.mode === 'prefer') return [tlsOptions(tls), false];
  if (tls.mode === 'allow') return [false, tlsOptions(tls)];
  return [tlsOptions(tls)];
}

/** Whether a failed attempt is the one the next attempt of prefer/allow answers. */
function isEncryptionMismatch(error: unknown): boolean {
  const message = error instanceof Error ? error.message : '';
  // prefer: the server answered N to SSLRequest. allow: pg_hba.conf has only hostssl for us.
  return /does not support SSL/i.test(message) || /no encryption/i.test(message);
}

/**
 * DATABASE_URL for node-postgres without libpq's ssl* and channel_binding
 * parameters, which its parser reads its own way or not at all (they are
 * applied as client options here).
 */
export function withoutSslParameters(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  for (const name of [...url.searchParams.keys()]) if (/^ssl|^uselibpqcompat$|^channel_binding$/i.test(name)) url.searchParams.delete(name);
  return url.toString();
}

/** The URL node-postgres gets: with `password` (an IAM token) written in, percent-encoded, when there is one. */
export function driverUrl(databaseUrl: string, password?: string): string {
  const url = new URL(withoutSslParameters(databaseUrl));
  // The connection string wins over a `password` client option in node-postgres, so the token goes in here.
  if (password !== undefined) url.password = encodeURIComponent(password);
  return url.toString();
}

export interface OpenOptions {
  /**
   * Told every secret a connection makes (an IAM token and its signature)
   * before it is used, so the tick redacts it from its log line too: the
   * configuration's list of secrets was fixed before the token existed.
   */
  onSecret?: (secret: string) => void;
  /** Where the role's credentials for an IAM token come from; process.env by default. */
  env?: Env;
}

/**
 * The same error, its message and stack redacted of `secrets`: its code and
 * severity stay, for the read's and the refetch's decisions.
 */
function redactedError(error: unknown, secrets: readonly string[]): Error {
  const e = asError(error);
  if (secrets.length === 0) return e;
  e.message = redact(e.message, secrets);
  if (e.stack) e.stack = redact(e.stack, secrets);
  return e;
}

/** RDS answers a refused token with this (SQLSTATE 28000), saying nothing of why. */
function withIamHint(error: Error): Error {
  if ((error as { code?: unknown }).code === '28000' && /PAM authentication failed/i.test(error.message)) {
    error.message = `${error.message} (DATABASE_IAM_AUTH: RDS refused the IAM token; the role needs rds-db:connect on this user, the user GRANT rds_iam, and DATABASE_IAM_REGION the database's region)`;
  }
  return error;
}

interface SessionClient {
  query(submittable: CollectingBatch): unknown;
  end(): Promise<void>;
}

interface WireField {
  name: string;
}

/**
 * A simple-protocol query that keeps the result of every statement as it
 * completes: node-postgres (and the Neon driver, its fork) answer a failed
 * multi-statement query with the error alone, losing what the statements
 * before it returned. Both drivers take such a "submittable" object in place
 * of query text (pg-cursor uses the same door). Values stay text, as the
 * server sends them; lib/source/rows.ts reads numbers and json from text.
 */
export class CollectingBatch {
  readonly completed: QueryResultLike[] = [];
  callback: ((error: unknown, completed: QueryResultLike[]) => void) | undefined;
  private fields: string[] = [];
  private rows: Record<string, unknown>[] = [];

  constructor(readonly text: string) {}

  submit(connection: { query(text: string): void }): null {
    connection.query(this.text);
    return null;
  }

  handleRowDescription(message: { fields: WireField[] }): void {
    this.fields = message.fields.map((f) => f.name);
    this.rows = [];
  }

  handleDataRow(message: { fields: unknown[] }): void {
    this.rows.push(Object.fromEntries(this.fields.map((name, i) => [name, message.fields[i] ?? null])));
  }

  handleCommandComplete(message: { text?: string }): void {
    this.completed.push({ command: message.text?.split(' ')[0], rows: this.rows });
    this.fields = [];
    this.rows = [];
  }

  handleEmptyQuery(): void {}

  handlePortalSuspended(): void {}

  // The batch never copies; refuse politely should the server ever ask.
  handleCopyInResponse(connection: { sendCopyFail(message: string): void }): void {
    connection.sendCopyFail('not supported');
  }

  handleCopyData(): void {}

  handleError(error: unknown): void {
    this.finish(error);
  }

  handleReadyForQuery(): void {
    this.finish(undefined);
  }

  private finish(error: unknown): void {
    const callback = this.callback;
    this.callback = undefined;
    callback?.(error, this.completed);
  }
}

/** The tick's view of either client: one batch, a close that is cut after CLOSE_GRACE_MS. */
/** An error PostgreSQL itself reported (a SQLSTATE): the connection is still up and the transaction open. */
export function isServerError(error: unknown): boolean {
  const e = error as { code?: unknown; severity?: unknown } | null;
  return typeof e?.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && typeof e.severity === 'string';
}

function sessionOf(client: SessionClient, cut: () => void, secrets: readonly string[] = []): DatabaseSession {
  // A connection that failed under the query (reset, closed, cut) has nobody left to say goodbye to:
  // a clean end() would wait on a peer that is gone (the Neon driver waits for an `end` event the dead
  // socket already sent, the whole CLOSE_GRACE_MS; seen by the chaos soak), so it is only torn down.
  let broken = false;
  return {
    async batch(sql, deadline) {
      const query = new CollectingBatch(sql);
      const outcome = new Promise<BatchOutcome>((resolve) => {
        query.callback = (error, completed) => {
          if (error !== undefined && !isServerError(error)) broken = true;
          resolve({ completed, error: error === undefined ? undefined : redactedError(error, secrets) });
        };
      });
      client.query(query);
      return withDeadline('database query', deadline, outcome, () => {
        broken = true;
        cut();
      });
    },
    async close(deadline) {
      if (broken) {
        cut();
        return { forced: false };
      }
      try {
        await withDeadline('database close', deadline, client.end(), cut, CLOSE_GRACE_MS, 'close grace');
        return { forced: false };
      } catch {
        cut();
        return { forced: true };
      }
    },
  };
}

/** Connect within the deadline, or cut the socket and throw. */
async function connect(client: { connect(): Promise<unknown> }, cut: () => void, deadline: Deadline): Promise<void> {
  try {
    await withDeadline('database connect', deadline, client.connect().catch(rethrowAsError), cut);
  } catch (error) {
    cut();
    throw error;
  }
}

/** Drop the WebSocket at once (no close handshake), whatever state it is in. */
function cut(client: Client): void {
  const socket = client.neonConfig as unknown as NeonSocketLike;
  try {
    socket.ws?.terminate?.();
  } catch {
    // already gone
  }
}

function rethrowAsError(error: unknown): never {
  throw asError(error);
}

async function openNeon(database: DatabaseConfig, deadline: Deadline): Promise<DatabaseSession> {
  const client = new Client({ connectionString: database.url, application_name: 'xyn-metrics' });
  const socketConfig = client.neonConfig;
  socketConfig.webSocketConstructor = ws;
  Object.assign(socketConfig, driverSettings(database));
  // An 'error' after we gave up on the client must not crash the process.
  client.on('error', () => {});
  await connect(client, () => cut(client), deadline);
  return sessionOf(client as unknown as SessionClient, () => cut(client));
}

/** A fresh IAM token for this connection, announced as a secret before it is used. */
function iamToken(database: DatabaseConfig, options: OpenOptions): string | undefined {
  if (database.iam === undefined) return undefined;
  const token = rdsAuthToken(database.iam, awsCredentials(options.env ?? process.env, 'DATABASE_IAM_AUTH=true'));
  for (const secret of [token, tokenSignature(token)]) if (secret) options.onSecret?.(secret);
  return token;
}

async function openTcpOnce(database: DatabaseConfig, ssl: false | ConnectionOptions, deadline: Deadline, options: OpenOptions): Promise<DatabaseSession> {
  const token = iamToken(database, options);
  const secrets = token === undefined ? [] : [token, tokenSignature(token) ?? token];
  const client = new PgClient({
    connectionString: driverUrl(database.url, token),
    application_name: 'xyn-metrics',
    ssl,
    // SCRAM-SHA-256-PLUS when the server offers it over TLS (libpq's prefer, its default).
    enableChannelBinding: database.channelBinding !== 'disable',
  });
  if (database.channelBinding === 'require') requireChannelBinding(client);
  client.on('error', () => {});
  // The TCP socket (TLS runs on top of it): destroying it ends both at once.
  const cutTcp = () => (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  try {
    await connect(client, cutTcp, deadline);
  } catch (error) {
    const redacted = redactedError(error, secrets);
    throw token === undefined ? redacted : withIamHint(redacted);
  }
  return sessionOf(client as unknown as SessionClient, cutTcp, secrets);
}

async function openTcp(database: DatabaseConfig, deadline: Deadline, options: OpenOptions): Promise<DatabaseSession> {
  const [first, fallback] = tlsAttempts(database.tls);
  try {
    return await openTcpOnce(database, first!, deadline, options);
  } catch (error) {
    if (fallback === undefined || !isEncryptionMismatch(error)) throw error;
    return openTcpOnce(database, fallback, deadline, options);
  }
}

export async function openDatabase(database: DatabaseConfig, deadline: Deadline, options: OpenOptions = {}): Promise<DatabaseSession> {
  return transportFor(database) === 'tcp' ? openTcp(database, deadline, options) : openNeon(database, deadline);
}
