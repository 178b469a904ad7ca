/**
 * The fault cases as data, so the fault suites (one test per case) and the
 * security suite (every case again, with recognisable secrets configured) run
 * exactly the same faults through exactly the same assertions.
 */

import { expect } from 'vitest';
import { freePort } from '../../scripts/support/net';
import { adminClient } from './postgres';
import {
  deleteGroup,
  expectCleanFailure,
  expectKnownQueue,
  expectMarkedFailed,
  expectOk,
  invokeCollect,
  pushRaw,
  pushTime,
  startSwitchableProxy,
  waitFor,
  type Invocation,
  type Stack,
} from './faults';
import { sample, samples } from './pushgateway';

export interface FaultContext {
  stack: Stack;
  job: string;
  /** The collector's healthy environment (it may carry secrets). */
  env: Record<string, string | undefined>;
  /** The Pushgateway URL the collector uses: a switchable proxy in front of the real gateway. */
  proxy: Awaited<ReturnType<typeof startSwitchableProxy>>;
}

/**
 * What the gateway serves after the failed tick: the group marked failed; or,
 * when the push itself failed, the old group with its old push time (what
 * XynCollectorSilent reads), or no group at all (XynMetricsAbsent).
 */
export type GatewayAfter = 'marked_failed' | 'unchanged' | 'absent';

export interface FaultCase {
  name: string;
  /** What the one-line error must say. */
  cause: RegExp;
  /** The invocation must be over within this many ms. */
  budgetMs: number;
  gatewayAfter: GatewayAfter;
  /** Changes to the healthy environment that make (or meet) the fault. */
  env?(ctx: FaultContext): Promise<Record<string, string | undefined>> | Record<string, string | undefined>;
  /** Start the fault before the invocation; returns what ends it. */
  inject?(ctx: FaultContext): Promise<() => Promise<void>>;
  /** Runs alongside the invocation (e.g. to cut the connection mid-query). */
  during?(ctx: FaultContext): Promise<void>;
  /** Extra checks on the failed invocation. */
  check?(run: Invocation, ctx: FaultContext): Promise<void> | void;
}

function withUrl(raw: string, change: (url: URL) => void): string {
  const url = new URL(raw);
  change(url);
  return url.toString();
}

/** Tables and views the database cases need, created next to the runs table. */
export async function prepareFaultTables(ctx: { stack: Stack }): Promise<void> {
  const { db } = ctx.stack;
  const s = `"${db.schema}"`;
  await db.query(`
    CREATE TABLE ${s}.runs_without_lease (status ${s}.run_status, run_at timestamptz, queued_at timestamptz);
    -- A runs "table" whose every row takes 300 ms to read: a statement that is surely in flight.
    CREATE VIEW ${s}.runs_slow AS
      SELECT r.status, r.run_at, r.queued_at, r.lease_expires_at FROM ${s}.runs r, LATERAL (SELECT pg_sleep(0.3)) z;
  `);
}

const TICK = { TICK_TIMEOUT_MS: '8000' };

