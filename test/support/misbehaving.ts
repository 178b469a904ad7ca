/**
 * Real servers on loopback that misbehave the ways the platform's peers do:
 * a gateway that answers slowly, one that trickles bytes, a database that
 * accepts and never answers (at the TCP, WebSocket or Postgres-protocol level),
 * and a WebSocket peer that never closes. Each counts its open connections, so
 * a test can see from the peer's side that the client really let go.
 *
 * Also here: a census of the process's active resources (sockets, servers,
 * timers), to prove that nothing a tick opened outlives it.
 */

import { createHash } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';

export interface Misbehaving {
  /** http://127.0.0.1:port for gateways, host:port[/v1] for the others. */
  address: string;
  port: number;
  /** Requests or connections received so far. */
  received(): number;
  /** Connections the peer still holds open. */
  open(): number;
  close(): Promise<void>;
}

/** Track every socket of a server so close() can end them and open() can count them. */
function tracked(server: net.Server) {
  const sockets = new Set<net.Socket>();
  let received = 0;
  server.on('connection', (socket: net.Socket) => {
    received += 1;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  return {
    received: () => received,
    open: () => sockets.size,
    destroyAll: () => {
      for (const socket of sockets) socket.destroy();
    },
  };
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

function closer(server: net.Server, destroyAll: () => void): () => Promise<void> {
  return () =>
    new Promise<void>((resolve) => {
      destroyAll();
      server.close(() => resolve());
    });
}

/** An HTTP server whose every request runs `handle`; counts requests (not connections). */
async function httpMisbehaving(
  handle: (req: IncomingMessage, res: ServerResponse, onGone: (cleanup: () => void) => void) => void,
): Promise<Misbehaving> {
  let requests = 0;
  const server = createHttpServer((req, res) => {
    requests += 1;
    const cleanups: (() => void)[] = [];
    res.on('close', () => cleanups.splice(0).forEach((f) => f()));
    // Read the body first, as a real gateway does, then misbehave.
    req.resume();
    req.on('end', () => handle(req, res, (f) => cleanups.push(f)));
  });
  const t = tracked(server);
  const port = await listen(server);
  return {
    address: `http://127.0.0.1:${port}`,
    port,
    received: () => requests,
    open: t.open,
    close: closer(server, t.destroyAll),
  };
}

/** A gateway that reads the push and answers 200 only after `delayMs` (far beyond any deadline). */
export function slowGateway(delayMs = 120_000): Promise<Misbehaving> {
  return httpMisbehaving((_req, res, onGone) => {
    const timer = setTimeout(() => res.writeHead(200).end(), delayMs);
    onGone(() => clearTimeout(timer));
  });
}

export interface TricklingGateway extends Misbehaving {
  /** Body bytes written so far, over all requests. */
  bytesSent(): number;
}

/**
 * A gateway that answers 200 at once, then sends one body byte every
 * `intervalMs` and never ends: the socket is never idle for long, so an idle
 * timeout (prom-client's `timeout`) longer than the interval never trips.
 */
export async function tricklingGateway(intervalMs = 1_000): Promise<TricklingGateway> {
  let bytes = 0;
  const gateway = await httpMisbehaving((_req, res, onGone) => {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.flushHeaders();
    const timer = setInterval(() => {
      res.write('.');
      bytes += 1;
    }, intervalMs);
    onGone(() => clearInterval(timer));
  });
  return { ...gateway, bytesSent: () => bytes };
}

/** A TCP server that accepts and never sends a byte (a black-holed database or proxy). */
export async function silentTcpServer(): Promise<Misbehaving> {
  // Reads and drops what it is sent (so it notices when the client hangs up); answers nothing.
  const server = net.createServer((socket) => socket.resume());
  const t = tracked(server);
  const port = await listen(server);
  return { address: `127.0.0.1:${port}`, port, received: t.received, open: t.open, close: closer(server, t.destroyAll) };
}

/** A WebSocket server that completes the upgrade, then never sends a message (DATABASE_WS_PROXY target). */
export async function silentWebSocketServer(): Promise<Misbehaving> {
  const server = createHttpServer();
  const wss = new WebSocketServer({ server });
  let upgrades = 0;
  wss.on('connection', (socket) => {
    upgrades += 1;
    socket.on('error', () => {});
  });
  const t = tracked(server);
  const port = await listen(server);
  const close = closer(server, t.destroyAll);
  return {
    address: `127.0.0.1:${port}/v1`,
    port,
    received: () => upgrades,
    open: t.open,
    close: async () => {
      wss.close();
      await close();
    },
  };
}

/**
 * A Postgres that lets the client in (AuthenticationOk, ReadyForQuery) and then
 * never answers a query: connect succeeds, the statement hangs. Reached through
 * the WebSocket bridge like a real one.
 */
export async function silentPostgres(): Promise<Misbehaving> {
  const server = net.createServer((socket) => {
    let startup: Buffer = Buffer.alloc(0);
    let started = false;
    socket.on('data', (chunk) => {
      if (started) return; // queries: swallowed, never answered
      startup = Buffer.concat([startup, chunk]);
      if (startup.length < 4 || startup.length < startup.readInt32BE(0)) return;
      started = true;
      const authOk = Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0]); // 'R' AuthenticationOk
      const ready = Buffer.from([0x5a, 0, 0, 0, 5, 0x49]); // 'Z' ReadyForQuery, idle
      socket.write(Buffer.concat([authOk, ready]));
    });
  });
  const t = tracked(server);
  const port = await listen(server);
  return { address: `127.0.0.1:${port}`, port, received: t.received, open: t.open, close: closer(server, t.destroyAll) };
}

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function frame(payload: Buffer): Buffer {
  const head =
    payload.length < 126
      ? Buffer.from([0x82, payload.length])
      : payload.length < 65_536
        ? Buffer.from([0x82, 126, payload.length >> 8, payload.length & 0xff])
        : Buffer.concat([Buffer.from([0x82, 127]), Buffer.from(new BigUint64Array([BigInt(payload.length)]).buffer).reverse()]);
  return Buffer.concat([head, payload]);
}

/** Parse complete client frames from `buffer`; returns them and the unread rest. */
function parseFrames(buffer: Buffer): { frames: { opcode: number; payload: Buffer }[]; rest: Buffer } {
  const frames: { opcode: number; payload: Buffer }[] = [];
  let at = 0;
  for (;;) {
    if (buffer.length - at < 2) break;
    const opcode = buffer[at]! & 0x0f;
    const masked = (buffer[at + 1]! & 0x80) !== 0;
    let length = buffer[at + 1]! & 0x7f;
    let offset = at + 2;
    if (length === 126) {
      if (buffer.length < offset + 2) break;
      length = buffer.readUInt16BE(offset);
      offset += 2;
    } else if (length === 127) {
      if (buffer.length < offset + 8) break;
      length = Number(buffer.readBigUInt64BE(offset));
      offset += 8;
    }
    const maskLength = masked ? 4 : 0;
    if (buffer.length < offset + maskLength + length) break;
    const mask = buffer.subarray(offset, offset + maskLength);
    const payload = Buffer.from(buffer.subarray(offset + maskLength, offset + maskLength + length));
    if (masked) for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!;
    frames.push({ opcode, payload });
    at = offset + maskLength + length;
  }
  return { frames, rest: buffer.subarray(at) };
}

export interface StubbornPeer extends Misbehaving {
  /** Close frames the client sent (and got no answer to). */
  closeFramesIgnored(): number;
  /** Times Postgres hung up behind the peer (after the client's Terminate) while the WebSocket stayed open. */
  upstreamHangups(): number;
}

/**
 * A WebSocket-to-TCP bridge (like scripts/bridge/bridge.ts) written by hand so it can do
 * what a well-behaved library never does: keep the WebSocket open after
 * Postgres hung up, and ignore the client's close frame. The query works; the
 * connection never closes from this side.
 */
export async function webSocketPeerThatNeverCloses(): Promise<StubbornPeer> {
  let closeFrames = 0;
  let hangups = 0;
  const upstreams = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    let buffer: Buffer = Buffer.alloc(0);
    let upstream: net.Socket | undefined;
    socket.on('close', () => upstream?.destroy());
    socket.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (!upstream) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buffer.subarray(0, end).toString('latin1');
        buffer = buffer.subarray(end + 4);
        const key = /^sec-websocket-key:\s*(\S+)/im.exec(head)?.[1] ?? '';
        const path = /^GET (\S+)/.exec(head)?.[1] ?? '/';
        const target = new URL(path, 'http://peer').searchParams.get('address') ?? '';
        const separator = target.lastIndexOf(':');
        const accept = createHash('sha1').update(key + WS_GUID).digest('base64');
        socket.write(
          `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
        );
        upstream = net.connect({ host: target.slice(0, separator), port: Number(target.slice(separator + 1)) });
        upstreams.add(upstream);
        upstream.on('error', () => {});
        upstream.on('close', () => {
          hangups += 1;
          upstreams.delete(upstream!);
        });
        upstream.on('data', (data) => socket.writable && socket.write(frame(data)));
        // Postgres hanging up does not close the WebSocket: that is the misbehaviour.
      }
      const { frames, rest } = parseFrames(buffer);
      buffer = rest;
      for (const f of frames) {
        if (f.opcode === 0x8) closeFrames += 1; // close: never answered
        else if (f.opcode <= 0x2 && !upstream.destroyed) upstream.write(f.payload);
      }
    });
  });
  const t = tracked(server);
  const port = await listen(server);
  return {
    address: `127.0.0.1:${port}/v1`,
    port,
    received: t.received,
    open: t.open,
    closeFramesIgnored: () => closeFrames,
    upstreamHangups: () => hangups,
    close: closer(server, () => {
      t.destroyAll();
      for (const u of upstreams) u.destroy();
    }),
  };
}

/** How many of each kind of active resource (TCPSocketWrap, Timeout, …) the process holds. */
export function resourceCensus(): Record<string, number> {
  const census: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) census[kind] = (census[kind] ?? 0) + 1;
  return census;
}

/** Kinds whose count is above the baseline (closing sockets take a turn of the loop to go). */
export function growth(baseline: Record<string, number>, now: Record<string, number> = resourceCensus()): Record<string, number> {
  const grown: Record<string, number> = {};
  for (const [kind, count] of Object.entries(now)) {
    const extra = count - (baseline[kind] ?? 0);
    if (extra > 0) grown[kind] = extra;
  }
  return grown;
}

/** Wait (up to `withinMs`) for the process to hold no more resources than `baseline`; returns what is left over. */
export async function settleTo(baseline: Record<string, number>, withinMs = 2_000): Promise<Record<string, number>> {
  const until = Date.now() + withinMs;
  let grown = growth(baseline);
  while (Object.keys(grown).length > 0 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 20));
    grown = growth(baseline);
  }
  return grown;
}

/** Wait (up to `withinMs`) until `count()` is 0: the peer saw every connection closed. */
export async function untilZero(count: () => number, withinMs = 2_000): Promise<number> {
  const until = Date.now() + withinMs;
  while (count() > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  return count();
}
