/**
 * Chaos soak (issue 19, item 9): the behaviour the collector must keep while
 * lib/ is restructured, pinned from the outside. One process (a warm Lambda
 * container) runs CHAOS_TICKS ticks (200 by default, `npm run soak` 1,000) of
 * the public handler `collect` from functions/collect.ts, configured only by
 * environment variables, as Lambda would, against the real PostgreSQL and the
 * real Pushgateway, each behind a fault-injecting TCP proxy
 * (test/support/chaos-proxy.ts). Nothing from lib/ is imported: only
 * EXIT_MARGIN_MS from the handler.
 *
 * The path. Database: each tick draws the transport. "tcp" is node-postgres
 * with DATABASE_URL at the proxy (loopback, no sslmode: libpq's prefer, so an
 * SSLRequest that the test server refuses, then the session; two connections
 * through the proxy). "websocket" is the Neon driver with DATABASE_WS_PROXY at
 * the proxy, which relays to the WebSocket bridge (scripts/bridge/bridge.ts),
 * which relays to PostgreSQL. Push: PUSHGATEWAY_URL at the proxy, which relays
 * to the Pushgateway. The test's own reads (ground truth, scrapes) go around
 * the proxies.
 *
 * Faults, drawn from a seeded PRNG (mulberry32; CHAOS_SEED replays a run, the
 * seed is printed and is in the test's name): the weather alternates calm
 * stretches (both sides healthy, 2–8 ticks) and storms (1–4 ticks) in which
 * each side draws its fault from a shuffled deck (healthy 2, latency 3, reset
 * 2, trickle 2, refused 2, black hole 1 of 12 cards, so every kind comes up),
 * for every connection of the tick or only the first. One tick in ten gets a
 * Lambda context with less time left than TICK_TIMEOUT_MS + EXIT_MARGIN_MS, so
 * the Lambda's remaining time sets the deadline. The data changes before every
 * tick (runs inserted, moved to another status or schedule, deleted), so a
 * stale figure cannot pass for a fresh one. The fault sequence and the data
 * are the seed's; which faults outrun a timeout depends on the machine's load.
 *
 * After every tick:
 * - it ended within its deadline plus EXIT_MARGIN_MS (the deadline is
 *   TICK_TIMEOUT_MS, or the Lambda's remaining time less the margin if less);
 * - it wrote one JSON log line with its outcome; a failed tick threw one line
 *   starting "xyn-metrics ";
 * - the proxies saw every connection of the tick closed by the collector;
 * - the Pushgateway group (read directly, not through the proxy) is what the
 *   outcome allows. A push that landed (push_time_seconds moved) carries
 *   this tick's registry: after a read, every figure equal to the ground
 *   truth; after a failed read, xyn_collector_up 0 and
 *   xyn_collector_duration_seconds and no other series, never an older queue
 *   value. A push that did not land leaves the group exactly as it was.
 *     ok, db_failed          the push landed (a 200 came back).
 *     push_failed,           the group is unchanged, or it holds this tick's
 *     db_and_push_failed     registry. Why both: the gateway answers a PUT
 *                            only after it applied it, so a reset in the
 *                            middle of the answer, an answer that trickles
 *                            past PUSH_TIMEOUT_MS, or one delayed past it,
 *                            fail the attempt on the collector's side after
 *                            the gateway took the new group. Every attempt of
 *                            a tick sends the same body, so the group is then
 *                            exactly this tick's registry. A black hole or a
 *                            refused port never lets a byte through: with
 *                            such a fault on every connection the group must
 *                            be unchanged.
 *                            A failed push is scraped twice, 50 ms apart, and
 *                            must not change in between: nothing lands after
 *                            the tick.
 * - a tick with both sides healthy succeeded, or failed only on a deadline
 *   (a loaded machine); at least 90% of them succeeded.
 *
 * Ground truth: the rows themselves (a plain SELECT of the four columns over
 * the same table, on the test's own connection), aggregated here in
 * TypeScript, nothing of the collector's SQL. Every run_at and
 * lease_expires_at is at least an hour from now, so no figure but the oldest
 * ready age depends on when the collector's snapshot was taken; that age must
 * lie between what it was when the tick started and when it ended (±20 ms).
 *
 * Over the run: open file descriptors (/proc/self/fd) and the heap after a
 * full GC, measured after warm-up (tick 50) and at the end, each time once no
 * connection is open at the proxies or in PostgreSQL, must return to their
 * warm-up level (bounds below), and RSS must stay bounded (flat at the end of a long run).
 *
 * Running it: `npm test` runs 200 ticks, `npm run soak` 1,000 (CHAOS_TICKS=N
 * for another count, CHAOS_SEED=S to replay a seed); alone, `npx vitest run
 * test/integration/chaos-soak.test.ts`. CHAOS_DEBUG=1 prints a line per tick
 * (outcome, time, faults, connections and bytes at each proxy), CHAOS_DEBUG=lines
 * adds a failed tick's log line. Every broken invariant is listed with its tick,
 * the tick's faults and its log line; the figures are printed at the end, and
 * one full run's are in docs/chaos-soak.md.
 */