export const DATABASE_CASES: FaultCase[] = [
  {
    name: 'unreachable port',
    cause: /database 127\.0\.0\.1: bridge could not connect to 127\.0\.0\.1:\d+: ECONNREFUSED/,
    budgetMs: 5_000,
    gatewayAfter: 'marked_failed',
    async env(ctx) {
      const port = await freePort();
      return { ...TICK, DATABASE_URL: withUrl(ctx.env.DATABASE_URL!, (u) => (u.port = String(port))) };
    },
  },
  {
    name: 'wrong password',
    cause: /database 127\.0\.0\.1: password authentication failed for user "[^"]+"/,
    budgetMs: 5_000,
    gatewayAfter: 'marked_failed',
    env: (ctx) => ({ ...TICK, DATABASE_URL: withUrl(ctx.env.DATABASE_URL!, (u) => (u.password = 'Wr0ng-Pa55word-x9')) }),
  },
  {
    name: 'database missing',
    cause: /database 127\.0\.0\.1: database "xyn_no_such_db" does not exist/,
    budgetMs: 5_000,
    gatewayAfter: 'marked_failed',
    env: (ctx) => ({ ...TICK, DATABASE_URL: withUrl(ctx.env.DATABASE_URL!, (u) => (u.pathname = '/xyn_no_such_db')) }),
  },
  {
    name: 'runs table missing',
    cause: /database 127\.0\.0\.1: relation "[a-z0-9_]+\.runs_gone" does not exist/,
    budgetMs: 5_000,
    gatewayAfter: 'marked_failed',
    env: (ctx) => ({ ...TICK, RUNS_TABLE: `${ctx.stack.db.schema}.runs_gone` }),
  },
  {
    name: 'a required column missing',
    cause: /database 127\.0\.0\.1: column [a-z.]*lease_expires_at does not exist/,
    budgetMs: 5_000,
    gatewayAfter: 'marked_failed',
    env: (ctx) => ({ ...TICK, RUNS_TABLE: `${ctx.stack.db.schema}.runs_without_lease` }),
  },
  {
    name: 'statement blocked by a lock held elsewhere (gives up at DB_LOCK_TIMEOUT_MS)',
    cause: /database 127\.0\.0\.1: canceling statement due to lock timeout/,
    budgetMs: 5_000,
    gatewayAfter: 'marked_failed',
    // The statement timeout and the tick deadline are far away: only the lock timeout can end it in time.
    env: () => ({ DB_LOCK_TIMEOUT_MS: '300', DB_STATEMENT_TIMEOUT_MS: '20000', TICK_TIMEOUT_MS: '25000' }),
    async inject(ctx) {
      const holder = await adminClient();
      await holder.query('BEGIN');
      await holder.query(`LOCK TABLE ${ctx.stack.db.table} IN ACCESS EXCLUSIVE MODE`);
      return async () => {
        await holder.query('ROLLBACK');
        await holder.end();
      };
    },
  },
  {
    name: 'statement slower than DB_STATEMENT_TIMEOUT_MS',
    cause: /database 127\.0\.0\.1: canceling statement due to statement timeout/,
    budgetMs: 5_000,
    gatewayAfter: 'marked_failed',
    env: (ctx) => ({ ...TICK, RUNS_TABLE: `${ctx.stack.db.schema}.runs_slow`, DB_STATEMENT_TIMEOUT_MS: '400' }),
  },
  {
    name: 'connection cut mid-query (backend terminated)',
    cause: /database 127\.0\.0\.1: terminating connection due to administrator command/,
    budgetMs: 6_000,
    gatewayAfter: 'marked_failed',
    env: (ctx) => ({ ...TICK, RUNS_TABLE: `${ctx.stack.db.schema}.runs_slow`, DB_STATEMENT_TIMEOUT_MS: '20000' }),
    async during(ctx) {
      const admin = await adminClient();
      try {
        // The collector's backend, busy with the slow view of this schema.
        const pid = await waitFor('the collector statement in flight', async () => {
          const rows = await admin.query<{ pid: number }>(
            `SELECT pid FROM pg_stat_activity
             WHERE application_name = 'xyn-metrics' AND state = 'active' AND query LIKE $1`,
            [`%${ctx.stack.db.schema}%runs_slow%`],
          );
          return rows.rows[0]?.pid;
        });
        await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      } finally {
        await admin.end();
      }
    },
  },
];

const PUSH_FAST = { TICK_TIMEOUT_MS: '8000', PUSH_TIMEOUT_MS: '400', PUSH_RETRIES: '2' };

