/**
 * One deadline per tick, enforced on everything the tick awaits, against real
 * servers on loopback that misbehave: the handler is invoked as Lambda does and
 * must end at its deadline (plus a little slack) with one clear line, and leave
 * no socket, server connection or timer behind.
 */

import { Pushgateway, Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect } from '../../functions/collect';
import { startBridge, type Bridge } from '../../scripts/bridge/bridge';
import { CLOSE_GRACE_MS } from '../../lib/source/connection';
import { captureOutput, lambdaContext, scheduledEvent, withEnv } from '../support/lambda';
import {
  resourceCensus,
  settleTo,
  silentPostgres,
  silentTcpServer,
  silentWebSocketServer,
  slowGateway,
  tricklingGateway,
  untilZero,
  webSocketPeerThatNeverCloses,
  type Misbehaving,
} from '../support/misbehaving';
import { freePort } from '../../scripts/support/net';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { sample, samples, startPushgateway, type TestPushgateway } from '../support/pushgateway';

// Debian's pushgateway persists to /var/lib/prometheus/pushgateway.data by default,
// which every test gateway on the machine would share; keep ours in memory.
const IN_MEMORY = ['--persistence.file='];

/** How late past its deadline a tick may end: timers, a loaded 2-core CI machine. */
const SLACK_MS = 700;

let db: TestDatabase;
let gateway: TestPushgateway;
let bridge: Bridge;

beforeAll(async () => {
  db = await createTestDatabase('deadline');
  gateway = await startPushgateway(IN_MEMORY);
  bridge = await startBridge();
  await db.query(`INSERT INTO ${db.table} (status, run_at) VALUES ('QUEUED', now() - interval '1 minute'), ('QUEUED', now() + interval '1 hour')`);
});
afterAll(async () => {
  await bridge?.close();
  await gateway?.stop();
  await db?.close();
});

interface Invocation {
  elapsed: number;
  error: Error | undefined;
  result: unknown;
  line: Record<string, unknown>;
}

async function invoke(env: Record<string, string>, context = lambdaContext(30_000)): Promise<Invocation> {
  const base = {
    DATABASE_URL: db.url,
    DATABASE_WS_PROXY: bridge.proxy,
    PUSHGATEWAY_URL: gateway.url,
    RUNS_TABLE: db.table,
    PUSH_RETRIES: '0',
  };
  const started = Date.now();
  const { output, result, error } = await withEnv({ ...base, ...env }, () =>
    captureOutput(() => collect(scheduledEvent(), context)),
  );
  const elapsed = Date.now() - started;
  const lines = output.trim().split('\n');
  expect(lines, output).toHaveLength(1);
  return { elapsed, error: error as Error | undefined, result, line: JSON.parse(lines[0]!) as Record<string, unknown> };
}

/** The tick's error: one line, no stack, the first words say what failed. */
function oneLine(error: Error | undefined): string {
  expect(error).toBeInstanceOf(Error);
  const message = error!.message;
  expect(message.split('\n')).toHaveLength(1);
  return message;
}

/** After the tick: the peer saw every connection closed, and the process holds what it held before. */
async function expectNothingLeftBehind(server: Misbehaving, baseline: Record<string, number>) {
  expect(await untilZero(server.open), 'connections the misbehaving peer still sees open').toBe(0);
  expect(await settleTo(baseline), 'resources the tick left behind').toEqual({});
}

async function withServer<T extends Misbehaving>(start: () => Promise<T>, run: (server: T) => Promise<void>) {
  const server = await start();
  try {
    await run(server);
  } finally {
    await server.close();
  }
}

