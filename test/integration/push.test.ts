/**
 * The push's HTTP against real local servers: what goes on the wire (PUT, the
 * group path, the exposition content type, the registry's text, no
 * keep-alive), and which failures are retried. Retry decisions rest on the
 * response's status and the error's code, never on the wording of a message.
 */

import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import url from 'node:url';
import { Gauge, Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { PushgatewayConfig } from '../../lib/config/types';
import { deadlineIn } from '../../lib/core/deadline';
import { SinkError } from '../../lib/sinks/errors';
import { pushToGateway } from '../../lib/sinks/pushgateway';
import { selfSignedCertificate, type Certificate } from '../support/tls';

interface Seen {
  method: string | undefined;
  path: string | undefined;
  headers: IncomingMessage['headers'];
  body: string;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** An HTTP server that answers each request with the next of `statuses` (the last one repeats) and records it. */
async function gateway(statuses: number[], body = 'test body'): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method, path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const status = statuses[Math.min(seen.length - 1, statuses.length - 1)]!;
      res.writeHead(status, { 'content-type': 'text/plain' }).end(status < 300 ? '' : body);
    });
  });
  const address = await listen(server);
  return { url: `http://${address}`, seen, close: () => new Promise((r) => server.close(() => r())) };
}

function config(gatewayUrl: string, overrides: Partial<PushgatewayConfig> = {}): PushgatewayConfig {
  return { url: gatewayUrl, job: 'xyn_push', grouping: { env: 'prod', region: 'eu west' }, auth: undefined, ca: undefined, ...overrides } as PushgatewayConfig;
}

function registry(): Registry {
  const r = new Registry();
  new Gauge({ name: 'xyn_test_value', help: 'a test gauge', registers: [r] }).set(42);
  return r;
}

const options = { attemptTimeoutMs: 2_000, retries: 2 };

async function pushFailure(gatewayUrl: string, extra: Partial<PushgatewayConfig> = {}): Promise<SinkError> {
  const error = await pushToGateway(registry(), config(gatewayUrl, extra), deadlineIn(10_000), options).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SinkError);
  return error as SinkError;
}

describe('pushToGateway on the wire', () => {
  it('PUTs the registry text to the group path with the exposition content type and no keep-alive', async () => {
    const gw = await gateway([200]);
    try {
      const r = registry();
      const prefixed = `${gw.url}/behind/a/proxy`;
      const result = await pushToGateway(r, config(prefixed), deadlineIn(5_000), options);
      expect(result).toEqual({ attempts: 1 });
      expect(gw.seen).toHaveLength(1);
      const [request] = gw.seen;
      expect(request!.method).toBe('PUT');
      expect(request!.path).toBe('/behind/a/proxy/metrics/job/xyn_push/env/prod/region/eu%20west');
      expect(request!.headers['content-type']).toBe(r.contentType);
      expect(request!.headers.connection).toBe('close');
      expect(request!.body).toBe(await r.metrics());
    } finally {
      await gw.close();
    }
  });

  it('never calls the deprecated url.parse() (DEP0169, logged as an ERROR by the Lambda runtime client on Node 24)', async () => {
    const gw = await gateway([200]);
    const parse = vi.spyOn(url, 'parse');
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      await pushToGateway(registry(), config(gw.url), deadlineIn(5_000), options);
      await new Promise((r) => setImmediate(r));
      expect(parse).not.toHaveBeenCalled();
      expect(warnings.filter((w) => /DEP0169|url\.parse/.test(`${(w as { code?: string }).code} ${w.message}`))).toEqual([]);
    } finally {
      process.off('warning', onWarning);
      parse.mockRestore();
      await gw.close();
    }
  });
});

describe('pushToGateway retries from facts', () => {
  it.each([
    [400, 1],
    [401, 1],
    [404, 1],
    [429, 3],
    [500, 3],
    [503, 3],
  ])('HTTP %i: %i attempt(s)', async (status, attempts) => {
    // The body mimics other wording on purpose: only the response's status decides.
    const gw = await gateway([status], 'push failed with status 503, try again');
    try {
      const error = await pushFailure(gw.url);
      expect(error.attempts).toBe(attempts);
      expect(gw.seen).toHaveLength(attempts);
      expect(error.message).toMatch(new RegExp(`failed after ${attempts} attempts?: HTTP ${status}: push failed with status 503, try again$`));
    } finally {
      await gw.close();
    }
  });

  it('a 503 then a 200 succeeds on the second attempt', async () => {
    const gw = await gateway([503, 200]);
    try {
      expect(await pushToGateway(registry(), config(gw.url), deadlineIn(10_000), options)).toEqual({ attempts: 2 });
    } finally {
      await gw.close();
    }
  });

  it('a refused connection is retried', async () => {
    const gw = await gateway([200]);
    await gw.close();
    const error = await pushFailure(gw.url);
    expect(error.attempts).toBe(3);
    expect(error.message).toMatch(/ECONNREFUSED/);
  });

  describe('TLS', () => {
    let cert: Certificate;
    let server: Server;
    let address: string;
    let requests = 0;
    beforeAll(async () => {
      cert = selfSignedCertificate('IP:127.0.0.1');
      server = createHttpsServer({ cert: cert.cert, key: cert.key }, (req, res) => {
        requests += 1;
        req.resume();
        res.writeHead(200).end();
      }) as unknown as Server;
      server.on('tlsClientError', () => {});
      address = await listen(server);
    });
    afterAll(async () => {
      await new Promise((r) => server?.close(() => r(undefined)));
      cert?.dispose();
    });

    it('a certificate that does not verify is never retried', async () => {
      const error = await pushFailure(`https://${address}`);
      expect(error.attempts).toBe(1);
      expect(error.message).toMatch(/failed after 1 attempt: self[- ]signed certificate/i);
      expect(requests).toBe(0);
    });

    it('with the CA bundle it verifies and pushes', async () => {
      const result = await pushToGateway(registry(), config(`https://${address}`, { ca: readFileSync(cert.certFile, 'utf8') }), deadlineIn(5_000), options);
      expect(result).toEqual({ attempts: 1 });
      expect(requests).toBe(1);
    });
  });
});