export const PUSHGATEWAY_CASES: FaultCase[] = [
  {
    name: 'connection refused',
    cause: /push to http:\/\/127\.0\.0\.1:\d+\/metrics\/job\/\w+ failed after 3 attempts: .*ECONNREFUSED/,
    budgetMs: 5_000,
    gatewayAfter: 'unchanged',
    env: async () => ({ ...PUSH_FAST, PUSHGATEWAY_URL: `http://127.0.0.1:${await freePort()}` }),
  },
  {
    name: 'accepting but never answering',
    cause: /push to http:\/\/127\.0\.0\.1:\d+\/metrics\/job\/\w+ failed after 3 attempts: .*(did not finish within|timed out)/,
    budgetMs: 6_000,
    gatewayAfter: 'unchanged',
    env: () => PUSH_FAST,
    async inject(ctx) {
      ctx.proxy.mode = 'hang';
      return async () => {
        ctx.proxy.mode = 'forward';
      };
    },
  },
  {
    // The gateway checks every push against all groups: once another job has pushed
    // xyn_queue_ready_depth as a counter (say after a gateway restart that lost our
    // group), our gauge of that name is refused with 400 until that group goes.
    name: 'HTTP 400: a metric of the same name with another type in another group',
    cause: /push to http:\/\/127\.0\.0\.1:\d+\/metrics\/job\/\w+ failed after 1 attempt: HTTP 400: .*xyn_queue_ready_depth/,
    budgetMs: 5_000,
    gatewayAfter: 'absent',
    env: () => PUSH_FAST,
    async inject(ctx) {
      const group = `job/${ctx.job}_conflict`;
      await deleteGroup(ctx.stack.gateway.url, `job/${ctx.job}`);
      await pushRaw(ctx.stack.gateway.url, group, '# TYPE xyn_queue_ready_depth counter\nxyn_queue_ready_depth 1\n');
      return () => deleteGroup(ctx.stack.gateway.url, group);
    },
    check(_run, ctx) {
      // 4xx is not retried: one request reached the gateway.
      expect(ctx.proxy.requests()).toBe(1);
    },
  },
  {
    name: 'HTTP 500, retried, then back',
    cause: /push to http:\/\/127\.0\.0\.1:\d+\/metrics\/job\/\w+ failed after 3 attempts: HTTP 500: internal error \(test\)/,
    budgetMs: 5_000,
    gatewayAfter: 'unchanged',
    env: () => PUSH_FAST,
    async inject(ctx) {
      ctx.proxy.mode = 'status500';
      return async () => {
        ctx.proxy.mode = 'forward';
      };
    },
    check(_run, ctx) {
      expect(ctx.proxy.requests()).toBe(3);
    },
  },
];

/**
 * One fault, end to end: a healthy tick, the fault, the failed tick (in time,
 * one clear line, the gateway fresh-or-failed, never stale-as-current), the
 * fault gone, and a correct next tick.
 */
export async function runFaultCase(c: FaultCase, ctx: FaultContext): Promise<Invocation[]> {
  const healthy = await invokeCollect(ctx.env);
  expectOk(healthy);
  const before = await ctx.stack.gateway.scrape();
  expectKnownQueue(before, ctx.job);
  const pushedBefore = pushTime(before, ctx.job);
  // The failed tick's push time is compared with this one's below: let the clock pass it.
  await waitFor('the clock to pass the healthy push time', async () => (Date.now() / 1000 > pushedBefore ? true : undefined));

  const undo = await c.inject?.(ctx);
  let failed: Invocation;
  try {
    const faultEnv = { ...ctx.env, ...(await c.env?.(ctx)) };
    const counted = ctx.proxy.requests();
    const [run] = await Promise.all([invokeCollect(faultEnv), c.during?.(ctx)]);
    failed = run;
    expectCleanFailure(failed, c.cause, c.budgetMs);
    await c.check?.(failed, { ...ctx, proxy: { ...ctx.proxy, requests: () => ctx.proxy.requests() - counted } });
  } finally {
    await undo?.();
  }

  const after = await ctx.stack.gateway.scrape();
  if (c.gatewayAfter === 'marked_failed') {
    expectMarkedFailed(after, ctx.job);
    expect(pushTime(after, ctx.job)).toBeGreaterThan(pushedBefore);
  } else if (c.gatewayAfter === 'absent') {
    expect(samples(after, 'xyn_collector_up', { job: ctx.job })).toEqual([]);
    expect(samples(after, 'xyn_queue_ready_depth', { job: ctx.job })).toEqual([]);
  } else {
    // The push never landed: the old values stay, but with their old push time,
    // which is what XynCollectorSilent and the freshness-gated alerts read.
    expect(pushTime(after, ctx.job)).toBe(pushedBefore);
    expect(sample(after, 'xyn_collector_up', { job: ctx.job })).toBe(1);
  }

  const recovered = await invokeCollect(ctx.env);
  expectOk(recovered);
  const text = await ctx.stack.gateway.scrape();
  expectKnownQueue(text, ctx.job);
  expect(pushTime(text, ctx.job)).toBeGreaterThan(pushedBefore);
  expect(samples(text, 'xyn_collector_up', { job: ctx.job })).toHaveLength(1);
  if (process.env.FAULT_TIMINGS) console.log(`${c.name}: ${healthy.elapsedMs}/${failed.elapsedMs}/${recovered.elapsedMs} ms: ${(failed.error as Error).message}`);
  return [healthy, failed, recovered];
}