describe('push deadline', () => {
  it('a gateway that answers slowly: the tick ends at the deadline taken from the Lambda context', async () => {
    await withServer(slowGateway, async (slow) => {
      const baseline = resourceCensus();
      // Lambda has 5.5 s left; less the 1.5 s exit margin the tick has 4 s (TICK_TIMEOUT_MS is 25 s).
      const { elapsed, error, line } = await invoke(
        { PUSHGATEWAY_URL: slow.address, TICK_TIMEOUT_MS: '25000', PUSH_TIMEOUT_MS: '20000' },
        lambdaContext(5_500),
      );
      expect(oneLine(error)).toMatch(
        /^xyn-metrics tick failed: push to http:\/\/127\.0\.0\.1:\d+\/metrics\/job\/xyn_metrics failed after 1 attempt: push attempt 1 did not finish within \d+ ms \(tick deadline\)$/,
      );
      expect(elapsed).toBeGreaterThanOrEqual(3_950);
      expect(elapsed).toBeLessThan(4_000 + SLACK_MS);
      expect(line).toMatchObject({ level: 'error', outcome: 'push_failed', push_attempts: 1 });
      expect(slow.received()).toBe(1);
      await expectNothingLeftBehind(slow, baseline);
    });
  });

  it("prom-client's own timeout is an idle timeout: a trickling response never trips it (why the deadline exists)", async () => {
    await withServer(() => tricklingGateway(300), async (trickle) => {
      const registry = new Registry();
      const abort = new AbortController();
      const push = new Pushgateway(trickle.address, { timeout: 1_000, agent: false, signal: abort.signal } as never, registry)
        .push({ jobName: 'x' })
        .then(
          () => 'resolved',
          () => 'rejected',
        );
      const outcome = await Promise.race([push, new Promise((r) => setTimeout(() => r('still waiting'), 2_500))]);
      abort.abort();
      await push;
      expect(outcome).toBe('still waiting');
      expect(trickle.bytesSent()).toBeGreaterThanOrEqual(5);
    });
  });

  it('a gateway that trickles a byte a second: the tick deadline ends the push', async () => {
    await withServer(() => tricklingGateway(1_000), async (trickle) => {
      const baseline = resourceCensus();
      // 6 s leaves the push seconds of trickling even when a loaded machine slows the database read.
      const { elapsed, error, line } = await invoke({ PUSHGATEWAY_URL: trickle.address, TICK_TIMEOUT_MS: '6000', PUSH_TIMEOUT_MS: '20000' });
      expect(oneLine(error)).toMatch(/failed after 1 attempt: push attempt 1 did not finish within \d+ ms \(tick deadline\)$/);
      expect(elapsed).toBeGreaterThanOrEqual(5_950);
      expect(elapsed).toBeLessThan(6_000 + SLACK_MS);
      expect(trickle.bytesSent(), 'the gateway was sending all along').toBeGreaterThanOrEqual(2);
      expect(line).toMatchObject({ outcome: 'push_failed' });
      await expectNothingLeftBehind(trickle, baseline);
    });
  });

  it('retries: each attempt is cut by PUSH_TIMEOUT_MS, and no retry or backoff runs past the deadline', async () => {
    await withServer(() => tricklingGateway(300), async (trickle) => {
      const baseline = resourceCensus();
      const { elapsed, error, line } = await invoke({
        PUSHGATEWAY_URL: trickle.address,
        TICK_TIMEOUT_MS: '4000',
        PUSH_TIMEOUT_MS: '1000',
        PUSH_RETRIES: '5',
      });
      const message = oneLine(error);
      const attempts = Number(/failed after (\d+) attempts/.exec(message)?.[1]);
      expect(attempts, message).toBeGreaterThanOrEqual(2);
      expect(attempts).toBeLessThan(6);
      expect(message).toMatch(new RegExp(`push attempt ${attempts} did not finish within \\d+ ms \\((PUSH_TIMEOUT_MS|tick deadline)\\)$`));
      expect(trickle.received()).toBe(attempts);
      expect(line).toMatchObject({ outcome: 'push_failed', push_attempts: attempts });
      expect(elapsed).toBeGreaterThanOrEqual(2_000);
      expect(elapsed).toBeLessThan(4_000 + SLACK_MS);
      await expectNothingLeftBehind(trickle, baseline);
    });
  });
});

