/**
 * A fault-injecting TCP proxy for the chaos soak (test/integration/chaos-soak.test.ts):
 * it sits in the real path between the collector and a real peer (PostgreSQL,
 * the WebSocket bridge, the Pushgateway) and relays bytes, except as the fault
 * armed for the current tick says:
 *
 *   healthy    relay both ways as they come;
 *   latency    every chunk, both ways, delayed by delayMs (order kept; ends too);
 *   reset      relay the request, then after afterBytes of the answer send an
 *              RST to the client (socket.resetAndDestroy()) and drop the peer:
 *              a connection reset in the middle of a read;
 *   blackhole  accept, read and drop what the client sends, never connect to
 *              the peer, never answer;
 *   trickle    relay the request; the answer goes out `bytes` bytes every
 *              everyMs (a peer that is never idle, so an idle timeout never trips);
 *   refused    no listener on the port for the tick: a real ECONNREFUSED from
 *              the kernel (the port is listened on again afterwards).
 *
 * A fault applies to every connection of the tick (scope 'every'), or only to
 * the first one (scope 'first': a retry or a reconnect then meets a healthy path).
 *
 * The proxy never holds a socket the client has let go of: when either side
 * closes hard, both are destroyed and every pending timer is cleared, so an
 * open-descriptor count of the process measures the collector, not the proxy.
 * disarm() waits for the tick's connections to close and reports any the
 * client kept open (then destroys them).
 */

import net, { type AddressInfo } from 'node:net';

