/**
 * Shared harness of the fault, overlap, soak and security suites: the real
 * handler invoked as Lambda does, against a real PostgreSQL (through the real
 * Neon driver and the bridge) and a real Pushgateway, plus small loopback
 * servers that misbehave on purpose.
 */

import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { expect } from 'vitest';
import { collect } from '../../functions/collect';
import { startBridge, type Bridge } from '../../scripts/bridge/bridge';
import { captureOutput, lambdaContext, scheduledEvent, withEnv } from './lambda';
import { adminClient, createTestDatabase, type TestDatabase } from './postgres';
import { sample, samples, startPushgateway, type TestPushgateway } from './pushgateway';

/**
 * Debian's pushgateway persists to /var/lib/prometheus/pushgateway.data by
 * default, so every gateway a test starts would load (and on exit overwrite)
 * the groups of every other test run on the machine. An empty
 * --persistence.file keeps each one in memory, on its own.
 */
export function startIsolatedPushgateway(): Promise<TestPushgateway> {
  return startPushgateway(['--persistence.file=']);
}

export interface Stack {
  /** Admin access to the test schema (superuser). */
  db: TestDatabase;
  /** The collector's own role: SELECT on the test schema, nothing else. */
  reader: TestRole;
  gateway: TestPushgateway;
  bridge: Bridge;
  close(): Promise<void>;
}

export async function startStack(prefix: string): Promise<Stack> {
  const db = await createTestDatabase(prefix);
  const reader = await createReaderRole(db, { iterations: 16 });
  const gateway = await startIsolatedPushgateway();
  const bridge = await startBridge();
  return {
    db,
    reader,
    gateway,
    bridge,
    async close() {
      await bridge.close();
      await gateway.stop();
      await reader.drop();
      await db.close();
    },
  };
}

/** The environment of a healthy tick against the stack. */
export function baseEnv(stack: Stack, job = 'xyn_metrics'): Record<string, string | undefined> {
  return {
    DATABASE_URL: stack.reader.url,
    DATABASE_WS_PROXY: stack.bridge.proxy,
    PUSHGATEWAY_URL: stack.gateway.url,
    PUSHGATEWAY_JOB: job,
    PUSHGATEWAY_USERNAME: undefined,
    PUSHGATEWAY_PASSWORD: undefined,
    PUSHGATEWAY_TOKEN: undefined,
    PUSHGATEWAY_CA_FILE: undefined,
    PUSHGATEWAY_GROUPING: undefined,
    PUSH_DRY_RUN: undefined,
    RUNS_TABLE: stack.db.table,
    TICK_TIMEOUT_MS: undefined,
    DB_STATEMENT_TIMEOUT_MS: undefined,
    DB_LOCK_TIMEOUT_MS: undefined,
    PUSH_TIMEOUT_MS: undefined,
    PUSH_RETRIES: undefined,
    MAX_EVENT_AGE_SECONDS: undefined,
    STATUS_ESTIMATE_ABOVE: undefined,
  };
}

export interface Invocation {
  output: string;
  result?: unknown;
  error?: unknown;
  elapsedMs: number;
}

/** One invocation of the real handler with a scheduled event and a Lambda context. */
export async function invokeCollect(env: Record<string, string | undefined>, lambdaTimeoutMs = 30_000): Promise<Invocation> {
  return withEnv(env, async () => {
    const started = Date.now();
    const run = await captureOutput(() => collect(scheduledEvent(), lambdaContext(lambdaTimeoutMs)));
    return { ...run, elapsedMs: Date.now() - started };
  });
}

/** The invocation failed inside its budget with one line naming the cause. */
export function expectCleanFailure(run: Invocation, cause: RegExp, budgetMs: number): string {
  expect(run.error, `expected a failure, got ${JSON.stringify(run.result)}`).toBeInstanceOf(Error);
  const message = (run.error as Error).message;
  expect(message.split('\n'), message).toHaveLength(1);
  expect(message.startsWith('xyn-metrics '), message).toBe(true);
  expect(message).toMatch(cause);
  expect(run.elapsedMs, `took ${run.elapsedMs} ms`).toBeLessThan(budgetMs);
  // The log line says the same, as one JSON line at level error.
  const lines = run.output.trim().split('\n');
  expect(lines, run.output).toHaveLength(1);
  const line = JSON.parse(lines[0]!) as { level: string; error: string };
  expect(line.level).toBe('error');
  expect(line.error).toMatch(cause);
  return message;
}

export function expectOk(run: Invocation): void {
  expect(run.error, run.error instanceof Error ? run.error.message : undefined).toBeUndefined();
  expect(run.result).toMatchObject({ outcome: 'ok' });
}

