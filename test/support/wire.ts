/**
 * A TCP tap between the bridge and PostgreSQL that records every simple-query
 * ('Q') message the collector sends, so a test can see on the wire how many
 * round trips a tick makes and which SELECTs its batch holds; and every byte
 * each way, so a test can see what a TLS session leaves readable.
 */

import net, { type AddressInfo } from 'node:net';

export interface WireTap {
  /** DATABASE_URL through the tap. */
  url: string;
  /** The SQL of every 'Q' message so far, in order. */
  queries(): string[];
  /** Every byte the client sent, all connections in order. */
  sent(): Buffer;
  /** Every byte the server sent. */
  received(): Buffer;
  close(): Promise<void>;
}

/** Frontend messages after the untyped startup message: type byte, int32 length, body. */
function parseFrontend(buffer: Buffer, startupSeen: boolean, out: string[]): { rest: Buffer; startupSeen: boolean } {
  let offset = 0;
  let seen = startupSeen;
  for (;;) {
    if (!seen) {
      if (buffer.length - offset < 4) break;
      const length = buffer.readInt32BE(offset);
      if (buffer.length - offset < length) break;
      offset += length;
      seen = true;
      continue;
    }
    if (buffer.length - offset < 5) break;
    const length = buffer.readInt32BE(offset + 1);
    if (buffer.length - offset < 1 + length) break;
    if (buffer[offset] === 0x51 /* Q */) {
      out.push(buffer.subarray(offset + 5, offset + 1 + length - 1).toString('utf8'));
    }
    offset += 1 + length;
  }
  return { rest: buffer.subarray(offset), startupSeen: seen };
}

export async function startWireTap(targetUrl: string): Promise<WireTap> {
  const target = new URL(targetUrl);
  const queries: string[] = [];
  const sent: Buffer[] = [];
  const received: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: target.hostname, port: Number(target.port || 5432) });
    sockets.add(client).add(upstream);
    let pending: Buffer = Buffer.alloc(0);
    let startupSeen = false;
    client.on('data', (chunk) => {
      sent.push(chunk);
      ({ rest: pending, startupSeen } = parseFrontend(Buffer.concat([pending, chunk]), startupSeen, queries));
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => received.push(chunk));
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(targetUrl);
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as AddressInfo).port);
  return {
    url: url.toString(),
    queries: () => [...queries],
    sent: () => Buffer.concat(sent),
    received: () => Buffer.concat(received),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The SELECTs of a snapshot batch that read data (not the ones before each that set its share of the budget). */
export function batchSelects(batch: string): string[] {
  return batch.split(';\n').filter((s) => /^\s*(SELECT|WITH)\b/i.test(s) && !/^SELECT set_config\('statement_timeout'/.test(s));
}
