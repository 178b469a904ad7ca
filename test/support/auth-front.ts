/**
 * A plain-http front for the real Pushgateway on loopback that demands one
 * bearer token (401 otherwise) and forwards the rest; the test may change the
 * token (a rotation on the gateway's side).
 */

import { createServer, type Server } from 'node:http';
import { listenOnLoopback } from '../../scripts/support/net';
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
  const server: Server = createServer((req, res) => {
    if (req.headers.authorization !== `Bearer ${state.token}`) {
      state.refused += 1;
      req.resume();
      res.writeHead(401, { 'www-authenticate': 'Bearer', 'content-type': 'text/plain' }).end('unauthorized');
      return;
    }
    forward(req, res, target);
  });
  const listener = await listenOnLoopback(server);
  return {
    url: `http://127.0.0.1:${listener.port}`,
    get token() {
      return state.token;
    },
    set token(t: string) {
      state.token = t;
    },
    refused: () => state.refused,
    close: listener.close,
  };
}
