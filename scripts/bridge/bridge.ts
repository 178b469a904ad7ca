/**
 * A WebSocket-to-TCP bridge, what Neon's wsproxy does, for local use: the Neon
 * driver speaks the Postgres protocol inside WebSocket binary messages; this
 * relays them to a plain Postgres over TCP. It listens on loopback only,
 * relays only to the addresses it was told to allow, and refuses any request
 * carrying an Origin header (a web page in the developer's browser sends one;
 * the driver never does), so it is not an open proxy. Plain text both ways:
 * for loopback databases only (lib/config/parse.ts refuses it for a remote one).
 */

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { isLoopbackHost } from '../../lib/config/hosts';

export interface Bridge {
  /** host:port/v1, the value for DATABASE_WS_PROXY. */
  proxy: string;
  port: number;
  close(): Promise<void>;
}

export interface BridgeOptions {
  /** Port to listen on; 0 picks a free one. */
  port?: number;
  /** A loopback address to listen on (127.0.0.1 by default); any other is refused. */
  host?: string;
  /** host:port targets allowed, loopback only; undefined allows any loopback target (tests only). */
  allow?: string[];
}

/** A Postgres ErrorResponse message (FATAL), as a server would send during startup. */
export function postgresError(code: string, message: string): Buffer {
  const fields = Buffer.concat([
    Buffer.from(`SFATAL\0VFATAL\0C${code}\0M${message}\0`, 'utf8'),
    Buffer.from([0]),
  ]);
  const header = Buffer.alloc(5);
  header.write('E', 0, 'latin1');
  header.writeInt32BE(fields.length + 4, 1);
  return Buffer.concat([header, fields]);
}

function relay(socket: WebSocket, target: string, sockets: Set<net.Socket>): void {
  const separator = target.lastIndexOf(':');
  const host = target.slice(0, separator).replace(/^\[|\]$/g, '');
  const port = Number(target.slice(separator + 1));
  const tcp = net.connect({ host, port });
  sockets.add(tcp);
  tcp.setNoDelay(true);
  const pending: Buffer[] = [];
  let connected = false;

  tcp.on('connect', () => {
    connected = true;
    for (const chunk of pending.splice(0)) tcp.write(chunk);
  });
  tcp.on('data', (chunk) => {
    if (socket.readyState === socket.OPEN) socket.send(chunk);
  });
  tcp.on('error', (error: NodeJS.ErrnoException) => {
    if (!connected && socket.readyState === socket.OPEN) {
      // Say why in the protocol the client speaks, instead of a bare close it cannot explain.
      socket.send(postgresError('08001', `bridge could not connect to ${target}: ${error.code ?? error.message}`));
      socket.close();
    } else {
      socket.terminate();
    }
  });
  tcp.on('close', () => {
    sockets.delete(tcp);
    if (socket.readyState === socket.OPEN) socket.close();
  });
  socket.on('message', (data) => {
    const chunk = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    if (connected) tcp.write(chunk);
    else pending.push(chunk);
  });
  socket.on('close', () => tcp.end());
  socket.on('error', () => tcp.destroy());
}

/** The host of a host:port target, without IPv6 brackets. */
function targetHost(target: string): string {
  return target.slice(0, target.lastIndexOf(':')).replace(/^\[|\]$/g, '');
}

/** The host:port a bridge must relay to for `databaseUrl`: the entry for `allow`. */
export function bridgeTarget(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  return `${url.hostname.replace(/^\[|\]$/g, '')}:${url.port || '5432'}`;
}

export async function startBridge(options: BridgeOptions = {}): Promise<Bridge> {
  const host = options.host ?? '127.0.0.1';
  if (!isLoopbackHost(host)) throw new Error(`the bridge listens on loopback only, not ${host}: it relays plain text`);
  const server = createServer();
  const wss = new WebSocketServer({
    server,
    // Browsers always send Origin on a WebSocket handshake; the Neon driver under Node never does.
    verifyClient: (info, done) => (info.req.headers.origin === undefined ? done(true) : done(false, 403, 'Origin not allowed')),
  });
  const sockets = new Set<net.Socket>();
  const allowed = options.allow?.map((a) => a.toLowerCase());
  const remote = allowed?.find((a) => !isLoopbackHost(targetHost(a)));
  if (remote) throw new Error(`the bridge relays to loopback databases only, not ${remote}: it speaks plain text; reach a remote database directly over TLS`);

  wss.on('connection', (socket, request) => {
    const target = new URL(request.url ?? '/', 'http://bridge').searchParams.get('address');
    if (
      !target ||
      !/^[^\s]+:\d{1,5}$/.test(target) ||
      !isLoopbackHost(targetHost(target)) ||
      (allowed && !allowed.includes(target.toLowerCase()))
    ) {
      socket.close(1008, 'address not allowed');
      return;
    }
    relay(socket, target, sockets);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    proxy: `${host}:${port}/v1`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const client of wss.clients) client.terminate();
        for (const tcp of sockets) tcp.destroy();
        wss.close();
        server.close(() => resolve());
      }),
  };
}
