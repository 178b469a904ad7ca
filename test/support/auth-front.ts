/**
 * A plain-http front for the real Pushgateway on loopback that demands one
 * bearer token (401 otherwise) and forwards the rest; the test may change the
 * token (a rotation on the gateway's side).
 */

import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { forward } from './faults';

export interface AuthFront {
  url: string;
  /** The token the front accepts now. */
  token: string;
  refused(): number;
  close(): Promise<void>;
}

export async function startAuthFront(target: string, token: string): Promise<AuthFront> {
  const state = { token, refused: 0 };
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    if (req.headers.authorization !== `Bearer ${state.token}`) {
      state.refused += 1;
      req.resume();
      res.writeHead(401, { 'www-authenticate': 'Bearer', 'content-type': 'text/plain' }).end('unauthorized');
      return;
    }
    forward(req, res, target);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get token() {
      return state.token;
    },
    set token(t: string) {
      state.token = t;
    },
    refused: () => state.refused,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
