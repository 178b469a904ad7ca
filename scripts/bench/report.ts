/**
 * The benchmark's output: a plain-text table for the terminal,
 * docs/benchmarks.md (machine, date, method, figures, targets) and the README's
 * performance table. Pure functions of the measured figures.
 */

import { HISTORY_BUDGET_SHARE } from '../../lib/source/read';
import type { SecretColdStart, Spread } from './cold';

export interface Percentiles {
  p50: number;
  p95: number;
}

export interface SizeResult {
  label: string;
  /** Where the active runs sit in the history (scripts/bench/data.ts). */
  shape: 'newest' | 'spread';
  rows: number;
  /** QUEUED runs the dataset was built for (1% of the table, or of the @ size). */
  queuedTarget: number;
  counts: Record<string, number>;
  tableBytes: number;
  indexBytes: number;
  bytesPerRow: number;
  allVisible: number;
  reused: boolean;
  buildSeconds: number;
  db: {
    rounds: number;
    seedMs: number;
    seedPerQueryMs: number[];
    /** STATUS_ESTIMATE_ABOVE=off: every status counted. */
    exactMs: number;
    exactPlanningMs: number;
    /** The default configuration (STATUS_ESTIMATE_ABOVE at its default). */
    defaultMs: number;
    defaultPlanningMs: number;
    /** A degraded tick's second statement: the alerting figures alone. */
    alertingMs: number;
    /** The flow extra's SELECT (both time columns) at the default window, and at the wide one. */
    flowMs?: number;
    flowWideMs?: number;
    /** The statement before each SELECT that sets its share of the budget. */
    budgetStatementMs?: number;
    /** The default configuration again, timed interleaved with every other table of the run. */
    defaultSideBySideMs?: number;
    seqScansOnRuns: number;
  };
  e2e: { ticks: number; seedTicks: number; seed: Percentiles; exact: Percentiles; default: Percentiles; connect: Percentiles };
  /** What the flow SELECT read: runs started and finished in each window; its figures equal to a brute force. */
  flow?: {
    windowSeconds: number;
    wideWindowSeconds: number;
    rows: { started: number; finished: number };
    wideRows: { started: number; finished: number };
    verified: boolean;
  };
  /** Statuses the default configuration estimates. */
  estimatedStatuses: string[];
  /** The estimated status furthest from its true count, relative error. */
  largestEstimateError: { status: string; error: number } | undefined;
  exactCountsVerified: boolean;
}

export interface BenchReport {
  date: string;
  finished: string;
  command: string;
  machine: {
    cpus: number;
    cpuModel: string;
    memGiB: number;
    os: string;
    node: string;
    loadBefore: number[];
    loadAfter: number[];
  };
  postgres: { version: string; settings: string[] };
  /** The default configuration's STATUS_ESTIMATE_ABOVE. */
  estimateAbove: number;
  sizes: SizeResult[];
  artifact: {
    zipBytes: number;
    entries: { name: string; bytes: number; compressedBytes: number }[];
    bundleBytes: number;
    runs: number;
    processWithRequireMs: number;
    processBaselineMs: number;
    requireMs: number;
  };
}

const ms = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));
const pct = (p: Percentiles) => `${ms(p.p50)} / ${ms(p.p95)}`;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const int = (n: number) => n.toLocaleString('en-US');

