/**
 * `npm run collect`: the handler's code path once, reaching the database as
 * the deployed function does (no bridge of its own).
 */

import { execFile } from 'node:child_process';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bridgeTarget, startBridge } from '../../scripts/bridge/bridge';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { selfSignedCertificate } from '../support/tls';
import { sample, startPushgateway, type TestPushgateway } from '../support/pushgateway';
import { runEnv } from '../../scripts/support/test-run';

const run = promisify(execFile);
let db: TestDatabase;
let gateway: TestPushgateway;

beforeAll(async () => {
  db = await createTestDatabase('cli');
  gateway = await startPushgateway();
  await db.query(`INSERT INTO ${db.table} (status, run_at, queued_at) VALUES ('QUEUED', now(), now() - interval '5 seconds'), ('QUEUED', now() + interval '1 hour', now())`);
});
afterAll(async () => {
  await gateway?.stop();
  await db?.close();
});

async function cli(env: Record<string, string>) {
  const base = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...runEnv() };
  try {
    const { stdout, stderr } = await run('npx', ['tsx', 'scripts/collect.ts'], { env: { ...base, ...env }, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('npm run collect', () => {
  it('prints the exposition text and pushes when PUSHGATEWAY_URL is set', async () => {
    const { code, stdout, stderr } = await cli({ DATABASE_URL: db.url, RUNS_TABLE: db.table, PUSHGATEWAY_URL: gateway.url });
    expect(code, stderr).toBe(0);
    expect(sample(stdout, 'xyn_queue_ready_depth')).toBe(1);
    expect(sample(stdout, 'xyn_queue_future_depth')).toBe(1);
    expect(sample(await gateway.scrape(), 'xyn_queue_depth', { job: 'xyn_metrics', status: 'QUEUED' })).toBe(2);
  });

  it('runs without a gateway and exits 0', async () => {
    const { code, stdout } = await cli({ DATABASE_URL: db.url, RUNS_TABLE: db.table });
    expect(code).toBe(0);
    expect(sample(stdout, 'xyn_collector_up')).toBe(1);
  });

  it('exits non-zero with one line naming the cause', async () => {
    const { code, stderr } = await cli({ DATABASE_URL: db.url, RUNS_TABLE: `${db.schema}.missing` });
    expect(code).toBe(1);
    const last = stderr.trim().split('\n').at(-1)!;
    expect(last).toMatch(/^xyn-metrics: database 127\.0\.0\.1: relation ".*missing" does not exist/);
  });

  it('names a wrong password without printing it', async () => {
    const wrong = new URL(db.url);
    wrong.password = 'Hidden-Pass-1';
    const { code, stdout, stderr } = await cli({ DATABASE_URL: wrong.toString(), RUNS_TABLE: db.table });
    expect(code).toBe(1);
    expect(stderr.trim().split('\n').at(-1)).toMatch(new RegExp(`password authentication failed for user "${decodeURIComponent(wrong.username)}"`));
    expect(stdout + stderr).not.toContain('Hidden-Pass-1');
  });

  it('exits 2 on bad configuration, naming the variable', async () => {
    const { code, stderr } = await cli({ DATABASE_URL: 'localhost:5432/db' });
    expect(code).toBe(2);
    expect(stderr.trim()).toMatch(/^xyn-metrics: DATABASE_URL /);
  });

  it('refuses plain text to a remote database with one line saying why, before any connection', async () => {
    const { code, stdout, stderr } = await cli({ DATABASE_URL: 'postgresql://xyn:Hidden-Pass-2@db.example.invalid:5432/xyn?sslmode=disable' });
    expect(code).toBe(2);
    expect(stderr.trim()).toMatch(/^xyn-metrics: DATABASE_URL sslmode=disable may send the session to db\.example\.invalid in clear text; .*DATABASE_ALLOW_PLAINTEXT=true$/);
    expect(stdout + stderr).not.toContain('Hidden-Pass-2');
  });

  it('reaches a database through a remote-style Neon-compatible proxy over wss://, its certificate checked', async () => {
    // A TLS front (test certificate for 127.0.0.1) before the bridge: what a wsproxy behind TLS looks like.
    const certificate = selfSignedCertificate('IP:127.0.0.1');
    const bridge = await startBridge({ allow: [bridgeTarget(db.url)] });
    const sockets = new Set<net.Socket>();
    const front = tls.createServer({ cert: certificate.cert, key: certificate.key }, (client) => {
      const upstream = net.connect(bridge.port, '127.0.0.1');
      sockets.add(client).add(upstream);
      client.pipe(upstream).pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    });
    front.on('tlsClientError', () => {});
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    const proxy = `wss://127.0.0.1:${(front.address() as AddressInfo).port}/v1`;
    try {
      // Node's public CAs do not know the test certificate: refused.
      const refused = await cli({ DATABASE_URL: db.url, RUNS_TABLE: db.table, DATABASE_WS_PROXY: proxy });
      expect(refused.code).toBe(1);
      expect(refused.stderr.trim().split('\n').at(-1)).toMatch(/self[- ]signed certificate/i);
      // Trusted (as a private CA would be), the tick reads the queue through the proxy.
      const ok = await cli({ DATABASE_URL: db.url, RUNS_TABLE: db.table, DATABASE_WS_PROXY: proxy, NODE_EXTRA_CA_CERTS: certificate.certFile });
      expect(ok.code, ok.stderr).toBe(0);
      expect(sample(ok.stdout, 'xyn_queue_ready_depth')).toBe(1);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => front.close(resolve));
      await bridge.close();
      certificate.dispose();
    }
  });
});
