/**
 * A simulated Xyn worker fleet for the demo database, so the numbers move from
 * tick to tick: every step it enqueues new runs (some scheduled ahead), claims
 * ready runs under a lease, renews the leases of the runs it holds, finishes
 * some (mostly SUCCEEDED), and now and then "loses" a run (its worker dies, the
 * lease expires, and a reaper re-queues it later).
 *
 * It uses the PGlite instance in-process, not the socket, and sends only
 * single autocommitted statements: PGlite is one session, and an open
 * multi-statement transaction here would swallow a collector tick's BEGIN.
 */

import type { PGlite } from '@electric-sql/pglite';
import { DEMO_BLUEPRINTS, UNCLAIMED_BLUEPRINT } from './demo-db';

export interface DemoWorker {
  /** Steps done so far (each one a handful of statements). */
  steps(): number;
  stop(): Promise<void>;
}

export interface DemoWorkerOptions {
  /** Milliseconds between steps (default 1000). */
  intervalMs?: number;
  /** Most runs held at once (default 25). */
  capacity?: number;
  /** Seconds a lease lasts before it must be renewed (default 30). */
  leaseSeconds?: number;
  /** Called with an error a step hit; the worker keeps going. */
  onError?: (error: unknown) => void;
  random?: () => number;
}

const LOST = 'lost-';

/** 0..max, mostly small: the number of events of one kind in one step. */
function some(random: () => number, mean: number, max: number): number {
  let n = 0;
  while (n < max && random() < mean / (mean + 1)) n += 1;
  return n;
}

/** The statements of one step, in order; pure so the plan is easy to read. */
export function stepStatements(
  random: () => number,
  state: { ready: number; capacity: number; leaseSeconds: number; workerName: string },
): string[] {
  const { capacity, leaseSeconds, workerName } = state;
  const lease = `interval '${leaseSeconds} seconds'`;
  const statements: string[] = [];

  // Arrivals lean against the backlog so the demo queue neither drains nor floods.
  const arrivals = some(random, state.ready < 25 ? 2.6 : state.ready > 60 ? 0.8 : 1.6, 6);
  for (let i = 0; i < arrivals; i += 1) {
    const blueprint = DEMO_BLUEPRINTS[Math.floor(random() * DEMO_BLUEPRINTS.length)];
    // One in five is scheduled ahead: 20 s to 15 min from now.
    const runAt = random() < 0.2 ? `now() + interval '${Math.round(20 + random() * 880)} seconds'` : 'now()';
    statements.push(`INSERT INTO runs (blueprint, status, run_at, queued_at) VALUES ('${blueprint}', 'QUEUED', ${runAt}, now())`);
  }

  // Finish a share of the runs that have run at least a few seconds.
  statements.push(`UPDATE runs SET status = (ARRAY['SUCCEEDED','SUCCEEDED','SUCCEEDED','SUCCEEDED','SUCCEEDED','SUCCEEDED','SUCCEEDED','SUCCEEDED','FAILED','CANCELLED'])[1 + floor(random() * 10)::int]::run_status,
       finished_at = now(), lease_expires_at = NULL
WHERE id IN (SELECT id FROM runs WHERE status = 'RUNNING' AND worker_id NOT LIKE '${LOST}%'
             AND started_at < now() - interval '4 seconds' AND random() < 0.09)`);

  // Renew the leases of the runs still held (not the lost ones).
  statements.push(`UPDATE runs SET lease_expires_at = now() + ${lease}
WHERE status = 'RUNNING' AND worker_id NOT LIKE '${LOST}%' AND lease_expires_at < now() + ${lease} / 2`);

  // Claim ready runs, oldest first, up to the fleet's capacity.
  const claims = some(random, 2.2, 6);
  statements.push(`UPDATE runs SET status = 'RUNNING', started_at = now(), lease_expires_at = now() + ${lease}, worker_id = '${workerName}'
WHERE id IN (SELECT id FROM runs WHERE status = 'QUEUED' AND (run_at IS NULL OR run_at <= now())
             AND blueprint <> '${UNCLAIMED_BLUEPRINT}' ORDER BY queued_at LIMIT least(${claims}, greatest(0, ${capacity} - (SELECT count(*) FROM runs WHERE status = 'RUNNING'))))`);

  // Now and then a worker dies holding a run: nobody renews it, its lease expires.
  if (random() < 0.06) {
    statements.push(`UPDATE runs SET worker_id = '${LOST}' || worker_id
WHERE id = (SELECT id FROM runs WHERE status = 'RUNNING' AND worker_id NOT LIKE '${LOST}%' ORDER BY random() LIMIT 1)`);
  }

  // The reaper: a run whose lease expired over two minutes ago goes back to the queue.
  statements.push(`UPDATE runs SET status = 'QUEUED', worker_id = NULL, started_at = NULL, lease_expires_at = NULL, run_at = now()
WHERE status = 'RUNNING' AND lease_expires_at < now() - interval '2 minutes'`);
  return statements;
}

export function startDemoWorker(pg: PGlite, options: DemoWorkerOptions = {}): DemoWorker {
  const intervalMs = options.intervalMs ?? 1_000;
  const capacity = options.capacity ?? 25;
  const leaseSeconds = options.leaseSeconds ?? 30;
  const random = options.random ?? Math.random;
  let count = 0;
  let stopped = false;
  let current: Promise<void> = Promise.resolve();

  const step = async () => {
    const worker = `worker-${1 + Math.floor(random() * 6)}`;
    const counted = await pg.query<{ ready: number }>(
      `SELECT count(*)::int AS ready FROM runs WHERE status = 'QUEUED' AND (run_at IS NULL OR run_at <= now())`,
    );
    const ready = counted.rows[0]?.ready ?? 0;
    for (const sql of stepStatements(random, { ready, capacity, leaseSeconds, workerName: worker })) {
      if (stopped) return;
      await pg.query(sql);
    }
    count += 1;
  };

  // One step after another, never two at once; a slow step just delays the next.
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    timer = setTimeout(() => {
      current = step().catch((error: unknown) => options.onError?.(error));
      void current.then(() => {
        if (!stopped) schedule();
      });
    }, intervalMs);
    timer.unref();
  };
  schedule();

  return {
    steps: () => count,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await current;
    },
  };
}