describe('database deadline', () => {
  // 3.3 s for the tick; the database gets all but min(PUSH_TIMEOUT_MS, a third of what is left
  // when the read starts) = 1 s, which is kept to push xyn_collector_up 0 in place of the old
  // figures. A third of 3.3 s is well above 1 s, so the reserve is PUSH_TIMEOUT_MS exactly (with a
  // 3 s tick a third was 1000 ms only if the read started in the very millisecond the tick did).
  const budget = { TICK_TIMEOUT_MS: '3300', PUSH_TIMEOUT_MS: '1000' };
  const keptForPush = /\(tick deadline less 1000 ms kept for the push\)$/;

  async function expectCutAtTheDatabaseDeadline(run: Invocation, step: 'connect' | 'query', job: string) {
    const message = oneLine(run.error);
    expect(message).toMatch(new RegExp(`^xyn-metrics tick failed: database 127\\.0\\.0\\.1: database ${step} did not finish within \\d+ ms`));
    expect(message).toMatch(keptForPush);
    expect(run.elapsed).toBeGreaterThanOrEqual(2_250);
    expect(run.elapsed).toBeLessThan(3_300 + SLACK_MS);
    expect(run.line).toMatchObject({ level: 'error', outcome: 'db_failed', push_attempts: 1 });
    // The time kept back was used: the group now says the collector is down, with no stale queue figures.
    const text = await gateway.scrape();
    expect(sample(text, 'xyn_collector_up', { job })).toBe(0);
    expect(samples(text, 'xyn_queue_depth', { job })).toEqual([]);
  }

  it('a WebSocket proxy that accepts and never answers: connect is cut', async () => {
    await withServer(silentWebSocketServer, async (silent) => {
      const baseline = resourceCensus();
      const run = await invoke({ ...budget, DATABASE_WS_PROXY: silent.address, PUSHGATEWAY_JOB: 'xyn_dl_ws' });
      await expectCutAtTheDatabaseDeadline(run, 'connect', 'xyn_dl_ws');
      expect(silent.received()).toBe(1);
      await expectNothingLeftBehind(silent, baseline);
    });
  });

  it('a proxy that accepts TCP and never answers the WebSocket upgrade: connect is cut', async () => {
    await withServer(silentTcpServer, async (silent) => {
      const baseline = resourceCensus();
      const run = await invoke({ ...budget, DATABASE_WS_PROXY: `${silent.address}/v1`, PUSHGATEWAY_JOB: 'xyn_dl_upgrade' });
      await expectCutAtTheDatabaseDeadline(run, 'connect', 'xyn_dl_upgrade');
      expect(silent.received()).toBe(1);
      await expectNothingLeftBehind(silent, baseline);
    });
  });

  it('through the bridge, a database that accepts TCP and never answers: connect is cut', async () => {
    await withServer(silentTcpServer, async (silent) => {
      const baseline = resourceCensus();
      const run = await invoke({
        ...budget,
        DATABASE_URL: `postgresql://postgres:postgres@127.0.0.1:${silent.port}/postgres`,
        PUSHGATEWAY_JOB: 'xyn_dl_tcp',
      });
      await expectCutAtTheDatabaseDeadline(run, 'connect', 'xyn_dl_tcp');
      expect(silent.received()).toBe(1);
      await expectNothingLeftBehind(silent, baseline);
    });
  });

  it('a database that lets the client in and never answers the statement: the query is cut', async () => {
    await withServer(silentPostgres, async (silent) => {
      const baseline = resourceCensus();
      const run = await invoke({
        ...budget,
        DATABASE_URL: `postgresql://postgres:postgres@127.0.0.1:${silent.port}/postgres`,
        PUSHGATEWAY_JOB: 'xyn_dl_query',
      });
      await expectCutAtTheDatabaseDeadline(run, 'query', 'xyn_dl_query');
      await expectNothingLeftBehind(silent, baseline);
    });
  });

  it('over TCP (node-postgres), a database that accepts and never answers the TLS request: connect is cut', async () => {
    await withServer(silentTcpServer, async (silent) => {
      const baseline = resourceCensus();
      const run = await invoke({
        ...budget,
        DATABASE_URL: `postgresql://postgres:postgres@127.0.0.1:${silent.port}/postgres?sslmode=require`,
        DATABASE_WS_PROXY: '',
        PUSHGATEWAY_JOB: 'xyn_dl_tcp_direct',
      });
      await expectCutAtTheDatabaseDeadline(run, 'connect', 'xyn_dl_tcp_direct');
      expect(silent.received()).toBe(1);
      await expectNothingLeftBehind(silent, baseline);
    });
  });

  it('over TCP (node-postgres), a database that lets the client in and never answers the statement: the query is cut', async () => {
    await withServer(silentPostgres, async (silent) => {
      const baseline = resourceCensus();
      const run = await invoke({
        ...budget,
        DATABASE_URL: `postgresql://postgres:postgres@127.0.0.1:${silent.port}/postgres?sslmode=disable`,
        DATABASE_WS_PROXY: '',
        PUSHGATEWAY_JOB: 'xyn_dl_query_direct',
      });
      await expectCutAtTheDatabaseDeadline(run, 'query', 'xyn_dl_query_direct');
      await expectNothingLeftBehind(silent, baseline);
    });
  });

  it('a proxy that refuses the connection fails at once with the cause, not at the deadline', async () => {
    const port = await freePort(); // nothing listens there
    const run = await invoke({ ...budget, DATABASE_WS_PROXY: `127.0.0.1:${port}/v1`, PUSHGATEWAY_JOB: 'xyn_dl_refused' });
    expect(oneLine(run.error)).toBe(`xyn-metrics tick failed: database 127.0.0.1: connect ECONNREFUSED 127.0.0.1:${port}`);
    expect(run.elapsed).toBeLessThan(1_500);
  });

  it('a WebSocket peer that never closes: the close is cut after its grace, the tick succeeds with the data it read', async () => {
    await withServer(webSocketPeerThatNeverCloses, async (peer) => {
      const baseline = resourceCensus();
      const { elapsed, error, result, line } = await invoke({
        TICK_TIMEOUT_MS: '10000',
        DATABASE_WS_PROXY: peer.address,
        PUSHGATEWAY_JOB: 'xyn_dl_close',
      });
      expect(error).toBeUndefined();
      expect(result).toMatchObject({ outcome: 'ok' });
      expect(line).toMatchObject({ level: 'info', outcome: 'ok', db_close: 'cut', figures: { ready: 1, future: 1 } });
      // The client sent Terminate, Postgres hung up, the peer kept the WebSocket open.
      expect(peer.upstreamHangups()).toBe(1);
      // Neon driver 1.2: end() never sends a close frame (pg passes its callback where the
      // driver's socket expects an encoding), it waits for the peer to hang up. Without the
      // cut this tick would wait for ever, not just ws's 30 s close timeout.
      expect(peer.closeFramesIgnored()).toBe(0);
      // Cut after CLOSE_GRACE_MS, well before the 10 s tick deadline (the rest is connect, query and push).
      expect(line.db_ms as number).toBeGreaterThanOrEqual(CLOSE_GRACE_MS);
      expect(elapsed).toBeLessThan(CLOSE_GRACE_MS + 3_000);
      const text = await gateway.scrape();
      expect(sample(text, 'xyn_collector_up', { job: 'xyn_dl_close' })).toBe(1);
      expect(sample(text, 'xyn_queue_ready_depth', { job: 'xyn_dl_close' })).toBe(1);
      await expectNothingLeftBehind(peer, baseline);
    });
  });
});