function pad(cells: string[][]): string {
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  return cells.map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

const name = (s: SizeResult) => `${s.label} (${s.shape})`;
const ratio = (a: number, b: number) => `${(a / b).toFixed(1)}×`;

export function renderTable(sizes: SizeResult[]): string {
  const head = [
    'size', 'rows', 'heap', 'db seed 4q', 'db exact', 'db default', 'seed/default', 'db degraded re-read', 'db flow',
    'e2e seed p50/p95', 'e2e exact p50/p95', 'e2e default p50/p95',
  ];
  const rows = sizes.map((s) => [
    name(s), int(s.rows), mib(s.tableBytes), `${ms(s.db.seedMs)} ms`, `${ms(s.db.exactMs)} ms`, `${ms(s.db.defaultMs)} ms`,
    ratio(s.db.seedMs, s.db.defaultMs), `${ms(s.db.alertingMs)} ms`, s.db.flowMs === undefined ? '-' : `${ms(s.db.flowMs)} ms`,
    `${pct(s.e2e.seed)} ms`, `${pct(s.e2e.exact)} ms`, `${pct(s.e2e.default)} ms`,
  ]);
  return pad([head, ...rows]);
}

export interface TargetVerdict {
  name: string;
  met: boolean | undefined;
  detail: string;
}

/** How much less database time the seed needs than the default configuration, per shape (issue 13). */
export const SEED_RATIO_TARGET = { newest: 10, spread: 5 } as const;
/** The default configuration at 10M runs against 1M, the active queue held fixed (issue 13). */
export const GROWTH_TARGET = 1.5;
/** What the flow extra may add to a tick's database time at 10M runs, default window (issue 23). */
export const FLOW_ADDED_MS_TARGET = 5;

/** The flow extra's added database time per tick: its SELECT and the budget statement before it. */
export function flowAddedMs(s: SizeResult): number | undefined {
  return s.db.flowMs === undefined ? undefined : s.db.flowMs + (s.db.budgetStatementMs ?? 0);
}

/** The targets, judged from the figures (undefined: the size needed was not run). */
export function judgeTargets(report: BenchReport): TargetVerdict[] {
  const verdicts: TargetVerdict[] = [];
  for (const shape of ['newest', 'spread'] as const) {
    const ofShape = report.sizes.filter((s) => s.shape === shape);
    if (ofShape.length === 0) continue;
    const oneM = ofShape.find((s) => s.label === '1m');
    const target = SEED_RATIO_TARGET[shape];
    verdicts.push(
      oneM
        ? {
            name: `${shape}: at 1M runs, >= ${target}x less database time per tick than the seed's four queries (default configuration)`,
            met: oneM.db.seedMs / oneM.db.defaultMs >= target && oneM.exactCountsVerified && oneM.db.seqScansOnRuns === 0,
            detail: `${ms(oneM.db.seedMs)} ms / ${ms(oneM.db.defaultMs)} ms = ${ratio(oneM.db.seedMs, oneM.db.defaultMs)}; figures equal to a brute-force reference (estimates within the allowance): ${oneM.exactCountsVerified ? 'yes' : 'NO'}; sequential scans of runs in the plans: ${oneM.db.seqScansOnRuns}`,
          }
        : { name: `${shape}: at 1M runs, >= ${target}x less database time than the seed`, met: undefined, detail: 'size 1m not run' },
    );
    const tenM = oneM && ofShape.find((s) => s.rows >= 10_000_000 && s.queuedTarget === oneM.queuedTarget);
    // Side by side where measured (both tables timed in the same rounds), else each table's own rounds.
    const sideBySide = oneM?.db.defaultSideBySideMs !== undefined && tenM?.db.defaultSideBySideMs !== undefined;
    const dflt = (s: SizeResult) => (sideBySide ? s.db.defaultSideBySideMs! : s.db.defaultMs);
    verdicts.push(
      oneM && tenM
        ? {
            name: `${shape}: default configuration, database time per tick at ${tenM.label} within ${GROWTH_TARGET}x of that at 1m (same active queue)`,
            met: dflt(tenM) <= GROWTH_TARGET * dflt(oneM),
            detail: `${ms(dflt(tenM))} ms vs ${ms(dflt(oneM))} ms = ${(dflt(tenM) / dflt(oneM)).toFixed(2)}x${sideBySide ? ', timed side by side' : ''} (${int(oneM.queuedTarget)} QUEUED in both; the history grew 10x). Exact counts for comparison: ${ms(tenM.db.exactMs)} ms vs ${ms(oneM.db.exactMs)} ms = ${(tenM.db.exactMs / oneM.db.exactMs).toFixed(1)}x`,
          }
        : { name: `${shape}: default configuration at 10M within ${GROWTH_TARGET}x of 1M`, met: undefined, detail: 'sizes 1m and 10m@1m not both run' },
    );
    const big = ofShape.find((s) => s.rows >= 10_000_000 && flowAddedMs(s) !== undefined);
    verdicts.push(
      big
        ? {
            name: `${shape}: the flow figures (both time columns, ${big.flow!.windowSeconds} s window) add at most ${FLOW_ADDED_MS_TARGET} ms of database time per tick at ${big.label}`,
            met: flowAddedMs(big)! <= FLOW_ADDED_MS_TARGET && big.flow!.verified && big.db.seqScansOnRuns === 0,
            detail: `${ms(big.db.flowMs!)} ms (the flow SELECT) + ${ms(big.db.budgetStatementMs ?? 0)} ms (its budget statement) = ${ms(flowAddedMs(big)!)} ms, over ${int(big.flow!.rows.started)} runs started and ${int(big.flow!.rows.finished)} finished in the window; figures equal to a brute force: ${big.flow!.verified ? 'yes' : 'NO'}; at an hour (${int(big.flow!.wideRows.started)} started, ${int(big.flow!.wideRows.finished)} finished): ${ms(big.db.flowWideMs!)} ms`,
          }
        : { name: `${shape}: the flow figures add at most ${FLOW_ADDED_MS_TARGET} ms at 10M runs`, met: undefined, detail: 'no size of 10M runs or more with the flow measured' },
    );
    if (oneM) {
      verdicts.push({
        name: `(for the record) ${shape}: exact counts (STATUS_ESTIMATE_ABOVE=off) at 1M against the seed`,
        met: undefined,
        detail: `${ms(oneM.db.seedMs)} ms / ${ms(oneM.db.exactMs)} ms = ${ratio(oneM.db.seedMs, oneM.db.exactMs)}: the floor of exact terminal counts is a count of the whole history`,
      });
    }
  }
  return verdicts;
}

/**
 * What an index-only count of a status costs, from the figures: the statuses
 * the default configuration estimates are exactly what exact mode counts on
 * top, so their true size over the time difference is the counting rate.
 */
export function countRate(s: SizeResult): number | undefined {
  const counted = s.estimatedStatuses.reduce((sum, status) => sum + (s.counts[status] ?? 0), 0);
  const savedMs = s.db.exactMs - s.db.defaultMs;
  return counted > 0 && savedMs > 0 ? counted / (savedMs / 1000) : undefined;
}

export const README_TABLE_START = '<!-- bench: performance table, written by npm run bench -->';
export const README_TABLE_END = '<!-- bench: end of performance table -->';

/** The README's performance table: database time per tick, the default configuration first. */
export function renderReadmeTable(r: BenchReport): string {
  // The default column compares tables, so it shows the side-by-side timings where the run has them.
  const sideBySide = r.sizes.every((s) => s.db.defaultSideBySideMs !== undefined);
  return [
    `| active runs | runs in the table | collector, default${sideBySide ? ' †' : ''} | collector, exact (\`STATUS_ESTIMATE_ABOVE=off\`) | seed's four queries |`,
    '|---|---:|---:|---:|---:|',
    ...r.sizes.map(
      (s) =>
        `| ${s.shape === 'newest' ? 'newest' : 'spread through the history'} | ${s.label === '1m' ? '1M' : `${countLabel(s.rows)}, same ${int(s.counts.QUEUED ?? 0)}-run queue`} | ${ms(sideBySide ? s.db.defaultSideBySideMs! : s.db.defaultMs)} ms | ${ms(s.db.exactMs)} ms | ${ms(s.db.seedMs)} ms |`,
    ),
    '',
    `Measured ${r.date.slice(0, 10)} by \`${r.command}\` on ${r.machine.cpus} cores shared with other work (load ${r.machine.loadBefore[0]!.toFixed(1)} at the start: absolute times are inflated, ratios much less).` +
      (sideBySide ? ' † all four tables timed in the same interleaved rounds; the other columns each table in its own rounds, minutes apart.' : ''),
  ].join('\n');
}

const countLabel = (n: number) => (n % 1_000_000 === 0 ? `${n / 1_000_000}M` : int(n));

/** `readme` with the text between the bench markers replaced by this run's table. */
export function replaceReadmeTable(readme: string, r: BenchReport): string {
  const start = readme.indexOf(README_TABLE_START);
  const end = readme.indexOf(README_TABLE_END);
  if (start < 0 || end < start) throw new Error(`the README has no "${README_TABLE_START}" … "${README_TABLE_END}" markers`);
  return `${readme.slice(0, start + README_TABLE_START.length)}\n${renderReadmeTable(r)}\n${readme.slice(end)}`;
}

const MARK = (met: boolean | undefined) => (met === undefined ? '—' : met ? 'met' : '**NOT met**');

export function renderMarkdown(r: BenchReport): string {
  const m = r.machine;
  const a = r.artifact;
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
  const rate = r.sizes.map(countRate).find((x) => x !== undefined);
  const lines: string[] = [];
  lines.push(
    '# Benchmarks',
    '',
    `Written by \`${r.command}\` (scripts/bench/main.ts), which also writes the README's performance table; run it again to refresh both.`,
    '',
    'The chaos soak\'s figures (`npm run soak`: 1,000 ticks through faulty proxies, descriptors, heap and RSS over the run) are in [chaos-soak.md](chaos-soak.md).',
    '',
    '## Machine',
    '',
    `- date: ${r.date} (finished ${r.finished})`,
    `- CPU: ${m.cpus} × ${m.cpuModel}; memory ${m.memGiB.toFixed(1)} GiB; ${m.os}; Node ${m.node}`,
    `- load average (1/5/15 min) before: ${load(m.loadBefore)}, after: ${load(m.loadAfter)} — other work shared the machine (on ${m.cpus} cores), which is why every comparison below is measured side by side, interleaved, in one run; absolute times are inflated by it, the ratios much less`,
    `- PostgreSQL: ${r.postgres.version}; ${r.postgres.settings.join(', ')}; same host, loopback`,
    '',
    '## Method',
    '',
    '- **Data** (scripts/bench/data.ts): a `runs` table with the schema and indexes of scripts/support/runs-schema.ts (the seed\'s four, plus `ix_runs_finished_at` and `ix_runs_started_at` for the opt-in extras; only the flow SELECT uses them), filled by one `INSERT … SELECT generate_series` and then `VACUUM (ANALYZE)`. Rows carry a jsonb payload (a few hundred bytes; see B/row). About 1% of the runs are QUEUED (a fifth of them with `run_at` days ahead, a tenth with no `run_at`), about 0.1% RUNNING (a tenth with an expired lease), the rest terminal (≈88% SUCCEEDED, 9% FAILED, 3% CANCELLED). Two data shapes: **newest**, the active runs among the newest ids (the physical tail of the heap), as in a queue drained in order; **spread**, the active runs anywhere in the history, queued when their neighbours were (old stuck runs): the QUEUED rows are scattered over the whole heap and the oldest ready run is months old. A size `10m@1m` is 10M runs whose active queue is that of the 1m table: the history grew 10×, the queue did not — what a table that keeps every run does over time.',
    '- **Database time per tick** is measured on the server: `EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON)`, planning + execution time. The collector\'s statement is explained inside the very batch the tick sends (`snapshotBatch`: READ ONLY REPEATABLE READ, its SET LOCALs, the statement that gives it its share of the budget); the seed\'s four queries each on their own, as the seed sends them, summed. Median of the rounds after one warm-up round; the shapes run in rotating order each round. (pg_stat_statements would need a server restart to load, so it is not used.)',
    `- **Default** is the collector as shipped: \`STATUS_ESTIMATE_ABOVE\` unset, i.e. ${int(r.estimateAbove)}: a terminal status whose planner estimate is above it comes from the statistics, every other figure is counted. **Exact** is \`STATUS_ESTIMATE_ABOVE=off\`: every status counted. **Degraded re-read** is the statement a degraded tick sends in its second round trip (the alerting figures alone). **Flow** is the opt-in flow SELECT with both time columns (\`RUN_STARTED_COLUMN\`, \`RUN_FINISHED_COLUMN\`), timed in the same rounds.`,
    '- **Checked figures**: before timing, both configurations\' snapshots are compared, in one REPEATABLE READ transaction (one `now()`), with a brute-force reference that aggregates the whole table with index scans disabled. Exact: every figure equal. Default: every figure equal except the estimated statuses, which must be within 1% of the table\'s rows of their true count (ANALYZE samples 30,000 rows; that is over three standard errors). The run stops if a check fails. Every explained plan is also walked for sequential scans of `runs`.',
    '- **End to end**: ticks through the real Neon driver, the WebSocket bridge (scripts/bridge/bridge.ts) and a real Pushgateway started for the run: the collector is `runTick` (lib/runtime/tick.ts) with a `parseConfig` configuration; the seed shape opens the same driver client, sends its four queries as four round trips, closes, builds the registry and pushes it. The shapes are interleaved tick by tick; two warm-up ticks each are not counted. Wall-clock ms, nearest-rank p50 and p95.',
    '- **Artifact**: `bash scripts/deploy/package.sh` (serverless package with serverless-esbuild, as a deploy does); the zip is unpacked to a temporary directory and `node -e "require(\'./functions/collect.cjs\')"` (the scheduled handler) is timed in fresh processes, interleaved with a bare `node -e ""`; the require alone is also timed inside the process.',
    '',
    '## Figures',
    '',
    'Database time per tick, measured on the server (median; for the collector, the part spent planning in brackets):',
    '',
    '| size (shape) | rows | heap (B/row) | indexes | seed, 4 queries | collector, default | collector, exact | seed ÷ default | degraded re-read |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...r.sizes.map(
      (s) =>
        `| ${name(s)} | ${int(s.rows)} | ${mib(s.tableBytes)} (${s.bytesPerRow}) | ${mib(s.indexBytes)} | ${ms(s.db.seedMs)} ms | ${ms(s.db.defaultMs)} ms (${ms(s.db.defaultPlanningMs)}) | ${ms(s.db.exactMs)} ms (${ms(s.db.exactPlanningMs)}) | ${ratio(s.db.seedMs, s.db.defaultMs)} | ${ms(s.db.alertingMs)} ms |`,
    ),
    '',
    ...(r.sizes.some((s) => s.db.defaultSideBySideMs !== undefined)
      ? [
          `The default configuration timed again on every table side by side (the tables in rotating order each round, same rounds; median): ${r.sizes.map((s) => `${name(s)} ${ms(s.db.defaultSideBySideMs ?? NaN)} ms`).join(' · ')}. The growth targets use these: each table's own rounds above were minutes apart, under different load.`,
          '',
        ]
      : []),
    ...(r.sizes.some((s) => s.db.flowMs !== undefined)
      ? [
          '### The flow figures',
          '',
          `What the opt-in flow SELECT (both time columns) adds to a tick's database time, measured on the server in the same rounds as the figures above (median), with what it read; "budget statement" is the \`set_config\` that precedes every SELECT of the batch to give it its share of the budget (one per SELECT, the queue snapshot's included). The flow SELECT reads \`ix_runs_finished_at\` and \`ix_runs_started_at\` ranges only (plans walked: no sequential scan), and its figures equal a brute force over the whole table at both windows. The queue snapshot's due age and runs without a lease come from rows it fetches anyway; they are inside "collector, default" above.`,
          '',
          '| size (shape) | flow, default window | runs in it (started / finished) | budget statement | flow, 1 h window | runs in it (started / finished) |',
          '|---|---:|---:|---:|---:|---:|',
          ...r.sizes.filter((s) => s.flow).map(
            (s) =>
              `| ${name(s)} | ${ms(s.db.flowMs!)} ms (${s.flow!.windowSeconds} s) | ${int(s.flow!.rows.started)} / ${int(s.flow!.rows.finished)} | ${ms(s.db.budgetStatementMs ?? NaN)} ms | ${ms(s.db.flowWideMs!)} ms | ${int(s.flow!.wideRows.started)} / ${int(s.flow!.wideRows.finished)} |`,
          ),
          '',
          'The runs in the windows are a steady stream of two finishes a second (scripts/bench/data.ts gives the newest terminal runs fresh times on every run), busier than the tables\' own year of history (a run every 31 s at 1M, every 3 s at 10M). The cost follows the runs started and finished in the window (one index entry and one heap row each, and the sort of the waits), never the history: the same at 1M and 10M, and the 1 h column is the same statement over twelve times as many runs.',
          '',
        ]
      : []),
    'End-to-end tick latency, p50 / p95 (ms), through the Neon driver, the bridge and the Pushgateway; the last column is a driver connect + close alone, which every tick of either shape pays:',
    '',
    '| size (shape) | seed shape | collector, default | collector, exact | connect + close alone |',
    '|---|---:|---:|---:|---:|',
    ...r.sizes.map((s) => `| ${name(s)} | ${pct(s.e2e.seed)} | ${pct(s.e2e.default)} | ${pct(s.e2e.exact)} | ${pct(s.e2e.connect)} |`),
  );
  lines.push(
    '',
    `Database time: median of ${r.sizes[0]?.db.rounds ?? '?'} rounds per shape. End to end: ${r.sizes[0]?.e2e.ticks ?? '?'} ticks per collector configuration and for the connect baseline; the seed shape ${[...new Set(r.sizes.map((s) => s.e2e.seedTicks))].length === 1 ? `${r.sizes[0]?.e2e.seedTicks} ticks` : r.sizes.map((s) => `${s.e2e.seedTicks} ticks at ${name(s)}`).join(', ')} (above 1M rows a seed tick takes seconds, so fewer were run there; its p95 over few ticks is rough).`,
    '',
    'The seed\'s database time by query (median ms): 1 `GROUP BY status` · 2 ready/future `FILTER` over the whole table · 3 oldest ready `MIN(queued_at)` · 4 leases:',
    '',
    '| size (shape) | 1 | 2 | 3 | 4 |',
    '|---|---:|---:|---:|---:|',
    ...r.sizes.map((s) => `| ${name(s)} | ${s.db.seedPerQueryMs.map(ms).join(' | ')} |`),
    '',
    'The datasets:',
    '',
    '| size (shape) | QUEUED | RUNNING | SUCCEEDED | FAILED | CANCELLED | estimated by default (largest error) | all-visible pages | built |',
    '|---|---:|---:|---:|---:|---:|---|---:|---|',
    ...r.sizes.map(
      (s) =>
        `| ${name(s)} | ${['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'].map((k) => int(s.counts[k] ?? 0)).join(' | ')} | ${s.estimatedStatuses.join(', ') || 'none'}${s.largestEstimateError ? `; largest error ${(s.largestEstimateError.error * 100).toFixed(1)}% (${s.largestEstimateError.status})` : ''} | ${(s.allVisible * 100).toFixed(0)}% | ${s.reused ? 'reused' : `in ${s.buildSeconds.toFixed(0)} s`} |`,
    ),
    '',
    `**Deployed artifact**: zip ${int(a.zipBytes)} bytes (${(a.zipBytes / 1024).toFixed(1)} KiB) holding ${a.entries.map((e) => `\`${e.name}\` (${int(e.bytes)} bytes, ${int(e.compressedBytes)} compressed)`).join(' and ')}. Cold start of the scheduled handler (median of ${a.runs} fresh processes): \`node\` + require of the bundle ${ms(a.processWithRequireMs)} ms vs bare \`node\` ${ms(a.processBaselineMs)} ms; the require alone ${ms(a.requireMs)} ms.`,
    '',
    '## Targets',
    '',
    '| target | result | figures |',
    '|---|---|---|',
    ...judgeTargets(r).map((v) => `| ${v.name} | ${MARK(v.met)} | ${v.detail} |`),
    '',
    READING,
    '',
    defaultTrade(r.estimateAbove, rate),
  );
  return `${lines.join('\n')}\n`;
}

