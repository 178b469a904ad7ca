/**
 * The embedded demo database of `npm start`: PGlite (PostgreSQL compiled to
 * WebAssembly, in this process, in memory) served over TCP by pglite-socket, so
 * the collector reaches it exactly as it reaches a real server (Neon driver ->
 * WebSocket bridge -> TCP). The runs table is the production shape
 * (runs-schema.ts), seeded with a realistic queue.
 *
 * PGlite is one Postgres session shared by everyone: the socket server queues
 * each client message, and the in-process worker (demo-worker.ts) sends only
 * single, autocommitted statements, so neither ever runs inside the other's
 * transaction. The collector's whole read is one message (BEGIN ... COMMIT).
 */

import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runsSchemaSql } from '../support/runs-schema';

export interface DemoDatabase {
  /** postgresql://… URL of the socket server (no password: PGlite trusts every client). */
  url: string;
  host: string;
  port: number;
  /** The in-process database, for the simulated worker. */
  pg: PGlite;
  close(): Promise<void>;
}

export interface DemoDatabaseOptions {
  /** TCP port; 0 (default) picks a free one. */
  port?: number;
  /** Seed the demo queue (default true). */
  seed?: boolean;
}

/** Blueprints the demo runs belong to; only for realism in the payloads. */
export const DEMO_BLUEPRINTS = ['build', 'test', 'deploy', 'nightly-report', 'backfill'] as const;

/** A blueprint no simulated worker can run: its one run waits, so the oldest-ready gauge has a story. */
export const UNCLAIMED_BLUEPRINT = 'gpu-train';

const blueprintSql = `(ARRAY[${DEMO_BLUEPRINTS.map((b) => `'${b}'`).join(', ')}])[1 + floor(random() * ${DEMO_BLUEPRINTS.length})::int]`;

/**
 * A few hundred runs in every state a real queue shows:
 * - history: SUCCEEDED, FAILED and CANCELLED runs finished over the last hours;
 * - QUEUED runs ready now (queued over the last minutes, one stuck for a while),
 *   and QUEUED runs scheduled in the future (run_at ahead);
 * - RUNNING runs with live leases, and some whose lease has expired (a worker died).
 */
export function demoSeedSql(table = 'runs'): string {
  const t = `"${table}"`;
  return `
INSERT INTO ${t} (blueprint, status, queued_at, started_at, finished_at, worker_id, payload)
SELECT ${blueprintSql}, s.status::run_status,
       f - interval '40 seconds' - random() * interval '5 minutes',
       f - random() * interval '40 seconds', f, 'worker-' || (1 + g % 6), jsonb_build_object('seed', g)
FROM generate_series(1, 300) g,
     LATERAL (SELECT now() - random() * interval '6 hours' AS f) fin,
     LATERAL (SELECT CASE WHEN g % 20 = 0 THEN 'CANCELLED' WHEN g % 8 = 0 THEN 'FAILED' ELSE 'SUCCEEDED' END AS status) s;

-- Ready now: queued over the last ten minutes; a handful without run_at at all.
INSERT INTO ${t} (blueprint, status, run_at, queued_at, payload)
SELECT ${blueprintSql}, 'QUEUED', CASE WHEN g % 5 = 0 THEN NULL ELSE q END, q, jsonb_build_object('seed', g)
FROM generate_series(1, 35) g, LATERAL (SELECT now() - random() * interval '10 minutes' AS q) x;
-- One run no worker can take, waiting for 42 minutes already: the oldest-ready gauge has something to say.
INSERT INTO ${t} (blueprint, status, run_at, queued_at) VALUES ('${UNCLAIMED_BLUEPRINT}', 'QUEUED', NULL, now() - interval '42 minutes');

-- Scheduled for later: run_at from one minute to two hours ahead.
INSERT INTO ${t} (blueprint, status, run_at, queued_at, payload)
SELECT ${blueprintSql}, 'QUEUED', now() + interval '1 minute' + random() * interval '2 hours', now() - random() * interval '1 hour', jsonb_build_object('seed', g)
FROM generate_series(1, 30) g;

-- Running with a live lease (renewed by the simulated worker).
INSERT INTO ${t} (blueprint, status, queued_at, started_at, lease_expires_at, worker_id, payload)
SELECT ${blueprintSql}, 'RUNNING', now() - interval '2 minutes', now() - random() * interval '1 minute',
       now() + interval '10 seconds' + random() * interval '20 seconds', 'worker-' || (1 + g % 6), jsonb_build_object('seed', g)
FROM generate_series(1, 18) g;

-- Running with an expired lease: their worker is gone ("lost-…"), nobody renews them.
INSERT INTO ${t} (blueprint, status, queued_at, started_at, lease_expires_at, worker_id, payload)
SELECT ${blueprintSql}, 'RUNNING', now() - interval '15 minutes', now() - interval '12 minutes',
       now() - random() * interval '50 seconds', 'lost-worker-' || g, jsonb_build_object('seed', g)
FROM generate_series(1, 4) g;
ANALYZE ${t};
`;
}

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;