import { readdirSync, readlinkSync } from 'node:fs';
import http from 'node:http';
import { randomInt } from 'node:crypto';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect, EXIT_MARGIN_MS } from '../../functions/collect';
import { startBridge, type Bridge } from '../../scripts/bridge/bridge';
import { FAULT_KINDS, startChaosProxy, type ChaosProxy, type Fault, type FaultKind, type Plan, type TickReport } from '../support/chaos-proxy';
import { createReaderRole, startIsolatedPushgateway, type TestRole } from '../support/faults';
import { captureOutput, lambdaContext, scheduledEvent, withEnv } from '../support/lambda';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import type { TestPushgateway } from '../support/pushgateway';

const TICKS = wholeNumber('CHAOS_TICKS', 200);
const SEED = process.env.CHAOS_SEED?.trim() ? wholeNumber('CHAOS_SEED', 0) >>> 0 : randomInt(2 ** 32);

/** Small, so a black hole costs little; the push and the statement fit inside (see below). */
const TICK_TIMEOUT_MS = 1_500;
/** The push keeps min(PUSH_TIMEOUT_MS, a third of the deadline) back from the database. */
const PUSH_TIMEOUT_MS = 400;
const PUSH_RETRIES = 2;
/** Under what the database gets of a 1.5 s tick (1.1 s). */
const DB_STATEMENT_TIMEOUT_MS = 1_000;
const JOB = 'xyn_chaos';
const STATUSES = ['CANCELLED', 'FAILED', 'QUEUED', 'RUNNING', 'SUCCEEDED'] as const;

/** Warm-up: the descriptor and memory baseline is taken after this tick (JIT, lazy modules, every fault once). */
const BASELINE_TICK = Math.min(50, Math.floor(TICKS / 4));
/**
 * Descriptors: the same count as after warm-up, give or take 2 (a pooled
 * connection of the test runner, an inotify of vitest). A leak of one socket
 * per faulty tick would be dozens.
 */
const FD_BOUND = 2;
/**
 * Heap after a full GC: the healthy soak (soak.test.ts) measured ~0.5 KB a tick
 * of V8 code and deopt data; anything a tick could retain (a registry, a
 * client, a socket and its buffers) is several KB. So 2 KB a tick, at least 1 MiB.
 */
const HEAP_BOUND_MB = (ticks: number) => Math.max(1, (ticks * 2) / 1024);
/**
 * RSS after a full GC. Most of its growth is V8's young generation, which V8
 * sizes by itself: its resident pages grow in steps of ~25 MiB under
 * allocation pressure (and shrink, leaving pages in V8's pool), the same
 * without any fault. Measured over 1,000 ticks: +95 MiB with no fault at all
 * (young generation 26 -> 103 MiB), +68 and +89 MiB with faults, each then
 * flat (+0.3 to +3.6 MiB over the last 200 ticks). So RSS may rise at most
 * RSS_BOUND_MB above the warm-up level at any checkpoint (the young
 * generation's ceiling and 25 MiB more), and in a run of 1,000 ticks or more at
 * most RSS_FLAT_MB over its last 200 ticks (one step of the young generation
 * and a few MiB). What that catches: ~160 KB retained a tick for good; smaller
 * native leaks hide in V8's steps, and a leaked socket is caught by the
 * descriptor count first.
 */
const RSS_BOUND_MB = 128;
const RSS_FLAT_MB = 32;
/** The stretch at the end of a long run over which RSS must stay flat. */
const RSS_FLAT_TICKS = 200;
/** How far past the tick (or the reading) a time may be, for clocks and rounding. */
const EPS_S = 0.02;

function wholeNumber(name: string, fallback: number): number {
  const raw = process.env[name]?.trim();
  if (!raw) return fallback;
  if (!/^\d+$/.test(raw)) throw new Error(`${name} must be a whole number, got "${raw}"`);
  return Number(raw);
}

/** mulberry32: a small seeded PRNG, so one number replays a run. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

interface Random {
  next(): number;
  int(lo: number, hi: number): number;
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
  shuffle<T>(items: readonly T[]): T[];
}

function random(seed: number): Random {
  const next = mulberry32(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
  return {
    next,
    int,
    chance: (p) => next() < p,
    pick: (items) => items[int(0, items.length - 1)]!,
    shuffle(items) {
      const out = [...items];
      for (let i = out.length - 1; i > 0; i -= 1) {
        const j = int(0, i);
        [out[i], out[j]] = [out[j]!, out[i]!];
      }
      return out;
    },
  };
}

/** Cards dealt from a shuffled deck, reshuffled when empty: every kind comes up at its rate. */
function deck<T>(cards: T[], rng: Random): () => T {
  let left: T[] = [];
  return () => {
    if (left.length === 0) left = rng.shuffle(cards);
    return left.pop()!;
  };
}

const FAULT_DECK: FaultKind[] = [
  ...Array<FaultKind>(2).fill('healthy'),
  ...Array<FaultKind>(3).fill('latency'),
  ...Array<FaultKind>(2).fill('reset'),
  ...Array<FaultKind>(2).fill('trickle'),
  ...Array<FaultKind>(2).fill('refused'),
  'blackhole',
];

type Side = 'database' | 'push';