export interface ConfigCase {
  name: string;
  env: Record<string, string | undefined>;
  /** The variable the one line must name. */
  variable: string;
  cause: RegExp;
}

/**
 * Bad configuration, applied on top of a healthy environment: every required
 * variable missing and empty, malformed values of every kind.
 */
export const CONFIG_CASES: ConfigCase[] = [
  { name: 'DATABASE_URL missing', env: { DATABASE_URL: undefined }, variable: 'DATABASE_URL', cause: /is not set; it is required/ },
  { name: 'DATABASE_URL empty', env: { DATABASE_URL: '' }, variable: 'DATABASE_URL', cause: /is empty; it is required/ },
  { name: 'DATABASE_URL without a scheme', env: { DATABASE_URL: 'postgres:Pa55-in-the-wrong-place@127.0.0.1:5432/postgres' }, variable: 'DATABASE_URL', cause: /has no scheme/ },
  { name: 'DATABASE_URL port out of range', env: { DATABASE_URL: 'postgresql://postgres:x@127.0.0.1:70000/postgres' }, variable: 'DATABASE_URL', cause: /port out of range: 70000/ },
  { name: 'DATABASE_URL with another scheme', env: { DATABASE_URL: 'http://127.0.0.1:5432/postgres' }, variable: 'DATABASE_URL', cause: /must start with postgresql:\/\// },
  { name: 'DATABASE_URL without a database', env: { DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432' }, variable: 'DATABASE_URL', cause: /names no database/ },
  { name: 'PUSHGATEWAY_URL missing', env: { PUSHGATEWAY_URL: undefined }, variable: 'PUSHGATEWAY_URL', cause: /is not set; it is required/ },
  { name: 'PUSHGATEWAY_URL empty', env: { PUSHGATEWAY_URL: '' }, variable: 'PUSHGATEWAY_URL', cause: /is empty; it is required/ },
  { name: 'PUSHGATEWAY_URL without a scheme', env: { PUSHGATEWAY_URL: '127.0.0.1:9091' }, variable: 'PUSHGATEWAY_URL', cause: /has no scheme/ },
  { name: 'PUSHGATEWAY_URL port out of range', env: { PUSHGATEWAY_URL: 'http://127.0.0.1:0' }, variable: 'PUSHGATEWAY_URL', cause: /port out of range: 0/ },
  { name: 'RUNS_TABLE with SQL in it', env: { RUNS_TABLE: 'runs; DROP TABLE runs; --' }, variable: 'RUNS_TABLE', cause: /made of letters, digits and underscores/ },
  { name: 'RUNS_TABLE with a quote', env: { RUNS_TABLE: 'runs" WHERE false --' }, variable: 'RUNS_TABLE', cause: /made of letters, digits and underscores/ },
  { name: 'TICK_TIMEOUT_MS not a number', env: { TICK_TIMEOUT_MS: 'thirty' }, variable: 'TICK_TIMEOUT_MS', cause: /must be a whole number/ },
  { name: 'DB_STATEMENT_TIMEOUT_MS with a unit', env: { DB_STATEMENT_TIMEOUT_MS: '5s' }, variable: 'DB_STATEMENT_TIMEOUT_MS', cause: /must be a whole number/ },
  { name: 'DB_LOCK_TIMEOUT_MS negative', env: { DB_LOCK_TIMEOUT_MS: '-5' }, variable: 'DB_LOCK_TIMEOUT_MS', cause: /must be a whole number/ },
  { name: 'PUSH_TIMEOUT_MS out of range', env: { PUSH_TIMEOUT_MS: '0' }, variable: 'PUSH_TIMEOUT_MS', cause: /must be between/ },
  { name: 'PUSH_RETRIES not a number', env: { PUSH_RETRIES: 'a few' }, variable: 'PUSH_RETRIES', cause: /must be a whole number/ },
  { name: 'MAX_EVENT_AGE_SECONDS not a number', env: { MAX_EVENT_AGE_SECONDS: '1.5' }, variable: 'MAX_EVENT_AGE_SECONDS', cause: /must be a whole number/ },
  { name: 'STATUS_ESTIMATE_ABOVE not a number', env: { STATUS_ESTIMATE_ABOVE: 'lots' }, variable: 'STATUS_ESTIMATE_ABOVE', cause: /must be a whole number/ },
  { name: 'PUSHGATEWAY_JOB with a slash', env: { PUSHGATEWAY_JOB: 'xyn/../admin' }, variable: 'PUSHGATEWAY_JOB', cause: /letters, digits/ },
  { name: 'PUSHGATEWAY_GROUPING malformed', env: { PUSHGATEWAY_GROUPING: 'env:prod' }, variable: 'PUSHGATEWAY_GROUPING', cause: /must look like/ },
  { name: 'PUSHGATEWAY_CA_FILE missing file', env: { PUSHGATEWAY_URL: 'https://127.0.0.1:9091', PUSHGATEWAY_CA_FILE: '/nonexistent/ca.pem' }, variable: 'PUSHGATEWAY_CA_FILE', cause: /cannot be read/ },
  { name: 'PUSHGATEWAY_PASSWORD without a user', env: { PUSHGATEWAY_TOKEN: undefined, PUSHGATEWAY_PASSWORD: 'Lonely-Pa55' }, variable: 'PUSHGATEWAY_USERNAME', cause: /is set but PUSHGATEWAY_USERNAME is not/ },
  { name: 'PUSHGATEWAY_TOKEN with a newline', env: { PUSHGATEWAY_TOKEN: 'abc\r\nX-Evil: 1' }, variable: 'PUSHGATEWAY_TOKEN', cause: /control character/ },
  { name: 'PUSH_DRY_RUN not a flag', env: { PUSH_DRY_RUN: 'yes please' }, variable: 'PUSH_DRY_RUN', cause: /true or false/ },
  { name: 'DATABASE_WS_PROXY with a scheme', env: { DATABASE_WS_PROXY: 'ws://127.0.0.1:8089/v1' }, variable: 'DATABASE_WS_PROXY', cause: /without a scheme/ },
  { name: 'DATABASE_WS_PROXY on another host', env: { DATABASE_WS_PROXY: '192.0.2.10:8089/v1' }, variable: 'DATABASE_WS_PROXY', cause: /loopback/ },
  { name: 'DATABASE_WS_PROXY with a Neon host', env: { DATABASE_URL: 'postgresql://xyn:x@ep-cool-name-123456.eu-central-1.aws.neon.tech/neondb' }, variable: 'DATABASE_WS_PROXY', cause: /Neon hosts always use the secure WebSocket/ },
  { name: 'NODE_TLS_REJECT_UNAUTHORIZED=0', env: { NODE_TLS_REJECT_UNAUTHORIZED: '0' }, variable: 'NODE_TLS_REJECT_UNAUTHORIZED', cause: /turns certificate checks off/ },
];