export const FAULT_KINDS = ['healthy', 'latency', 'reset', 'blackhole', 'trickle', 'refused'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export type Fault =
  | { kind: 'healthy' }
  | { kind: 'latency'; delayMs: number }
  | { kind: 'reset'; afterBytes: number }
  | { kind: 'blackhole' }
  | { kind: 'trickle'; bytes: number; everyMs: number }
  | { kind: 'refused' };

export interface Plan {
  fault: Fault;
  /** 'every' connection of the tick, or only the 'first' (later ones are healthy). */
  scope: 'every' | 'first';
}

export interface Upstream {
  host: string;
  port: number;
}

export interface TickReport {
  plan: Plan;
  /** Connections accepted while the plan was armed. */
  connections: number;
  /** Connections on which the fault took effect (refused: 1 when the port was closed for the tick). */
  affected: number;
  /** Connections the client had not closed within disarm's grace (the proxy destroyed them). */
  lingering: number;
  /** Bytes relayed client → peer and peer → client during the tick. */
  bytesUp: number;
  bytesDown: number;
}

export interface FaultTotals {
  /** Ticks on which this fault was armed. */
  armed: number;
  /** Ticks on which it took effect on at least one connection. */
  applied: number;
  /** Connections it took effect on. */
  connections: number;
}

export interface ChaosProxy {
  readonly name: string;
  /** The port clients connect to (it changes only if the port was taken while a refused tick had it closed). */
  readonly port: number;
  /** Where healthy traffic goes; may change between ticks. */
  upstream: Upstream;
  /** Arm a plan for the next tick (closes the listener for 'refused'). */
  arm(plan: Plan): Promise<void>;
  /** End the tick: wait up to graceMs for its connections to close, destroy what is left, listen again. */
  disarm(graceMs?: number): Promise<TickReport>;
  /** Sockets (client and peer sides) the proxy holds now. */
  open(): number;
  totals(): Record<FaultKind, FaultTotals>;
  /** Times the port could not be listened on again after a refused tick (another process took it). */
  portChanges(): number;
  close(): Promise<void>;
}

interface Connection {
  client: net.Socket;
  peer: net.Socket | undefined;
  timers: Set<NodeJS.Timeout>;
  closed: boolean;
  kill(): void;
}

/** Where relayed bytes go: a socket, possibly through a delay or a trickle. */
interface Pipe {
  write(chunk: Buffer): void;
  end(): void;
}

const writable = (socket: net.Socket) => !socket.destroyed && socket.writable;

function direct(to: net.Socket): Pipe {
  return {
    write: (chunk) => void (writable(to) && to.write(chunk)),
    end: () => void (writable(to) && to.end()),
  };
}

/** Every chunk and the end `ms` later; equal delays keep the order (one timer list per duration). */
function delayed(to: Pipe, ms: number, conn: Connection, onDelay: () => void): Pipe {
  const later = (f: () => void) => {
    onDelay();
    const timer = setTimeout(() => {
      conn.timers.delete(timer);
      if (!conn.closed) f();
    }, ms);
    conn.timers.add(timer);
  };
  return { write: (chunk) => later(() => to.write(chunk)), end: () => later(() => to.end()) };
}

/** `bytes` bytes every `everyMs`, the first at once; the end after the last byte. */
function trickled(to: Pipe, bytes: number, everyMs: number, conn: Connection, onTrickle: () => void): Pipe {
  let queue: Buffer = Buffer.alloc(0);
  let ended = false;
  let timer: NodeJS.Timeout | undefined;
  const pump = () => {
    timer = undefined;
    if (conn.closed) return;
    if (queue.length === 0) {
      if (ended) to.end();
      return;
    }
    onTrickle();
    to.write(queue.subarray(0, bytes));
    queue = queue.subarray(bytes);
    timer = setTimeout(pump, everyMs);
    conn.timers.add(timer);
  };
  return {
    write(chunk) {
      queue = Buffer.concat([queue, chunk]);
      if (timer === undefined) pump();
    },
    end() {
      ended = true;
      if (timer === undefined && queue.length === 0) to.end();
    },
  };
}

/** The first `afterBytes` of the answer, then an RST to the client and the peer dropped. */
function resetAfter(conn: Connection, afterBytes: number, onReset: () => void): Pipe {
  let sent = 0;
  let done = false;
  const reset = () => {
    if (conn.closed) return;
    onReset();
    conn.client.resetAndDestroy();
    conn.kill();
  };
  return {
    write(chunk) {
      if (done || conn.closed) return;
      const room = afterBytes - sent;
      if (room > chunk.length) {
        conn.client.write(chunk);
        sent += chunk.length;
        return;
      }
      done = true;
      // The part goes to the kernel first, so the client really reads it before the RST.
      if (room > 0) conn.client.write(chunk.subarray(0, room), reset);
      else reset();
    },
    // The answer ended before afterBytes: nothing to cut.
    end: () => void (!done && writable(conn.client) && conn.client.end()),
  };
}

export async function startChaosProxy(name: string, upstream: Upstream): Promise<ChaosProxy> {
  const host = '127.0.0.1';
  const connections = new Set<Connection>();
  const totals = Object.fromEntries(FAULT_KINDS.map((k) => [k, { armed: 0, applied: 0, connections: 0 }])) as Record<FaultKind, FaultTotals>;
  const healthy: Plan = { fault: { kind: 'healthy' }, scope: 'every' };
  let plan: Plan = healthy;
  let tick = { connections: 0, affected: 0, bytesUp: 0, bytesDown: 0, conns: new Set<Connection>() };
  let listening = false;
  let portChanges = 0;
  let port = 0;
  const state = { upstream };

  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const index = tick.connections;
    tick.connections += 1;
    const fault: Fault = plan.scope === 'every' || index === 0 ? plan.fault : { kind: 'healthy' };
    const counted = tick;
    let affected = false;
    const affect = () => {
      if (affected) return;
      affected = true;
      counted.affected += 1;
    };

    const conn: Connection = {
      client,
      peer: undefined,
      timers: new Set(),
      closed: false,
      kill() {
        if (conn.closed) return;
        conn.closed = true;
        for (const timer of conn.timers) clearTimeout(timer);
        conn.timers.clear();
        client.destroy();
        conn.peer?.destroy();
      },
    };
    connections.add(conn);
    counted.conns.add(conn);
    client.setNoDelay(true);
    client.on('error', () => conn.kill());
    client.on('close', () => conn.kill());

    // A healthy connection "took effect" by passing: the totals then count the ticks and connections relayed.
    if (fault.kind === 'healthy' && plan.fault.kind === 'healthy') affect();

    if (fault.kind === 'blackhole') {
      affect();
      client.resume(); // read and drop; never answer
      client.on('end', () => conn.kill());
      return;
    }

    const peer = net.connect({ host: state.upstream.host, port: state.upstream.port, allowHalfOpen: true });
    conn.peer = peer;
    peer.setNoDelay(true);
    peer.on('error', () => conn.kill());
    peer.on('close', () => {
      // A peer that hangs up cleanly has sent its end through the pipe to the client; a hard close cuts both.
      if (!conn.closed && (client.destroyed || !peer.readableEnded)) conn.kill();
    });

    let up: Pipe = direct(peer);
    let down: Pipe = direct(client);
    if (fault.kind === 'latency') {
      up = delayed(up, fault.delayMs, conn, affect);
      down = delayed(down, fault.delayMs, conn, affect);
    } else if (fault.kind === 'trickle') {
      down = trickled(down, fault.bytes, fault.everyMs, conn, affect);
    } else if (fault.kind === 'reset') {
      down = resetAfter(conn, fault.afterBytes, affect);
    }

    client.on('data', (chunk: Buffer) => {
      counted.bytesUp += chunk.length;
      up.write(chunk);
    });
    client.on('end', () => up.end());
    peer.on('data', (chunk: Buffer) => {
      counted.bytesDown += chunk.length;
      down.write(chunk);
    });
    peer.on('end', () => down.end());
    // Both halves ended: nothing more can pass.
    const both = () => {
      if (client.readableEnded && peer.readableEnded && client.writableFinished && peer.writableFinished) conn.kill();
    };
    for (const s of [client, peer]) {
      s.on('end', both);
      s.on('finish', both);
    }
  });
  server.on('error', () => {});

  const listen = (on: number) =>
    new Promise<number>((resolve, reject) => {
      const failed = (error: Error) => reject(error);
      server.once('error', failed);
      server.listen(on, host, () => {
        server.off('error', failed);
        listening = true;
        resolve((server.address() as AddressInfo).port);
      });
    });
  const held = (c: Connection) => !c.client.destroyed || (c.peer !== undefined && !c.peer.destroyed);
  const prune = () => {
    for (const c of connections) if (c.closed && !held(c)) connections.delete(c);
  };
  const stopListening = () =>
    new Promise<void>((resolve) => {
      listening = false;
      // The callback waits for open connections; the tick before has none left (disarm).
      server.close(() => resolve());
    });

  port = await listen(0);

  return {
    name,
    get port() {
      return port;
    },
    get upstream() {
      return state.upstream;
    },
    set upstream(target: Upstream) {
      state.upstream = target;
    },
    async arm(next) {
      plan = next;
      tick = { connections: 0, affected: 0, bytesUp: 0, bytesDown: 0, conns: new Set() };
      totals[next.fault.kind].armed += 1;
      if (next.fault.kind === 'refused' && listening) await stopListening();
    },
    async disarm(graceMs = 3_000) {
      const ending = tick;
      const armed = plan;
      const until = Date.now() + graceMs;
      const alive = () => [...ending.conns].filter((c) => !c.closed || held(c));
      while (alive().length > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
      const lingering = alive();
      for (const c of lingering) c.kill();
      prune();
      plan = healthy;
      if (armed.fault.kind === 'refused') ending.affected = 1;
      if (!listening) {
        try {
          port = await listen(port);
        } catch {
          // Taken while it was closed (an ephemeral port of another process): carry on elsewhere.
          portChanges += 1;
          port = await listen(0);
        }
      }
      const kind = armed.fault.kind;
      if (ending.affected > 0) totals[kind].applied += 1;
      totals[kind].connections += kind === 'refused' ? 0 : ending.affected;
      return {
        plan: armed,
        connections: ending.connections,
        affected: ending.affected,
        lingering: lingering.length,
        bytesUp: ending.bytesUp,
        bytesDown: ending.bytesDown,
      };
    },
    open: () => {
      prune();
      return [...connections].reduce((n, c) => n + (c.client.destroyed ? 0 : 1) + (c.peer && !c.peer.destroyed ? 1 : 0), 0);
    },
    totals: () => structuredClone(totals),
    portChanges: () => portChanges,
    async close() {
      for (const c of connections) c.kill();
      connections.clear();
      if (listening) await stopListening();
    },
  };
}