/** The fault's parameters. Reset points span the whole answer: the gateway's is 94 bytes, a session's 1.3–1.5 KB. */
function faultOf(kind: FaultKind, side: Side, rng: Random): Fault {
  switch (kind) {
    case 'latency':
      return { kind, delayMs: rng.int(5, 60) };
    case 'reset':
      return { kind, afterBytes: side === 'push' ? rng.int(0, 93) : rng.int(0, 1_400) };
    case 'trickle':
      return { kind, bytes: rng.int(1, 64), everyMs: rng.int(2, 25) };
    default:
      return { kind };
  }
}

// ---------------------------------------------------------------------------------------------
// The data: runs the test inserts, moves and deletes between ticks (it is the table's only writer).

type RunKind = 'ready' | 'ready_without_run_at' | 'future' | 'lease_expired' | 'lease_active' | 'running_without_lease' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';
const RUN_KINDS: RunKind[] = ['ready', 'ready', 'ready_without_run_at', 'future', 'lease_expired', 'lease_active', 'lease_active', 'running_without_lease', 'SUCCEEDED', 'SUCCEEDED', 'FAILED', 'CANCELLED'];

interface RunRow {
  status: string;
  run_at: Date | null;
  queued_at: Date;
  lease_expires_at: Date | null;
}

/** A run of `kind`; every run_at and lease is 1–48 h from now, so it keeps its class for the whole run. */
function runOf(kind: RunKind, rng: Random, now: number): RunRow {
  const hours = (lo: number, hi: number) => Math.round((lo + rng.next() * (hi - lo)) * 3_600_000);
  const queued_at = new Date(now - hours(0.2, 72));
  const base = { queued_at, run_at: null, lease_expires_at: null };
  switch (kind) {
    case 'ready':
      return { ...base, status: 'QUEUED', run_at: new Date(now - hours(1, 48)) };
    case 'ready_without_run_at':
      return { ...base, status: 'QUEUED' };
    case 'future':
      return { ...base, status: 'QUEUED', run_at: new Date(now + hours(1, 48)) };
    case 'lease_expired':
      return { ...base, status: 'RUNNING', run_at: new Date(now - hours(1, 48)), lease_expires_at: new Date(now - hours(1, 48)) };
    case 'lease_active':
      return { ...base, status: 'RUNNING', run_at: new Date(now - hours(1, 48)), lease_expires_at: new Date(now + hours(1, 48)) };
    case 'running_without_lease':
      return { ...base, status: 'RUNNING', run_at: new Date(now - hours(1, 48)) };
    default:
      return { ...base, status: kind, run_at: new Date(now - hours(1, 48)) };
  }
}

interface Truth {
  depth: Record<string, number>;
  ready: number;
  future: number;
  expired: number;
  active: number;
  /** RUNNING runs with no lease_expires_at at all. */
  withoutLease: number;
  /** The oldest ready run's queued_at (epoch ms); undefined when none is ready. */
  oldestReadyQueuedAtMs: number | undefined;
  /** The oldest ready run's due time, the later of queued_at and run_at (epoch ms); undefined when none is ready. */
  oldestReadyDueAtMs: number | undefined;
  rows: number;
}

/** The figures, from the rows alone: nothing of the collector's SQL. */
function truthOf(rows: RunRow[], now: number): Truth {
  const truth: Truth = {
    depth: Object.fromEntries(STATUSES.map((s) => [s, 0])),
    ready: 0,
    future: 0,
    expired: 0,
    active: 0,
    withoutLease: 0,
    oldestReadyQueuedAtMs: undefined,
    oldestReadyDueAtMs: undefined,
    rows: rows.length,
  };
  for (const r of rows) {
    truth.depth[r.status] = (truth.depth[r.status] ?? 0) + 1;
    if (r.status === 'QUEUED') {
      if (r.run_at !== null && r.run_at.getTime() > now) truth.future += 1;
      else {
        truth.ready += 1;
        const q = r.queued_at.getTime();
        if (truth.oldestReadyQueuedAtMs === undefined || q < truth.oldestReadyQueuedAtMs) truth.oldestReadyQueuedAtMs = q;
        const due = Math.max(q, r.run_at?.getTime() ?? q);
        if (truth.oldestReadyDueAtMs === undefined || due < truth.oldestReadyDueAtMs) truth.oldestReadyDueAtMs = due;
      }
    }
    if (r.status === 'RUNNING' && r.lease_expires_at !== null) {
      if (r.lease_expires_at.getTime() < now) truth.expired += 1;
      else truth.active += 1;
    }
    if (r.status === 'RUNNING' && r.lease_expires_at === null) truth.withoutLease += 1;
  }
  return truth;
}

// ---------------------------------------------------------------------------------------------
// The gateway, read directly.

type Group = Map<string, number>;

/** One request, no keep-alive: the test holds no pooled socket that would blur the descriptor count. */
function scrape(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(`${url}/metrics`, { agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve(body));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

/** The job's series: `name{labels without job and instance}` → value. */
function groupOf(text: string, job: string): Group {
  const group: Group = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)$/.exec(line);
    if (!m) continue;
    const labels = [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!] as const);
    if (!labels.some(([k, v]) => k === 'job' && v === job)) continue;
    const rest = labels.filter(([k]) => k !== 'job' && k !== 'instance').map(([k, v]) => `${k}="${v}"`);
    group.set(rest.length > 0 ? `${m[1]}{${rest.join(',')}}` : m[1]!, Number(m[3]));
  }
  return group;
}

