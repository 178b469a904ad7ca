/**
 * An https front for the real Pushgateway: a self-signed certificate made by
 * openssl at test time, and an Authorization check (401 otherwise), so the
 * collector's certificate checks and credentials are exercised for real.
 */

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { listenOnLoopback } from '../../scripts/support/net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { forward } from './faults';

export interface Certificate {
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
  dispose(): void;
}

/** A self-signed certificate for `altName` (e.g. IP:127.0.0.1 or DNS:other.example). */
export function selfSignedCertificate(altName: string): Certificate {
  const dir = mkdtempSync(join(tmpdir(), 'xyn-tls-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  try {
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
        '-subj', '/CN=xyn-metrics test', '-addext', `subjectAltName=${altName}`, '-keyout', keyFile, '-out', certFile],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
  } catch (error) {
    throw new Error(`the TLS tests need openssl (apt-get install openssl): ${(error as Error).message}`);
  }
  return {
    certFile,
    keyFile,
    cert: readFileSync(certFile),
    key: readFileSync(keyFile),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface TlsFront {
  url: string;
  /** Authorization headers of the requests that reached the front. */
  authorizations: (string | undefined)[];
  close(): Promise<void>;
}

/** https on loopback; answers 401 unless the Authorization header is `expected`, else forwards to `target`. */
export async function startTlsFront(certificate: Certificate, target: string, expected: string): Promise<TlsFront> {
  const authorizations: (string | undefined)[] = [];
  const server: Server = createServer({ cert: certificate.cert, key: certificate.key }, (req, res) => {
    authorizations.push(req.headers.authorization);
    if (req.headers.authorization !== expected) {
      req.resume();
      res.writeHead(401, { 'www-authenticate': 'Bearer', 'content-type': 'text/plain' }).end('unauthorized');
      return;
    }
    forward(req, res, target);
  });
  // Handshakes the client aborts (bad certificate) are expected here.
  server.on('tlsClientError', () => {});
  const listener = await listenOnLoopback(server);
  return {
    url: `https://127.0.0.1:${listener.port}`,
    authorizations,
    close: listener.close,
  };
}