export const QUEUE_GAUGES = [
  'xyn_queue_depth',
  'xyn_queue_depth_estimated',
  'xyn_queue_ready_depth',
  'xyn_queue_future_depth',
  'xyn_queue_oldest_ready_seconds',
  'xyn_queue_oldest_due_seconds',
  'xyn_running_with_expired_lease',
  'xyn_running_with_active_lease',
  'xyn_running_without_lease',
] as const;

/** The group says the collector failed and holds no queue value at all. */
export function expectMarkedFailed(text: string, job: string): void {
  expect(sample(text, 'xyn_collector_up', { job })).toBe(0);
  for (const name of QUEUE_GAUGES) expect(samples(text, name, { job }), name).toEqual([]);
}

/** The group's last successful push time (seconds), from the gateway itself. */
export function pushTime(text: string, job: string): number {
  return sample(text, 'push_time_seconds', { job });
}

/**
 * A queue where every gauge has a distinct, hand-computed answer
 * (expectKnownQueue): 3 ready (oldest queued 600 s ago, oldest due 60 s ago),
 * 2 future; 6 RUNNING: 2 expired, 3 active, 1 without a lease.
 */
export async function seedKnownQueue(db: TestDatabase, table = db.table): Promise<void> {
  await db.query(`
    INSERT INTO ${table} (status, run_at, queued_at, lease_expires_at) VALUES
      ('QUEUED',    now() - interval '1 minute', now() - interval '600 seconds', NULL),
      ('QUEUED',    now() - interval '5 seconds', now() - interval '30 seconds', NULL),
      ('QUEUED',    NULL,                          now() - interval '60 seconds', NULL),
      ('QUEUED',    now() + interval '1 hour',   now() - interval '7200 seconds', NULL),
      ('QUEUED',    now() + interval '1 day',    now(),                           NULL),
      ('RUNNING',   now(), now(), now() - interval '10 seconds'),
      ('RUNNING',   now(), now(), now() - interval '1 hour'),
      ('RUNNING',   now(), now(), now() + interval '30 seconds'),
      ('RUNNING',   now(), now(), now() + interval '1 minute'),
      ('RUNNING',   now(), now(), now() + interval '2 minutes'),
      ('RUNNING',   now(), now(), NULL),
      ('SUCCEEDED', now(), now(), NULL),
      ('SUCCEEDED', now(), now(), NULL),
      ('FAILED',    now(), now(), NULL)`);
}

/** The seeded queue, as the gateway must serve it. */
export function expectKnownQueue(text: string, job: string): void {
  expectKnownAlertingGauges(text, job);
  expect(sample(text, 'xyn_queue_depth', { job, status: 'SUCCEEDED' })).toBe(2);
  expect(sample(text, 'xyn_queue_depth', { job, status: 'FAILED' })).toBe(1);
  expect(sample(text, 'xyn_queue_depth', { job, status: 'CANCELLED' })).toBe(0);
}

/** Every alerting gauge of the seeded queue: what a degraded tick must still push, exact. */
export function expectKnownAlertingGauges(text: string, job: string): void {
  expect(sample(text, 'xyn_collector_up', { job })).toBe(1);
  expect(sample(text, 'xyn_queue_depth', { job, status: 'QUEUED' })).toBe(5);
  expect(sample(text, 'xyn_queue_depth', { job, status: 'RUNNING' })).toBe(6);
  expect(sample(text, 'xyn_queue_ready_depth', { job })).toBe(3);
  expect(sample(text, 'xyn_queue_future_depth', { job })).toBe(2);
  const oldest = sample(text, 'xyn_queue_oldest_ready_seconds', { job });
  expect(oldest).toBeGreaterThanOrEqual(600);
  expect(oldest).toBeLessThan(660);
  // Due is greatest(queued_at, run_at): the run queued 600 s ago came due only 60 s ago.
  const due = sample(text, 'xyn_queue_oldest_due_seconds', { job });
  expect(due).toBeGreaterThanOrEqual(60);
  expect(due).toBeLessThan(120);
  expect(sample(text, 'xyn_running_with_expired_lease', { job })).toBe(2);
  expect(sample(text, 'xyn_running_with_active_lease', { job })).toBe(3);
  expect(sample(text, 'xyn_running_without_lease', { job })).toBe(1);
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/** Poll `check` until it returns a value (not undefined) or time runs out. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 5_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const value = await check();
    if (value !== undefined) return value;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

export interface LoopbackServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

function listen(server: Server | ReturnType<typeof createTcpServer>): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

function closeServer(server: Server | ReturnType<typeof createTcpServer>, sockets: Set<Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A TCP listener that only counts connections: proof that no I/O happened. */
export async function startTripwire(): Promise<LoopbackServer & { connections(): number }> {
  let count = 0;
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    count += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.destroy();
  });
  const port = await listen(server);
  return { url: `http://127.0.0.1:${port}`, port, connections: () => count, close: () => closeServer(server, sockets) };
}