const GATEWAY_OWN = ['push_time_seconds', 'push_failure_time_seconds'];

function sameGroup(a: Group, b: Group): boolean {
  return a.size === b.size && [...a].every(([k, v]) => b.has(k) && Object.is(b.get(k), v));
}

function show(group: Group): string {
  return JSON.stringify(Object.fromEntries(group));
}

/** What is wrong with a group that must hold this tick's registry after a read (empty: nothing). */
function figureProblems(group: Group, truth: Truth, t0: number, t1: number): string[] {
  const problems: string[] = [];
  const degraded = group.get('xyn_collector_degraded') === 1;
  const statuses = degraded ? ['QUEUED', 'RUNNING'] : STATUSES;
  const oldest = truth.oldestReadyQueuedAtMs;
  const due = truth.oldestReadyDueAtMs;
  const age = (since: number | undefined): number | [number, number] => (since === undefined ? 0 : [(t0 - since) / 1000 - EPS_S, (t1 - since) / 1000 + EPS_S]);
  const expected = new Map<string, number | [number, number]>([
    ...statuses.flatMap((s) => [
      [`xyn_queue_depth{status="${s}"}`, truth.depth[s]!] as const,
      [`xyn_queue_depth_estimated{status="${s}"}`, 0] as const,
    ]),
    ['xyn_queue_ready_depth', truth.ready],
    ['xyn_queue_future_depth', truth.future],
    ['xyn_queue_oldest_ready_seconds', age(oldest)],
    ['xyn_queue_oldest_due_seconds', age(due)],
    ['xyn_running_with_expired_lease', truth.expired],
    ['xyn_running_with_active_lease', truth.active],
    ['xyn_running_without_lease', truth.withoutLease],
    ['xyn_collector_up', 1],
    ['xyn_collector_degraded', degraded ? 1 : 0],
    ['xyn_collector_duration_seconds', [0, (t1 - t0) / 1000 + EPS_S]],
  ]);
  for (const [key, want] of expected) {
    const got = group.get(key);
    if (got === undefined) problems.push(`${key} missing`);
    else if (Array.isArray(want) ? !(got >= want[0] && got <= want[1]) : got !== want) {
      problems.push(`${key} ${got}, expected ${Array.isArray(want) ? `${want[0].toFixed(3)}..${want[1].toFixed(3)}` : want}`);
    }
  }
  for (const key of group.keys()) if (!expected.has(key) && !GATEWAY_OWN.includes(key)) problems.push(`unexpected series ${key}`);
  return problems;
}

