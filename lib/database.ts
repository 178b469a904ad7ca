/**
 * The database connection: a fresh Neon driver Client per tick, never a pool,
 * never a global setting. Against a Neon host the driver keeps its secure
 * defaults (wss://, TLS always on); only an explicit DATABASE_WS_PROXY switches
 * it to a local plain-text WebSocket-to-TCP bridge.
 */

import { Client } from '@neondatabase/serverless';
import ws from 'ws';
import type { Config } from './config';
import { withDeadline, type Deadline } from './deadline';

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
export function driverSettings(config: Pick<Config, 'databaseWsProxy'>): DriverSettings {
  if (config.databaseWsProxy === undefined) return {};
  const proxy = config.databaseWsProxy.includes('/') ? config.databaseWsProxy : `${config.databaseWsProxy}/v1`;
  return {
    wsProxy: (host, port) => `${proxy}?address=${encodeURIComponent(`${host}:${port}`)}`,
    useSecureWebSocket: false,
    pipelineTLS: false,
    pipelineConnect: false,
    forceDisablePgSSL: true,
  };
}

export interface QueryResultLike {
  command?: string;
  rows: Record<string, unknown>[];
}

interface NeonSocketLike {
  ws?: { terminate?: () => void; close?: () => void } | null;
}

export interface DatabaseSession {
  /** Run a simple-protocol batch; returns one result per statement. */
  batch(sql: string, deadline: Deadline): Promise<QueryResultLike[]>;
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

export async function openDatabase(config: Config, deadline: Deadline): Promise<DatabaseSession> {
  const client = new Client({ connectionString: config.databaseUrl, application_name: 'xyn-metrics' });
  const socketConfig = client.neonConfig;
  socketConfig.webSocketConstructor = ws;
  Object.assign(socketConfig, driverSettings(config));
  // An 'error' after we gave up on the client must not crash the process.
  client.on('error', () => {});

  try {
    await withDeadline('database connect', deadline, client.connect().catch(rethrowAsError), () => cut(client));
  } catch (error) {
    cut(client);
    throw error;
  }

  return {
    async batch(sql, deadline) {
      const query = (client.query(sql) as Promise<unknown>).catch(rethrowAsError);
      const result = await withDeadline('database query', deadline, query, () => cut(client));
      return (Array.isArray(result) ? result : [result]) as QueryResultLike[];
    },
    async close(deadline) {
      try {
        await withDeadline('database close', deadline, client.end(), () => cut(client), CLOSE_GRACE_MS, 'close grace');
        return { forced: false };
      } catch {
        cut(client);
        return { forced: true };
      }
    },
  };
}