export type ProxyMode = 'forward' | 'status500' | 'hang';

/**
 * An HTTP proxy in front of the real Pushgateway whose behaviour the test
 * switches: forward, answer 500, or accept and never answer. Counts requests.
 */
export async function startSwitchableProxy(target: string): Promise<LoopbackServer & { mode: ProxyMode; requests(): number }> {
  let count = 0;
  const sockets = new Set<Socket>();
  const state = { mode: 'forward' as ProxyMode };
  const server = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    count += 1;
    if (state.mode === 'status500') {
      req.resume();
      res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error (test)');
      return;
    }
    if (state.mode === 'hang') {
      req.resume();
      return; // never answers
    }
    forward(req, res, target);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get mode() {
      return state.mode;
    },
    set mode(m: ProxyMode) {
      state.mode = m;
    },
    requests: () => count,
    close: () => closeServer(server, sockets),
  };
}

/** Relay one request to `target` (an http:// base URL) and its answer back. */
export function forward(req: IncomingMessage, res: ServerResponse, target: string): void {
  const url = new URL(req.url ?? '/', target);
  const headers = { ...req.headers };
  delete headers.authorization;
  delete headers.host;
  const upstream = httpRequest(url, { method: req.method, headers, agent: false }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  upstream.on('error', () => res.writeHead(502).end('upstream error'));
  req.pipe(upstream);
}

/** Push a metric straight to the gateway (as another job would), e.g. to provoke a 400. */
export async function pushRaw(gatewayUrl: string, groupPath: string, text: string): Promise<void> {
  const response = await fetch(`${gatewayUrl}/metrics/${groupPath}`, { method: 'PUT', body: text });
  if (!response.ok) throw new Error(`test push to ${groupPath}: HTTP ${response.status} ${await response.text()}`);
}

/** Delete a group (job/<name>, no further labels) and wait: the gateway deletes asynchronously (202). */
export async function deleteGroup(gatewayUrl: string, groupPath: string): Promise<void> {
  const response = await fetch(`${gatewayUrl}/metrics/${groupPath}`, { method: 'DELETE' });
  if (!response.ok) throw new Error(`test delete of ${groupPath}: HTTP ${response.status}`);
  const job = groupPath.replace(/^job\//, '');
  await waitFor(`group ${groupPath} deleted`, async () => {
    const text = await (await fetch(`${gatewayUrl}/metrics`)).text();
    return samples(text, 'push_time_seconds', { job }).length === 0 ? true : undefined;
  });
}

/**
 * A SCRAM-SHA-256 verifier with a chosen iteration count. PostgreSQL 15 stores
 * 4096 iterations, and the Neon driver runs each as an awaited WebCrypto call
 * (~0.2-0.4 s per connect on a busy 2-core machine); a test that connects
 * hundreds of times uses a role stored with fewer. Auth is still real SCRAM.
 */
export function scramVerifier(password: string, iterations: number): string {
  const salt = randomBytes(16);
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

export interface TestRole {
  name: string;
  password: string;
  /** DATABASE_URL for the role. */
  url: string;
  drop(): Promise<void>;
}

/**
 * A login role that may read every table of the test schema and nothing else
 * (the least-privilege grant of docs/least-privilege.sql, in its simplest form).
 */
export async function createReaderRole(db: TestDatabase, options: { password?: string; iterations?: number } = {}): Promise<TestRole> {
  const name = `xyn_reader_${randomBytes(4).toString('hex')}`;
  const password = options.password ?? `pw-${randomBytes(6).toString('hex')}`;
  const secret = options.iterations === undefined ? password : scramVerifier(password, options.iterations);
  const admin = await adminClient();
  try {
    const s = `"${db.schema}"`;
    await admin.query(`CREATE ROLE ${name} LOGIN PASSWORD '${secret.replace(/'/g, "''")}'`);
    await admin.query(`GRANT USAGE ON SCHEMA ${s} TO ${name}`);
    await admin.query(`GRANT SELECT ON ALL TABLES IN SCHEMA ${s} TO ${name}`);
    await admin.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA ${s} GRANT SELECT ON TABLES TO ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(db.url);
  url.username = name;
  url.password = encodeURIComponent(password);
  return {
    name,
    password,
    url: url.toString(),
    async drop() {
      const admin = await adminClient();
      try {
        await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, [name]);
        await admin.query(`DROP OWNED BY ${name}`);
        await admin.query(`DROP ROLE IF EXISTS ${name}`);
      } finally {
        await admin.end();
      }
    },
  };
}