const HISTORY_SHARE_TEXT = `${HISTORY_BUDGET_SHARE * 100}%`;

const READING = `## Reading the figures

- **Database time** is the figure the targets are about: it is what the tick
  costs the database, and it is what grows with the table.
- **End to end** adds what every tick pays whatever its SQL: a fresh driver
  connection (WebSocket through the bridge, startup, password authentication),
  closing it, and the push. On this 2-core machine that fixed part is
  most of a small table's tick (compare the "connect + close alone" column);
  the seed shape adds three more round trips and its database time on top.
  Against Neon the round trips are network round trips, so one batch instead
  of four counts for more there than on loopback.
- Absolute numbers move with the machine's load (see the load averages);
  the shapes were interleaved, so the ratios are the robust part.
- The seed's figures are not the same figures: it counts a QUEUED run without
  \`run_at\` neither as ready nor as future, and reports only the statuses
  present. Its queries are timed verbatim.

## Why the collector is cheaper

The seed reads the whole table every tick: query 2 counts ready/future with a
\`FILTER\` over every row (a sequential scan whose cost is the size of the
history), query 1 aggregates every index entry, and query 3's \`MIN(queued_at)\`
is planned as a walk of \`ix_runs_queued_at\` from the oldest run until it meets
a ready QUEUED one; where the QUEUED runs are the newest, that walk visits
nearly the whole history, row by row through the heap (where they are spread,
it meets one early). Four round trips come on top.

The collector sends one statement in one round trip. Ready, future and the
oldest ready run read only the QUEUED entries of \`ix_runs_status\`, the lease
figures only the RUNNING ones: those parts cost what the active queue costs.
Where the active runs are spread through the history, those entries point
into pages all over the heap, one page read per run instead of a few dozen
runs per page: that is the spread shape's higher floor, and it still follows
the queue, not the history. The per-status depths find the statuses present
by a loose index scan (one probe per status); by default a status the
statistics put above the threshold is read from them, the others are counted
with an index-only scan. The batch turns JIT off: the planner cannot know that
the loose scan finds five statuses, over-costs the counts, and would otherwise
spend longer compiling than the statement takes to run.

Index-only scans skip the heap only on pages the visibility map marks
all-visible, which (auto)vacuum maintains. On a big, busy \`runs\` table let
autovacuum come by often, e.g.
\`ALTER TABLE runs SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_insert_scale_factor = 0.01);\`
(the defaults wait for 20% of the table to change). Without a fresh visibility
map the counts stay correct and the plan still avoids sequential scans
(test/integration/plan.test.ts checks both states), but they read more pages.

## A degraded tick

The batch sets a savepoint before its SELECTs (the extras, then the queue
snapshot) and gives them together ${HISTORY_SHARE_TEXT} of the statement budget
(\`DB_STATEMENT_TIMEOUT_MS\`, 5 s by default), each SELECT what is left of its
cumulative share. If the server stops the batch at one (the history part over
its share, a lock timeout, an extra's missing table), what completed is kept
and a second round trip on the same connection rolls back to the savepoint and
reads the alerting figures and the extras not yet reached, in the same
transaction (the same snapshot and \`now()\`), under what is left of the budget.
The push then carries every alerting gauge, exact, with
\`xyn_collector_degraded 1\`; the part that failed is absent and the log line
names it. A degraded tick costs the failed SELECT's share (at most
${HISTORY_SHARE_TEXT} of the statement timeout when it is a timeout, less for an
error), one more round trip, and the re-read: "degraded re-read" above, what
the active queue costs. The normal tick stays one round trip.`;