/** What is wrong with a group that must hold a failed read's registry. */
function failedReadProblems(group: Group, t0: number, t1: number): string[] {
  const problems: string[] = [];
  if (group.get('xyn_collector_up') !== 0) problems.push(`xyn_collector_up ${group.get('xyn_collector_up')}, expected 0`);
  const duration = group.get('xyn_collector_duration_seconds');
  if (duration === undefined || duration < 0 || duration > (t1 - t0) / 1000 + EPS_S) problems.push(`xyn_collector_duration_seconds ${duration}`);
  for (const key of group.keys()) {
    if (!['xyn_collector_up', 'xyn_collector_duration_seconds', ...GATEWAY_OWN].includes(key)) problems.push(`series ${key} after a failed read (stale value?)`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// The process.

function gcFunction(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

function descriptors(): Map<string, string> {
  const fds = new Map<string, string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      fds.set(fd, readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // the directory's own descriptor, gone already
    }
  }
  return fds;
}

/** Descriptors by kind: socket, pipe, anon_inode:[eventpoll], a file's directory… */
function kinds(fds: Map<string, string>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const target of fds.values()) {
    const kind = target.replace(/:\[\d+\]$/, '').replace(/^\/.*\//, 'file in ');
    counts[kind] = (counts[kind] ?? 0) + 1;
  }
  return counts;
}

interface Measure {
  tick: number;
  fds: Map<string, string>;
  /** V8 heap in use after a full GC. */
  heapMb: number;
  rssMb: number;
  /** Resident pages of V8's young generation (new space), which V8 sizes by itself. */
  youngMb: number;
}

function memory(tick: number, fds: Map<string, string>): Measure {
  const usage = process.memoryUsage();
  const young = getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.physical_space_size ?? 0;
  return { tick, fds, heapMb: usage.heapUsed / 2 ** 20, rssMb: usage.rss / 2 ** 20, youngMb: young / 2 ** 20 };
}

// ---------------------------------------------------------------------------------------------

let db: TestDatabase;
let reader: TestRole;
let gateway: TestPushgateway;
let bridge: Bridge;
let dbProxy: ChaosProxy;
let pushProxy: ChaosProxy;

beforeAll(async () => {
  db = await createTestDatabase('chaos');
  reader = await createReaderRole(db, { iterations: 16 });
  gateway = await startIsolatedPushgateway();
  bridge = await startBridge();
  const pg = new URL(reader.url);
  dbProxy = await startChaosProxy('database', { host: '127.0.0.1', port: Number(pg.port) });
  pushProxy = await startChaosProxy('push', { host: '127.0.0.1', port: gateway.port });
});
afterAll(async () => {
  await pushProxy?.close();
  await dbProxy?.close();
  await bridge?.close();
  await gateway?.stop();
  await reader?.drop();
  await db?.close();
});

type Outcome = 'ok' | 'db_failed' | 'push_failed' | 'db_and_push_failed';
const OUTCOMES: Outcome[] = ['ok', 'db_failed', 'push_failed', 'db_and_push_failed'];

interface Violation {
  tick: number;
  what: string;
  detail: string;
}

describe('chaos soak', () => {
  it(`${TICKS} ticks through faulty proxies in front of PostgreSQL and the Pushgateway (seed ${SEED})`, async () => {
    const rng = random(SEED);
    const gc = gcFunction();
    process.stdout.write(`chaos soak: seed ${SEED} (CHAOS_SEED=${SEED} replays it), ${TICKS} ticks\n`);
    const pgUrl = new URL(reader.url);
    const viaProxy = new URL(reader.url);
    const dealt: Record<Side, () => FaultKind> = { database: deck(FAULT_DECK, rng), push: deck(FAULT_DECK, rng) };

    const ids: number[] = [];
    const insert = async (count: number) => {
      const now = Date.now();
      const rows = Array.from({ length: count }, () => runOf(rng.pick(RUN_KINDS), rng, now));
      const values = rows.map((_, i) => `($${i * 4 + 1}::${db.schema}.run_status, $${i * 4 + 2}::timestamptz, $${i * 4 + 3}::timestamptz, $${i * 4 + 4}::timestamptz)`);
      const inserted = await db.query<{ id: string }>(
        `INSERT INTO ${db.table} (status, run_at, queued_at, lease_expires_at) VALUES ${values.join(', ')} RETURNING id`,
        rows.flatMap((r) => [r.status, r.run_at, r.queued_at, r.lease_expires_at]),
      );
      for (const r of inserted) ids.push(Number(r.id));
    };
    /** One to three changes, so the figures move between ticks. */
    const mutate = async () => {
      for (let n = rng.int(1, 3); n > 0; n -= 1) {
        const op = ids.length < 15 ? 'insert' : ids.length > 120 ? 'delete' : rng.pick(['insert', 'insert', 'move', 'move', 'delete'] as const);
        if (op === 'insert') await insert(rng.int(1, 4));
        else if (op === 'move') {
          const id = rng.pick(ids);
          const r = runOf(rng.pick(RUN_KINDS), rng, Date.now());
          await db.query(`UPDATE ${db.table} SET status = $2, run_at = $3, queued_at = $4, lease_expires_at = $5 WHERE id = $1`, [id, r.status, r.run_at, r.queued_at, r.lease_expires_at]);
        } else {
          const gone = new Set(Array.from({ length: rng.int(1, 2) }, () => rng.pick(ids)));
          await db.query(`DELETE FROM ${db.table} WHERE id = ANY($1::bigint[])`, [[...gone]]);
          for (const id of gone) ids.splice(ids.indexOf(id), 1);
        }
      }
    };
    const truthNow = async () =>
      truthOf(await db.query<RunRow & Record<string, unknown>>(`SELECT status::text AS status, run_at, queued_at, lease_expires_at FROM ${db.table}`), Date.now());
    const backends = async () => Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM pg_stat_activity WHERE usename = $1', [reader.name]))[0]!.n);

    const measure = async (tick: number): Promise<Measure> => {
      const until = Date.now() + 5_000;
      while ((dbProxy.open() > 0 || pushProxy.open() > 0 || (await backends()) > 0) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      gc();
      gc();
      return memory(tick, descriptors());
    };

    await insert(40);
    let weather = { storm: false, left: rng.int(2, 8) };
    const violations: Violation[] = [];
    const violationCounts = new Map<string, number>();
    const violate = (tick: number, what: string, detail: string) => {
      violationCounts.set(what, (violationCounts.get(what) ?? 0) + 1);
      if (violations.length < 25) violations.push({ tick, what, detail });
    };
    const outcomes = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
    const landed = { failedPushLanded: 0, failedPushUnchanged: 0, degraded: 0 };
    const healthy = { ticks: 0, ok: 0, deadline: 0 };
    const transports = { tcp: 0, websocket: 0 };
    let lambdaBound = 0;
    let slowest = { ms: -1, tick: 0, detail: '' };
    let maxOverrun = { ms: -Infinity, tick: 0 };
    const elapsedAll: number[] = [];
    const measures: Measure[] = [];
    const started = Date.now();

    for (let tick = 1; tick <= TICKS; tick += 1) {
      // Draws first, in a fixed order: the same seed gives the same faults and data whatever the timing.
      if (weather.left === 0) weather = weather.storm ? { storm: false, left: rng.int(2, 8) } : { storm: true, left: rng.int(1, 4) };
      weather.left -= 1;
      const planFor = (side: Side): Plan => {
        if (!weather.storm) return { fault: { kind: 'healthy' }, scope: 'every' };
        const fault = faultOf(dealt[side](), side, rng);
        return { fault, scope: rng.chance(0.3) ? 'first' : 'every' };
      };
      const plans: Record<Side, Plan> = { database: planFor('database'), push: planFor('push') };
      const transport = rng.chance(0.5) ? 'tcp' : 'websocket';
      const tight = rng.chance(0.1);
      const lambdaTimeoutMs = tight ? EXIT_MARGIN_MS + rng.int(600, TICK_TIMEOUT_MS - 1) : 30_000;
      await mutate();

      const truth = await truthNow();
      if (truth.rows !== ids.length) violate(tick, 'test bookkeeping', `${truth.rows} rows, ${ids.length} ids`);
      const before = groupOf(await scrape(gateway.url), JOB);

      transports[transport] += 1;
      dbProxy.upstream = { host: '127.0.0.1', port: transport === 'tcp' ? Number(pgUrl.port) : bridge.port };
      await dbProxy.arm(plans.database);
      await pushProxy.arm(plans.push);
      viaProxy.port = String(dbProxy.port);
      const env: Record<string, string | undefined> = {
        DATABASE_URL: transport === 'tcp' ? viaProxy.toString() : reader.url,
        DATABASE_WS_PROXY: transport === 'tcp' ? undefined : `127.0.0.1:${dbProxy.port}/v1`,
        PUSHGATEWAY_URL: `http://127.0.0.1:${pushProxy.port}`,
        PUSHGATEWAY_JOB: JOB,
        RUNS_TABLE: db.table,
        TICK_TIMEOUT_MS: String(TICK_TIMEOUT_MS),
        PUSH_TIMEOUT_MS: String(PUSH_TIMEOUT_MS),
        PUSH_RETRIES: String(PUSH_RETRIES),
        DB_STATEMENT_TIMEOUT_MS: String(DB_STATEMENT_TIMEOUT_MS),
      };
      for (const name of [
        'DB_LOCK_TIMEOUT_MS', 'MAX_EVENT_AGE_SECONDS', 'STATUS_ESTIMATE_ABOVE', 'PUSH_DRY_RUN', 'PUSHGATEWAY_GROUPING', 'PUSHGATEWAY_AUTH',
        'PUSHGATEWAY_USERNAME', 'PUSHGATEWAY_PASSWORD', 'PUSHGATEWAY_TOKEN', 'PUSHGATEWAY_CA_FILE', 'REMOTE_WRITE_URL', 'SAMPLES_PER_INVOCATION',
        'SCHEDULE_PERIOD_SECONDS', 'HEARTBEAT_TABLE', 'BLUEPRINT_COLUMN', 'RUN_STARTED_COLUMN', 'RUN_FINISHED_COLUMN', 'DATABASE_ALLOW_PLAINTEXT',
        'METRICS_BEARER_TOKEN', 'DATABASE_URL_SSM_PARAMETER', 'PUSHGATEWAY_PASSWORD_SSM_PARAMETER', 'PUSHGATEWAY_TOKEN_SSM_PARAMETER',
      ]) env[name] = undefined;

      let t0 = 0;
      const event = scheduledEvent();
      const run = await withEnv(env, () => {
        const context = lambdaContext(lambdaTimeoutMs);
        t0 = Date.now();
        return captureOutput(() => collect(event, context));
      });
      const t1 = Date.now();
      const reports: Record<Side, TickReport> = { database: await dbProxy.disarm(), push: await pushProxy.disarm() };
      const elapsed = t1 - t0;
      elapsedAll.push(elapsed);

      const deadlineMs = Math.min(TICK_TIMEOUT_MS, lambdaTimeoutMs - EXIT_MARGIN_MS);
      if (tight && deadlineMs < TICK_TIMEOUT_MS) lambdaBound += 1;
      const what = `db ${transport} ${describePlan(plans.database)} | push ${describePlan(plans.push)}${tight ? ` | lambda ${lambdaTimeoutMs} ms` : ''}`;
      const line = run.output.trim();
      const context = () => `${what}; ${elapsed} ms; log: ${line.slice(0, 700)}`;

      // In time: the deadline plus the exit margin.
      if (elapsed > deadlineMs + EXIT_MARGIN_MS) violate(tick, 'overran deadline + EXIT_MARGIN_MS', `${elapsed} ms > ${deadlineMs} + ${EXIT_MARGIN_MS}; ${context()}`);
      if (elapsed - deadlineMs > maxOverrun.ms) maxOverrun = { ms: elapsed - deadlineMs, tick };
      if (elapsed > slowest.ms) slowest = { ms: elapsed, tick, detail: what };

      // One log line with the outcome; a failure is one thrown line.
      const lines = line.split('\n').filter(Boolean);
      let record: { outcome?: unknown; error?: unknown } = {};
      try {
        record = JSON.parse(lines[0] ?? '{}') as typeof record;
      } catch {
        // reported below
      }
      if (lines.length !== 1) violate(tick, 'not one log line', context());
      const outcome = record.outcome as Outcome;
      if (!OUTCOMES.includes(outcome)) {
        violate(tick, 'no tick outcome', `${run.error instanceof Error ? run.error.message : JSON.stringify(run.result)}; ${context()}`);
        continue;
      }
      outcomes[outcome] += 1;
      if (run.error === undefined) {
        if (outcome !== 'ok' || (run.result as { outcome?: unknown } | undefined)?.outcome !== 'ok') violate(tick, 'returned, but not ok', context());
      } else {
        const message = run.error instanceof Error ? run.error.message : String(run.error);
        if (outcome === 'ok') violate(tick, 'threw after an ok tick', `${message}; ${context()}`);
        if (message.includes('\n') || !message.startsWith('xyn-metrics ')) violate(tick, 'thrown error not one "xyn-metrics" line', `${message}; ${context()}`);
      }

      // Every connection let go.
      for (const side of ['database', 'push'] as const) {
        if (reports[side].lingering > 0) violate(tick, `${side} connection still open after the tick`, `${reports[side].lingering} open 3 s later; ${context()}`);
      }

      // A healthy tick succeeds (or, on a loaded machine, runs out of time).
      if (plans.database.fault.kind === 'healthy' && plans.push.fault.kind === 'healthy') {
        healthy.ticks += 1;
        if (outcome === 'ok') healthy.ok += 1;
        else if (/did not finish within/.test(String(record.error))) healthy.deadline += 1;
        else violate(tick, 'healthy tick failed (not on a deadline)', context());
      }

      // The gateway.
      let after = groupOf(await scrape(gateway.url), JOB);
      const pushFailed = outcome === 'push_failed' || outcome === 'db_and_push_failed';
      const readFailed = outcome === 'db_failed' || outcome === 'db_and_push_failed';
      if (pushFailed) {
        await new Promise((r) => setTimeout(r, 50));
        const again = groupOf(await scrape(gateway.url), JOB);
        if (!sameGroup(after, again)) violate(tick, 'group changed after the tick ended', `${show(after)} -> ${show(again)}; ${context()}`);
        after = again;
      }
      const pushedAt = after.get('push_time_seconds');
      const moved = pushedAt !== undefined && pushedAt !== before.get('push_time_seconds');
      const scrapedAt = Date.now();
      if (moved && !(pushedAt >= t0 / 1000 - EPS_S && pushedAt <= scrapedAt / 1000 + EPS_S)) {
        violate(tick, 'push time outside the tick', `push_time_seconds ${pushedAt}, tick ${t0 / 1000}..${t1 / 1000}; ${context()}`);
      }
      if (!moved) {
        if (!pushFailed) violate(tick, `${outcome} but the push did not land`, `${show(after)}; ${context()}`);
        else if (!sameGroup(before, after)) violate(tick, 'push failed, group changed without a new push time', `${show(before)} -> ${show(after)}; ${context()}`);
        else landed.failedPushUnchanged += 1;
      } else {
        if (pushFailed) {
          landed.failedPushLanded += 1;
          const sealed = plans.push.scope === 'every' && (plans.push.fault.kind === 'blackhole' || plans.push.fault.kind === 'refused');
          if (sealed) violate(tick, `a push landed through a ${plans.push.fault.kind}`, context());
        }
        if (after.get('xyn_collector_degraded') === 1) landed.degraded += 1;
        const problems = readFailed ? failedReadProblems(after, t0, t1) : figureProblems(after, truth, t0, t1);
        if (problems.length > 0) violate(tick, readFailed ? 'group after a failed read' : 'figures differ from the ground truth', `${problems.join('; ')}; ${context()}`);
      }

      if (process.env.CHAOS_DEBUG) {
        process.stdout.write(`tick ${tick}: ${outcome} ${elapsed} ms ${what}; conns db ${reports.database.connections} (${reports.database.bytesDown} B down) push ${reports.push.connections} (${reports.push.bytesDown} B); ${moved ? 'landed' : 'unchanged'}\n`);
        if (outcome !== 'ok' && process.env.CHAOS_DEBUG === 'lines') process.stdout.write(`  ${line}\n`);
      }
      if (tick === BASELINE_TICK || (tick > BASELINE_TICK && tick % 100 === 0) || tick === TICKS) measures.push(await measure(tick));
    }
    const seconds = (Date.now() - started) / 1000;

    // -------------------------------------------------------------------------------------------
    const base = measures[0]!;
    const last = measures.at(-1)!;
    const sorted = [...elapsedAll].sort((a, b) => a - b);
    const p = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
    const totals = { database: dbProxy.totals(), push: pushProxy.totals() };
    const grown = Object.entries(kinds(last.fds))
      .map(([kind, n]) => [kind, n - (kinds(base.fds)[kind] ?? 0)] as const)
      .filter(([, n]) => n !== 0)
      .map(([kind, n]) => `${kind} ${n > 0 ? '+' : ''}${n}`);
    const faultTable = (['database', 'push'] as const)
      .map((side) => `  ${side.padEnd(8)} ${FAULT_KINDS.map((k) => `${k} ${totals[side][k].armed}/${totals[side][k].applied}/${totals[side][k].connections}`).join(', ')}`)
      .join('\n');
    const rssGrowth = Math.max(...measures.map((m) => m.rssMb)) - base.rssMb;
    // The end: from the first checkpoint at or after RSS_FLAT_TICKS before the last tick.
    const endStart = measures.find((m) => m.tick >= TICKS - RSS_FLAT_TICKS && m !== base) ?? last;
    const rssAtEnd = last.rssMb - endStart.rssMb;
    const longRun = TICKS >= 1_000;
    process.stdout.write(
      [
        `chaos soak: seed ${SEED}, ${TICKS} ticks in ${seconds.toFixed(1)} s (TICK_TIMEOUT_MS ${TICK_TIMEOUT_MS}, PUSH_TIMEOUT_MS ${PUSH_TIMEOUT_MS}, PUSH_RETRIES ${PUSH_RETRIES}, DB_STATEMENT_TIMEOUT_MS ${DB_STATEMENT_TIMEOUT_MS}, EXIT_MARGIN_MS ${EXIT_MARGIN_MS})`,
        `  transports: tcp ${transports.tcp}, websocket ${transports.websocket}; Lambda's remaining time set the deadline on ${lambdaBound} ticks`,
        `  faults (ticks armed/applied/connections affected):`,
        faultTable,
        `  outcomes: ${OUTCOMES.map((o) => `${o} ${outcomes[o]}`).join(', ')}; failed pushes that landed anyway ${landed.failedPushLanded}, left the group unchanged ${landed.failedPushUnchanged}; degraded groups ${landed.degraded}`,
        `  healthy ticks (both sides): ${healthy.ticks}, ok ${healthy.ok}, out of time ${healthy.deadline}`,
        `  tick time p50 ${p(0.5)} ms, p95 ${p(0.95)} ms, max ${slowest.ms} ms (tick ${slowest.tick}: ${slowest.detail}); latest end past the deadline ${maxOverrun.ms} ms (tick ${maxOverrun.tick}; allowed ${EXIT_MARGIN_MS})`,
        `  descriptors ${base.fds.size} at tick ${base.tick} -> ${last.fds.size} at tick ${last.tick} (${grown.length > 0 ? grown.join(', ') : 'same kinds'}; at tick ${base.tick}: ${JSON.stringify(kinds(base.fds))})`,
        `  heap after GC ${base.heapMb.toFixed(2)} -> ${last.heapMb.toFixed(2)} MiB (${signed(last.heapMb - base.heapMb)}, bound ${HEAP_BOUND_MB(last.tick - base.tick).toFixed(2)})`,
        `  RSS ${base.rssMb.toFixed(1)} -> ${last.rssMb.toFixed(1)} MiB (largest rise ${signed(rssGrowth)}, bound ${RSS_BOUND_MB}; ticks ${endStart.tick}-${last.tick} ${signed(rssAtEnd)}${longRun ? `, bound ${RSS_FLAT_MB}` : ''}), of which V8's young generation ${base.youngMb.toFixed(1)} -> ${last.youngMb.toFixed(1)} (largest ${Math.max(...measures.map((m) => m.youngMb)).toFixed(1)})`,
        `  checkpoints: ${measures.map((m) => `tick ${m.tick}: ${m.fds.size} fds, heap ${m.heapMb.toFixed(2)}, RSS ${m.rssMb.toFixed(1)} (young ${m.youngMb.toFixed(1)}) MiB`).join('; ')}`,
        `  proxy ports re-taken after a refused tick: database ${dbProxy.portChanges()}, push ${pushProxy.portChanges()}`,
        `  violations: ${violationCounts.size === 0 ? 'none' : [...violationCounts].map(([w, n]) => `${w} ×${n}`).join(', ')}`,
        ...violations.map((v) => `  tick ${v.tick}: ${v.what}: ${v.detail}`),
        '',
      ].join('\n'),
    );

    expect(violations, `seed ${SEED}: ${violations.map((v) => `tick ${v.tick}: ${v.what}`).join('; ')}`).toEqual([]);
    expect(healthy.ok, 'healthy ticks that succeeded').toBeGreaterThanOrEqual(Math.ceil(healthy.ticks * 0.9));
    // Every kind of fault took effect on each side (the deck deals each of them every 12 storm ticks).
    // Shorter runs (CHAOS_TICKS, for a replay) check every tick as above, but their warm-up is too short for what follows.
    if (TICKS < 200) return;
    for (const side of ['database', 'push'] as const) for (const k of FAULT_KINDS) expect(totals[side][k].applied, `${side} ${k} applied`).toBeGreaterThan(0);
    expect(last.fds.size, `descriptors: ${grown.join(', ')}`).toBeLessThanOrEqual(base.fds.size + FD_BOUND);
    expect(last.heapMb - base.heapMb, 'heap growth after GC (MiB)').toBeLessThan(HEAP_BOUND_MB(last.tick - base.tick));
    expect(rssGrowth, 'RSS growth over the run (MiB)').toBeLessThan(RSS_BOUND_MB);
    if (longRun) expect(rssAtEnd, `RSS growth over the last ${RSS_FLAT_TICKS} ticks (MiB)`).toBeLessThan(RSS_FLAT_MB);
  }, TICKS * 2_000 + 60_000);
});

function signed(mb: number): string {
  return `${mb >= 0 ? '+' : ''}${mb.toFixed(2)}`;
}

function describePlan(plan: Plan): string {
  const { kind, ...params } = plan.fault;
  const values = Object.entries(params).map(([k, v]) => `${k}=${v}`).join(',');
  return `${kind}${values ? `(${values})` : ''}${kind !== 'healthy' && plan.scope === 'first' ? ' first only' : ''}`;
}