/**
 * Calls onTerminate when the client's byte stream carries a Terminate ('X')
 * message. Frames: untyped [int32 length][int32 code…] until the startup
 * message, then [type byte][int32 length including itself][body].
 */
export function terminateWatcher(onTerminate: () => void): (chunk: Buffer) => void {
  let buffer = Buffer.alloc(0);
  let started = false;
  return (chunk) => {
    buffer = Buffer.concat([buffer, chunk]);
    for (;;) {
      if (!started) {
        if (buffer.length < 8) return;
        const length = buffer.readInt32BE(0);
        const code = buffer.readInt32BE(4);
        if (buffer.length < length) return;
        buffer = buffer.subarray(length);
        if (code !== SSL_REQUEST && code !== GSSENC_REQUEST) started = true;
        continue;
      }
      if (buffer.length < 5) return;
      const type = buffer[0];
      const length = 1 + buffer.readInt32BE(1);
      if (type === 0x58) return onTerminate();
      if (buffer.length < length) return;
      buffer = buffer.subarray(length);
    }
  };
}

/**
 * The loopback TCP port in front of pglite-socket (which listens on a Unix
 * socket). pglite-socket ignores a client's Terminate message and keeps the
 * connection open, so a driver's clean close would wait for its timeout every
 * tick; this front closes the connection on Terminate, as Postgres does.
 */
async function startFront(target: string, port: number): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const backend = net.connect(target);
    sockets.add(client).add(backend);
    const watch = terminateWatcher(() => {
      client.end();
      backend.end();
    });
    client.on('data', (chunk: Buffer) => {
      watch(chunk);
      if (!backend.destroyed) backend.write(chunk);
    });
    backend.on('data', (chunk: Buffer) => {
      if (!client.destroyed) client.write(chunk);
    });
    const done = () => {
      client.destroy();
      backend.destroy();
      sockets.delete(client);
      sockets.delete(backend);
    };
    client.on('close', done).on('error', done);
    backend.on('close', done).on('error', done);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Where the initdb result is cached: initdb under WebAssembly takes 5-30 s, loading its dump a few. */
function templatePath(): string {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const manifest = join(root, 'node_modules', '@electric-sql', 'pglite', 'package.json');
  const version = (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version;
  return join(root, 'node_modules', '.cache', 'xyn-metrics', `pglite-${version}-template.tar.gz`);
}

/** An empty in-memory PGlite: from the cached template when there is one, else initdb (and cache it). */
async function createPglite(): Promise<PGlite> {
  const template = templatePath();
  if (existsSync(template)) {
    try {
      return await PGlite.create({ loadDataDir: new Blob([readFileSync(template)]) });
    } catch {
      rmSync(template, { force: true }); // unreadable: rebuild below
    }
  }
  const pg = await PGlite.create();
  try {
    const dump = Buffer.from(await (await pg.dumpDataDir('gzip')).arrayBuffer());
    mkdirSync(dirname(template), { recursive: true });
    // Rename is atomic: a concurrent start never reads half a file.
    const partial = `${template}.${process.pid}.partial`;
    writeFileSync(partial, dump);
    renameSync(partial, template);
  } catch {
    // Only a cache: a read-only checkout still works, just slower.
  }
  return pg;
}

export async function startDemoDatabase(options: DemoDatabaseOptions = {}): Promise<DemoDatabase> {
  const pg = await createPglite();
  const dir = mkdtempSync(join(tmpdir(), 'xyn-demo-db-'));
  const cleanups: Array<() => Promise<void>> = [
    async () => rmSync(dir, { recursive: true, force: true }),
    () => pg.close().catch(() => {}),
  ];
  const closeAll = async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup().catch(() => {});
  };
  try {
    await pg.exec(runsSchemaSql('public', 'runs'));
    if (options.seed ?? true) await pg.exec(demoSeedSql('runs'));

    // A few connections: a scheduled tick and an on-demand one may overlap.
    const path = join(dir, '.s.PGSQL');
    const server = new PGLiteSocketServer({ db: pg, path, maxConnections: 4 });
    await server.start();
    cleanups.unshift(() => server.stop().catch(() => {}));
    const front = await startFront(path, options.port ?? 0);
    cleanups.unshift(() => front.close());

    return {
      url: `postgresql://postgres@127.0.0.1:${front.port}/postgres`,
      host: '127.0.0.1',
      port: front.port,
      pg,
      close: closeAll,
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}