function defaultTrade(estimateAbove: number, rate: number | undefined): string {
  const rateText = rate
    ? `Here an index-only count went through ${(rate / 1e6).toFixed(0)} million entries per second under the run's load (the statuses the default estimates, over the time exact mode spent on them), so a status at the threshold costs about ${ms((estimateAbove / rate) * 1000)} ms to count`
    : 'An index-only count goes through some ten to twenty-five million entries per second on one core here';
  return `## The default's trade: estimates above ${int(estimateAbove)}

What grows with the history is the exact count of each terminal status:
counting a status costs time proportional to its rows, even as an index-only
scan, and the floor of exact terminal counts is a count of the whole history.
So by default (\`STATUS_ESTIMATE_ABOVE\` unset, i.e. ${int(estimateAbove)}) a terminal status whose
estimated count is above ${int(estimateAbove)} is reported from the planner's statistics
(the status's most-common-value frequency in \`pg_stats\` times the table's row
estimate, scaled to the table's current size as the planner does), and a
status at or below it is counted exactly. Each exact count is then bounded
by the threshold, and the tick's cost stops growing with the history: it
follows the active queue. \`STATUS_ESTIMATE_ABOVE=off\` counts every status
exactly; \`STATUS_ESTIMATE_ABOVE=N\` moves the threshold.

- QUEUED and RUNNING, ready, future, the oldest ready age and both lease
  gauges stay exact, always, whatever their size: every alerting gauge is exact.
- An estimated status is approximate. \`ANALYZE\` samples 30,000 rows
  whatever the table's size (300 × the statistics target), so a status's share
  is known to within about ±sqrt(p(1-p)/30000) of the table (one standard
  error): a status that is 88% of the table is off by well under 1% of its
  count, one that is 1% of a 10M table (100,000 runs) by about 6%. See the
  largest error per size above. \`ALTER TABLE runs ALTER COLUMN status SET
  STATISTICS 1000\` samples ten times more. The figure is also as stale as the
  statistics, so it moves in steps when (auto)analyze runs, not every tick:
  \`rate()\`/\`increase()\` over such a series means little; use it for the
  table's shape, not for alerting.
- \`xyn_queue_depth_estimated{status}\` is 1 for an estimated status and 0 for a
  counted one (dashboards mark the estimated series), and the tick's log line
  names the estimated statuses (\`estimated_statuses\`).
- Why ${int(estimateAbove)}: the threshold bounds what the exact counts can cost and what the
  estimates can be off by, in opposite directions. ${rateText}; with at most
  three terminal statuses below it, the exact part stays within a few tens
  of milliseconds, against a 5 s statement timeout (two orders of magnitude
  of headroom for a small, busy compute). A higher threshold lets more of the
  history be counted on every tick (at 1,000,000, up to ten times as long per
  status, a few hundred milliseconds for three statuses under load); a lower
  one would estimate smaller statuses, whose relative error is larger (a
  status of 50,000 in a 10M table is known to about 8%, against 6% at
  100,000). A table whose statistics do not yet know a status (no ANALYZE
  since it appeared) counts it exactly.
`;
}

/** What the first SSM read may add to a cold start (issue 20). */
export const SECRET_READ_TARGET_MS = 50;

export const COLD_SECRETS_START = '<!-- bench: cold start with a secret from SSM, written by npm run bench -- --cold-secrets -->';
export const COLD_SECRETS_END = '<!-- bench: end of cold start with a secret from SSM -->';

export interface ColdSecretsReport {
  date: string;
  command: string;
  machine: BenchReport['machine'];
  cold: SecretColdStart;
  /** Where each variant came from (commit, or a directory), by label. */
  sources: Record<string, string>;
}

const spreadText = (s: Spread) => `${ms(s.median)} (${ms(s.p25)}–${ms(s.p75)}; ${ms(s.min)}–${ms(s.max)})`;

/** The section of docs/benchmarks.md on the cold start of a first invocation whose secret is in SSM, markers included. */
export function renderColdSecrets(r: ColdSecretsReport): string {
  const m = r.machine;
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
  const ours = r.cold.variants.find((v) => !v.loadsSdk);
  const sdk = r.cold.variants.find((v) => v.loadsSdk);
  const verdict = (value: number) => (value <= SECRET_READ_TARGET_MS ? 'met' : 'NOT met');
  const table = (what: 'wallMs' | 'cpuMs') => [
    '| variant | require (init) | first invocation, no SSM | first invocation, secret from SSM | the read adds |',
    '|---|---:|---:|---:|---:|',
    ...r.cold.variants.map((v) => `| ${v.label} | ${spreadText(v.require[what])} | ${spreadText(v.plain[what])} | ${spreadText(v.ssm[what])} | ${spreadText(v.readAdds[what])} |`),
    `| bare \`node\` | ${spreadText(r.cold.node[what])} | | | |`,
  ];
  return [
    COLD_SECRETS_START,
    '## Cold start with a secret from SSM',
    '',
    `Written by \`${r.command}\` on ${r.date} (${m.cpus} × ${m.cpuModel}; ${m.os}; Node ${m.node}; load average before ${load(m.loadBefore)}, after ${load(m.loadAfter)}: shared with other work, so every variant was timed in the same interleaved rounds). \`npm run bench\` keeps this section; \`--cold-secrets\` rewrites it.`,
    '',
    '- **Variants**: each is its tree\'s `collect.zip`, packaged as a deploy does (scripts/deploy/package.sh) and unzipped. ' +
      r.cold.variants
        .map((v) => `*${v.label}*: ${r.sources[v.label] ?? '?'}${v.loadsSdk ? ', which loads `@aws-sdk/client-ssm` with `import()`, here from a `node_modules` linked in beside the bundle (where Lambda\'s runtime would provide it; npm\'s copy of the SDK, not the runtime\'s)' : ', which signs GetParameters itself (lib/runtime/ssm.ts), nothing beside the bundle'}`)
        .join('; ') +
      '.',
    '- **What is timed**: fresh `node -e` processes with a Lambda-like environment (the function\'s credentials, region, `NODE_PATH` as Lambda sets it with the task root for /var/task, `AWS_ENDPOINT_URL_SSM`), each stopped at its mark: *require*, the end of `require(\'./functions/collect.cjs\')` (Lambda\'s init); *first invocation*, the handler\'s TCP connection to a stand-in database established (require, the handler, the secrets, the configuration, a first outbound connection either way), with `DATABASE_URL` in the environment (*no SSM*) or read from SSM (`DATABASE_URL_SSM_PARAMETER`, answered by test/support/ssm.ts, which checks every request\'s SigV4 signature; every one checked out). The endpoint is plain HTTP on loopback: on Lambda the read also pays a TLS handshake and round trips to SSM in the region, with or without the SDK. *The read adds* is, per round, the SSM run minus the no-SSM run of the same variant. **Wall** is the parent\'s clock from the spawn to the mark (process start included); **CPU** is the process\'s own CPU time up to the mark (`process.cpuUsage()`, user + system, every thread), much less moved by the other work on the machine.',
    `- **Runs**: ${r.cold.runs} rounds after one warm-up round, every measurement once per round in a rotating order. Figures in ms: median (p25–p75; min–max).`,
    '',
    'Wall time (ms):',
    '',
    ...table('wallMs'),
    '',
    'CPU time (ms):',
    '',
    ...table('cpuMs'),
    '',
    ours
      ? `Target (issue 20): the first secret read adds no more than about ${SECRET_READ_TARGET_MS} ms to a cold start. ${ours.label}: ` +
        `CPU time **${verdict(ours.readAdds.cpuMs.median)}**, ${ms(ours.readAdds.cpuMs.median)} ms (median); wall time **${verdict(ours.readAdds.wallMs.median)}**, ${ms(ours.readAdds.wallMs.median)} ms (median)` +
        (sdk ? `; against ${ms(sdk.readAdds.cpuMs.median)} ms CPU and ${ms(sdk.readAdds.wallMs.median)} ms wall for ${sdk.label}.` : '.') +
        ` The wall figures wait for a core whenever the machine is busy (load ${load(m.loadBefore).split(' ')[0]} on ${m.cpus} cores at the start), so their spread is wide and their median moves from run to run; the CPU figures are the work itself.` +
        ' A Lambda function gets CPU in proportion to its memory (1,769 MB is one vCPU; the 256 MB serverless.yml sets is about a seventh of one), so there CPU-bound work such as loading modules can take several times its CPU time here, for both variants alike.'
      : 'Target (issue 20): no SDK-free variant was measured.',
    COLD_SECRETS_END,
  ].join('\n');
}

/** `doc` with the cold-secrets section replaced, or inserted before "## Targets" (at the end if there is none). */
export function replaceColdSecrets(doc: string, section: string): string {
  const start = doc.indexOf(COLD_SECRETS_START);
  const end = doc.indexOf(COLD_SECRETS_END);
  if (start >= 0 && end > start) return `${doc.slice(0, start)}${section}${doc.slice(end + COLD_SECRETS_END.length)}`;
  const targets = doc.indexOf('\n## Targets\n');
  if (targets < 0) return `${doc.replace(/\n*$/, '\n\n')}${section}\n`;
  return `${doc.slice(0, targets + 1)}${section}\n\n${doc.slice(targets + 1)}`;
}

/** The cold-secrets section of `doc` (markers included), if it has one: a full render keeps it. */
export function coldSecretsSection(doc: string): string | undefined {
  const start = doc.indexOf(COLD_SECRETS_START);
  const end = doc.indexOf(COLD_SECRETS_END);
  return start >= 0 && end > start ? doc.slice(start, end + COLD_SECRETS_END.length) : undefined;
}
