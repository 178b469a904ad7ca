/**
 * `npm run bench`: the collector against the seed design's four queries on a
 * realistic runs table, side by side in one run (so machine noise hits both).
 *
 *   npm run bench                                  # 100k and 1m, both data shapes
 *   npm run bench -- --sizes 1m,10m@1m             # what docs/benchmarks.md and the README hold
 *   npm run bench -- --rebuild                     # rebuild the tables even if reusable
 *
 * Options: --sizes LIST  --shapes newest,spread (where the active runs sit: data.ts)
 * --rebuild  --ticks N (end-to-end ticks per shape, >= 50;
 * above 1M rows the seed shape, at tens of seconds a tick, runs --big-seed-ticks N, default 10)
 * --db-rounds N (server-timed ticks per shape)  --cold-runs N  --estimate-above N (the
 * default configuration's threshold; default that of lib/config/parse.ts)
 * --out FILE (default docs/benchmarks.md; --no-write to only print)  --readme FILE (default
 * README.md: its performance table, between the bench markers)  --drop (drop the
 * bench schemas afterwards). BENCH_DATABASE_URL picks the server. Every run saves its figures in
 * .tmp/bench-last.json; `--render [FILE]` rewrites both pages from such a file without measuring.
 *
 *   npm run bench -- --cold-secrets [--against DIR] [--cold-runs N] [--out FILE | --no-write]
 *
 * measures only the cold start of a first invocation whose DATABASE_URL is in SSM (no database,
 * no Pushgateway: cold.ts measureSecretColdStart), this tree's package and, with --against, the
 * package of another checkout (with its own node_modules; e.g. one that loads the AWS SDK) side
 * by side, --cold-runs rounds (default 21, at least 15). It rewrites only its own section of
 * docs/benchmarks.md (between its markers; a full run keeps that section) and saves its figures
 * in .tmp/bench-cold-secrets.json. The SDK variant of docs/benchmarks.md was main before issue 20:
 *   git clone . /tmp/xyn-sdk-variant && git -C /tmp/xyn-sdk-variant checkout be071c8 && npm ci --prefix /tmp/xyn-sdk-variant
 *
 * Per size and data shape: (a) database time per tick measured on the server,
 * (b) end-to-end tick latency through the Neon driver, the bridge and a real
 * Pushgateway, for the collector (default configuration, and exact counts:
 * STATUS_ESTIMATE_ABOVE=off) and for the seed's four-round-trip shape; then (c)
 * the zip size and the cold start of the bundle.
 */

import { execSync } from 'node:child_process';
import { cpus, totalmem, loadavg } from 'node:os';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { bridgeTarget, startBridge } from '../bridge/bridge';
import { parseConfig } from '../../lib/config/parse';
import { defaultOf } from '../../lib/config/settings';
import type { Config } from '../../lib/config/types';
import { openDatabase } from '../../lib/source/connection';
import { deadlineIn } from '../../lib/core/deadline';
import { runTick } from '../../lib/runtime/tick';
import { startPushgateway } from '../support/pushgateway';
import { awsEnv, startFakeSsm } from '../support/ssm';
import { BUNDLE_PATH, measureColdStart, measureSecretColdStart, median, packageFunction, readZip, type PackageResult } from './cold';
import { ensureDataset, parseCount, parseShape, parseSizeSpec, type Shape } from './data';
import {
  benchFlow,
  checkExactness,
  checkFlow,
  estimateAllowance,
  explainAlerting,
  explainBudgetStatement,
  explainCollector,
  explainFlow,
  explainSeed,
  flowRows,
  largestEstimateError,
  seqScansOn,
  snapshotDifferences,
} from './db';
import {
  coldSecretsSection,
  renderColdSecrets,
  renderMarkdown,
  renderTable,
  replaceColdSecrets,
  replaceReadmeTable,
  type BenchReport,
  type ColdSecretsReport,
  type SizeResult,
} from './report';
import { runSeedTick } from './seed';

const DEFAULT_URL = 'postgresql://postgres:postgres@127.0.0.1:5432/postgres';
/** The flow extra's windows: FLOW_WINDOW_SECONDS's default, and an hour to show how it scales with the runs in it. */
const FLOW_WINDOW_S = defaultOf('FLOW_WINDOW_SECONDS');
const FLOW_WIDE_WINDOW_S = 3_600;

interface Options {
  sizes: string[];
  shapes: Shape[];
  rebuild: boolean;
  ticks: number;
  dbRounds: number;
  coldRuns: number;
  estimateAbove: number;
  bigSeedTicks: number;
  out: string | undefined;
  readme: string | undefined;
  drop: boolean;
}

function parseArgs(argv: string[]): Options {
  const options: Options = {
    sizes: ['100k', '1m'],
    shapes: ['newest', 'spread'],
    rebuild: false,
    ticks: 50,
    dbRounds: 7,
    coldRuns: 21,
    estimateAbove: defaultOf('STATUS_ESTIMATE_ABOVE'),
    bigSeedTicks: 10,
    out: 'docs/benchmarks.md',
    readme: 'README.md',
    drop: false,
  };
  const value = (i: number, name: string) => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`${name} needs a value`);
    return v;
  };
  const whole = (raw: string, name: string, min: number) => {
    if (!/^\d+$/.test(raw) || Number(raw) < min) throw new Error(`${name} must be a whole number >= ${min}, got "${raw}"`);
    return Number(raw);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--sizes') options.sizes = value(i++, arg).split(',').map((s) => s.trim()).filter(Boolean);
    else if (arg === '--shapes') options.shapes = value(i++, arg).split(',').map(parseShape);
    else if (arg === '--rebuild') options.rebuild = true;
    else if (arg === '--drop') options.drop = true;
    else if (arg === '--ticks') options.ticks = whole(value(i++, arg), arg, 50);
    else if (arg === '--db-rounds') options.dbRounds = whole(value(i++, arg), arg, 3);
    else if (arg === '--cold-runs') options.coldRuns = whole(value(i++, arg), arg, 3);
    else if (arg === '--big-seed-ticks') options.bigSeedTicks = whole(value(i++, arg), arg, 3);
    else if (arg === '--estimate-above') options.estimateAbove = parseCount(value(i++, arg));
    else if (arg === '--out') options.out = value(i++, arg);
    else if (arg === '--readme') options.readme = value(i++, arg);
    else if (arg === '--no-write') [options.out, options.readme] = [undefined, undefined];
    else throw new Error(`unknown option ${arg} (see the header of scripts/bench/main.ts)`);
  }
  options.sizes.forEach((s) => parseSizeSpec(s));
  return options;
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function sh(command: string): string {
  try {
    return execSync(command, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/**
 * Run `shapes` in a rotating order, so none always goes first (or last) after a
 * noisy moment. A shape given fewer rounds (`limits`) drops out when done.
 */
async function interleaved<K extends string>(
  rounds: number,
  shapes: Record<K, () => Promise<number>>,
  limits: Partial<Record<K, number>> = {},
): Promise<Record<K, number[]>> {
  const names = Object.keys(shapes) as K[];
  const out = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<K, number[]>;
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(round + k) % names.length]!;
      if (round < (limits[name] ?? rounds)) out[name].push(await shapes[name]());
    }
  }
  return out;
}

async function main(): Promise<void> {
  if (renderSaved(process.argv.slice(2))) return;
  if (await coldSecrets(process.argv.slice(2))) return;
  const options = parseArgs(process.argv.slice(2));
  const url = process.env.BENCH_DATABASE_URL ?? DEFAULT_URL;
  const dbUrl = new URL(url);
  const client = new pg.Client({ connectionString: url, application_name: 'xyn-metrics-bench' });
  await client.connect().catch((error: Error) => {
    throw new Error(`cannot reach PostgreSQL at ${dbUrl.host} (set BENCH_DATABASE_URL): ${error.message}`);
  });

  const started = new Date();
  const loadBefore = loadavg();
  const pgVersion = (await client.query<{ v: string }>('SELECT version() AS v')).rows[0]!.v;
  const pgSettings = (
    await client.query<{ name: string; value: string }>(
      `SELECT name, current_setting(name) AS value FROM pg_settings
       WHERE name IN ('shared_buffers', 'work_mem', 'max_parallel_workers_per_gather', 'jit', 'random_page_cost')
       ORDER BY name`,
    )
  ).rows.map((r) => `${r.name}=${r.value}`);

  const gateway = await startPushgateway();
  const bridge = await startBridge({ allow: [bridgeTarget(dbUrl.toString())] });
  const results: SizeResult[] = [];
  const tables: string[] = [];
  try {
    for (const spec of options.sizes.flatMap((raw) => options.shapes.map((shape) => parseSizeSpec(raw, 'bench', shape)))) {
      const table = `${spec.schema}.runs`;
      const name = `${spec.label} (${spec.shape})`;
      const info = await ensureDataset(client, spec, { rebuild: options.rebuild, log });
      if (info.allVisible < 0.99) {
        log(`WARNING: only ${(info.allVisible * 100).toFixed(0)}% of ${table}'s pages are all-visible after VACUUM (a long transaction elsewhere?); index-only scans will visit the heap`);
      }
      log(`${name}: ${info.reused ? 'reused' : 'built'} ${table} (${(info.tableBytes / 2 ** 20).toFixed(0)} MiB heap, ${info.bytesPerRow} B/row); checking counts …`);

      // Exact counts: the collector's figures against a brute-force reference, one snapshot, one now().
      const exact = await checkExactness(client, table, undefined);
      const exactDiffs = snapshotDifferences(exact.collector, exact.reference);
      const estimated = await checkExactness(client, table, options.estimateAbove);
      const estimateDiffs = snapshotDifferences(estimated.collector, estimated.reference, estimateAllowance(spec.rows));
      if (exactDiffs.length > 0) throw new Error(`${name}: the collector's counts are not exact: ${exactDiffs.join('; ')}`);
      // Only the estimated statuses may differ, and only within the allowance; anything else is a bug.
      if (estimateDiffs.length > 0) throw new Error(`${name}: the default configuration's figures are off: ${estimateDiffs.join('; ')}`);
      // The flow figures against a brute force, at the default window and at an hour.
      for (const windowSeconds of [FLOW_WINDOW_S, FLOW_WIDE_WINDOW_S]) {
        const flowDiffs = await checkFlow(client, table, benchFlow(windowSeconds));
        if (flowDiffs.length > 0) throw new Error(`${name}: the flow figures (window ${windowSeconds} s) are off: ${flowDiffs.join('; ')}`);
      }

      // (a) database time, measured on the server.
      log(`${name}: database time, ${options.dbRounds} rounds …`);
      const seedPerQuery: number[][] = [];
      const planning: Record<'exact' | 'default', number[]> = { exact: [], default: [] };
      let seqScans = 0;
      const db = await interleaved(options.dbRounds + 1, {
        seed: async () => {
          const t = await explainSeed(client, table);
          seedPerQuery.push(t.perQueryMs);
          return t.totalMs;
        },
        exact: async () => {
          const t = await explainCollector(client, table, undefined);
          seqScans += seqScansOn(t.plan, 'runs').length;
          planning.exact.push(t.planningMs);
          return t.totalMs;
        },
        default: async () => {
          const t = await explainCollector(client, table, options.estimateAbove);
          seqScans += seqScansOn(t.plan, 'runs').length;
          planning.default.push(t.planningMs);
          return t.totalMs;
        },
        // What a degraded tick's second round trip asks of the database.
        alerting: async () => (await explainAlerting(client, table)).totalMs,
        // What the flow extra adds: its SELECT at the default window, and at an hour (12x the runs).
        flow: async () => {
          const t = await explainFlow(client, table, benchFlow(FLOW_WINDOW_S));
          seqScans += seqScansOn(t.plan, 'runs').length;
          return t.totalMs;
        },
        flowWide: async () => {
          const t = await explainFlow(client, table, benchFlow(FLOW_WIDE_WINDOW_S));
          seqScans += seqScansOn(t.plan, 'runs').length;
          return t.totalMs;
        },
        // The statement before each SELECT that gives it its share of the budget.
        budget: async () => (await explainBudgetStatement(client)).totalMs,
      });
      // What the flow SELECT read in those rounds (the stream of data.ts keeps it steady).
      const flowRead = { rows: await flowRows(client, table, FLOW_WINDOW_S), wideRows: await flowRows(client, table, FLOW_WIDE_WINDOW_S) };
      // The first round warms caches for all three alike; it is not counted.
      const dropFirst = (values: number[]) => values.slice(1);

      // (b) end to end: driver + bridge + Pushgateway, the two shapes interleaved.
      // Above 1M rows a seed tick takes tens of seconds; fewer of them keep the run under an hour.
      const seedTicks = spec.rows > 1_000_000 ? Math.min(options.ticks, options.bigSeedTicks) : options.ticks;
      log(`${name}: end-to-end ticks, ${options.ticks} per collector shape, ${seedTicks} of the seed's …`);
      const env = {
        DATABASE_URL: url,
        DATABASE_WS_PROXY: bridge.proxy,
        PUSHGATEWAY_URL: gateway.url,
        RUNS_TABLE: table,
        // Generous limits: the benchmark measures the slow shapes instead of timing them out.
        TICK_TIMEOUT_MS: '600000',
        DB_STATEMENT_TIMEOUT_MS: '300000',
      };
      const exactConfig = parseConfig({ ...env, PUSHGATEWAY_JOB: 'bench_collector_exact', STATUS_ESTIMATE_ABOVE: 'off' });
      const defaultConfig = parseConfig({
        ...env,
        PUSHGATEWAY_JOB: 'bench_collector',
        STATUS_ESTIMATE_ABOVE: String(options.estimateAbove),
      });
      const seedConfig = parseConfig({ ...env, PUSHGATEWAY_JOB: 'bench_seed' });
      const collectorTick = (config: Config) => async () => {
        const t0 = performance.now();
        await runTick(config, { log: () => {} });
        return performance.now() - t0;
      };
      const warmup = 2;
      const e2e = await interleaved(options.ticks + warmup, {
        seed: async () => (await runSeedTick(seedConfig)).durationMs,
        exact: collectorTick(exactConfig),
        default: collectorTick(defaultConfig),
        // What every tick pays before any query: the driver's connect and close through the bridge.
        connect: async () => {
          const t0 = performance.now();
          const deadline = deadlineIn(60_000);
          await (await openDatabase(defaultConfig.database, deadline)).close(deadline);
          return performance.now() - t0;
        },
      }, { seed: seedTicks + warmup });
      const measured = (values: number[]) => values.slice(warmup);

      const result: SizeResult = {
        label: spec.label,
        shape: spec.shape,
        rows: spec.rows,
        queuedTarget: spec.queued,
        counts: info.counts,
        tableBytes: info.tableBytes,
        indexBytes: info.indexBytes,
        bytesPerRow: info.bytesPerRow,
        allVisible: info.allVisible,
        reused: info.reused,
        buildSeconds: info.buildSeconds,
        db: {
          rounds: options.dbRounds,
          seedMs: median(dropFirst(db.seed)),
          seedPerQueryMs: [0, 1, 2, 3].map((q) => median(seedPerQuery.slice(1).map((r) => r[q]!))),
          exactMs: median(dropFirst(db.exact)),
          exactPlanningMs: median(dropFirst(planning.exact)),
          defaultMs: median(dropFirst(db.default)),
          defaultPlanningMs: median(dropFirst(planning.default)),
          alertingMs: median(dropFirst(db.alerting)),
          flowMs: median(dropFirst(db.flow)),
          flowWideMs: median(dropFirst(db.flowWide)),
          budgetStatementMs: median(dropFirst(db.budget)),
          seqScansOnRuns: seqScans,
        },
        flow: {
          windowSeconds: FLOW_WINDOW_S,
          wideWindowSeconds: FLOW_WIDE_WINDOW_S,
          ...flowRead,
          verified: true,
        },
        e2e: {
          ticks: options.ticks,
          seedTicks,
          seed: { p50: percentile(measured(e2e.seed), 50), p95: percentile(measured(e2e.seed), 95) },
          exact: { p50: percentile(measured(e2e.exact), 50), p95: percentile(measured(e2e.exact), 95) },
          default: { p50: percentile(measured(e2e.default), 50), p95: percentile(measured(e2e.default), 95) },
          connect: { p50: percentile(measured(e2e.connect), 50), p95: percentile(measured(e2e.connect), 95) },
        },
        estimatedStatuses: estimated.collector.statuses.filter((s) => s.estimated).map((s) => s.status),
        largestEstimateError: largestEstimateError(estimated.collector, estimated.reference),
        exactCountsVerified: true,
      };
      results.push(result);
      tables.push(table);
      log(renderTable([result]));
    }

    // The growth target compares tables measured minutes apart, under whatever load each met; so the
    // default configuration is also timed on every table side by side, interleaved round by round.
    if (results.length > 1) {
      log(`side by side: the default configuration on every table, ${options.dbRounds} rounds …`);
      const shapes = Object.fromEntries(
        tables.map((table, i) => [String(i), async () => (await explainCollector(client, table, options.estimateAbove)).totalMs]),
      );
      const sideBySide = await interleaved(options.dbRounds + 1, shapes);
      results.forEach((r, i) => (r.db.defaultSideBySideMs = median(sideBySide[String(i)]!.slice(1))));
    }
  } finally {
    await bridge.close();
    await gateway.stop();
  }

  // (c) the deployed artifact.
  log('packaging (scripts/deploy/package.sh) and timing cold starts …');
  const root = path.resolve(import.meta.dirname, '..', '..');
  const packaged = packageFunction(root);
  let cold;
  const entries = readZip(packaged.zipPath).map((e) => ({ name: e.name, bytes: e.data.length, compressedBytes: e.compressedBytes }));
  try {
    cold = measureColdStart(packaged.zipPath, options.coldRuns);
  } finally {
    rmSync(packaged.outDir, { recursive: true, force: true });
  }

  if (options.drop) {
    for (const raw of options.sizes) {
      for (const shape of options.shapes) await client.query(`DROP SCHEMA IF EXISTS "${parseSizeSpec(raw, 'bench', shape).schema}" CASCADE`);
    }
  }
  await client.end();

  const report: BenchReport = {
    date: started.toISOString(),
    finished: new Date().toISOString(),
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim().replace(/ --$/, ''),
    machine: machineFacts(loadBefore),
    postgres: { version: pgVersion, settings: pgSettings },
    estimateAbove: options.estimateAbove,
    sizes: results,
    artifact: { zipBytes: packaged.zipBytes, entries, ...cold },
  };
  process.stdout.write(`${renderTable(results)}\n\n${renderArtifactLine(report)}\n`);
  // The raw figures, so the pages can be rendered again (--render) without measuring again.
  mkdirSync(path.dirname(LAST_REPORT), { recursive: true });
  writeFileSync(LAST_REPORT, `${JSON.stringify(report, null, 2)}\n`);
  log(`saved the figures in ${LAST_REPORT}`);
  writeReports(report, options);
}

const LAST_REPORT = '.tmp/bench-last.json';

/** docs/benchmarks.md and the README's table, from one report: the two never disagree. */
function writeReports(report: BenchReport, options: Pick<Options, 'out' | 'readme'>): void {
  if (options.out) {
    mkdirSync(path.dirname(options.out), { recursive: true });
    // The cold-start-with-SSM section comes from its own run (--cold-secrets): kept as it is.
    const kept = existsSync(options.out) ? coldSecretsSection(readFileSync(options.out, 'utf8')) : undefined;
    writeFileSync(options.out, kept ? replaceColdSecrets(renderMarkdown(report), kept) : renderMarkdown(report));
    log(`wrote ${options.out}`);
  }
  if (options.readme) {
    writeFileSync(options.readme, replaceReadmeTable(readFileSync(options.readme, 'utf8'), report));
    log(`updated the performance table in ${options.readme}`);
  }
}

/** `--render FILE`: write the pages from saved figures (e.g. after a change to their text). */
function renderSaved(argv: string[]): boolean {
  const at = argv.indexOf('--render');
  if (at < 0) return false;
  const file = argv[at + 1] ?? LAST_REPORT;
  writeReports(JSON.parse(readFileSync(file, 'utf8')) as BenchReport, { out: 'docs/benchmarks.md', readme: 'README.md' });
  return true;
}

const COLD_SECRETS_REPORT = '.tmp/bench-cold-secrets.json';

/** Which commit a tree is at, and whether it has changes of its own. */
function treeSource(dir: string): string {
  const commit = sh(`git -C '${dir}' rev-parse --short HEAD`);
  const dirty = sh(`git -C '${dir}' status --porcelain --untracked-files=no`);
  return `${commit === 'unknown' ? dir : `commit ${commit}`}${dirty && dirty !== 'unknown' ? ' with uncommitted changes' : ''}`;
}

/** `--cold-secrets`: the cold start of a first invocation whose secret is in SSM, this tree against another (header). */
async function coldSecrets(argv: string[]): Promise<boolean> {
  if (!argv.includes('--cold-secrets')) return false;
  let against: string | undefined;
  let runs = 21;
  let out: string | undefined = 'docs/benchmarks.md';
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--cold-secrets') continue;
    else if (arg === '--against') against = path.resolve(next());
    else if (arg === '--cold-runs') {
      const raw = next();
      if (!/^\d+$/.test(raw) || Number(raw) < 15) throw new Error(`--cold-runs must be a whole number >= 15, got "${raw}"`);
      runs = Number(raw);
    } else if (arg === '--out') out = next();
    else if (arg === '--no-write') out = undefined;
    else throw new Error(`unknown option ${arg} with --cold-secrets (see the header of scripts/bench/main.ts)`);
  }
  const root = path.resolve(import.meta.dirname, '..', '..');
  const started = new Date();
  const loadBefore = loadavg();
  const trees = [root, ...(against ? [against] : [])];
  const packaged: PackageResult[] = [];
  const ssm = await startFakeSsm();
  try {
    for (const tree of trees) {
      log(`packaging ${tree} (scripts/deploy/package.sh) …`);
      packaged.push(packageFunction(tree));
    }
    const variants = trees.map((tree, i) => {
      const bundle = readZip(packaged[i]!.zipPath).find((e) => e.name === BUNDLE_PATH)!;
      const loadsSdk = bundle.data.toString('utf8').includes('@aws-sdk/client-ssm');
      if (loadsSdk && !existsSync(path.join(tree, 'node_modules', '@aws-sdk', 'client-ssm'))) {
        throw new Error(`${tree}'s bundle loads @aws-sdk/client-ssm, but ${tree}/node_modules has none (run npm ci there)`);
      }
      return {
        label: `${loadsSdk ? 'AWS SDK v3 (import)' : 'no SDK (aws4)'}${i === 0 ? ', this tree' : ''}`,
        zipPath: packaged[i]!.zipPath,
        ...(loadsSdk ? { modules: path.join(tree, 'node_modules') } : {}),
      };
    });
    log(`timing ${runs} rounds of fresh processes (${variants.map((v) => v.label).join(' vs ')}) …`);
    const cold = await measureSecretColdStart(
      variants,
      runs,
      {
        url: ssm.url,
        env: awsEnv(ssm.url),
        put: (name, value) => ssm.put(name, value),
        badSignatures: () => ssm.requests.filter((r) => r.signatureProblem !== undefined).length,
        requests: () => ssm.requests.length,
      },
    );
    const report: ColdSecretsReport = {
      date: started.toISOString(),
      command: `npm run bench -- ${argv.join(' ')}`,
      machine: machineFacts(loadBefore),
      cold,
      sources: Object.fromEntries(variants.map((v, i) => [v.label, treeSource(trees[i]!)])),
    };
    mkdirSync(path.dirname(COLD_SECRETS_REPORT), { recursive: true });
    writeFileSync(COLD_SECRETS_REPORT, `${JSON.stringify(report, null, 2)}\n`);
    const section = renderColdSecrets(report);
    process.stdout.write(`${section}\n`);
    if (out) {
      writeFileSync(out, replaceColdSecrets(existsSync(out) ? readFileSync(out, 'utf8') : '', section));
      log(`wrote its section of ${out}; figures in ${COLD_SECRETS_REPORT}`);
    }
  } finally {
    await ssm.close();
    for (const p of packaged) rmSync(p.outDir, { recursive: true, force: true });
  }
  return true;
}

function renderArtifactLine(report: BenchReport): string {
  const a = report.artifact;
  return (
    `zip ${(a.zipBytes / 1024).toFixed(1)} KiB, bundle ${(a.bundleBytes / 1024).toFixed(1)} KiB; ` +
    `cold start: node + require ${a.processWithRequireMs.toFixed(0)} ms vs bare node ${a.processBaselineMs.toFixed(0)} ms; ` +
    `require alone ${a.requireMs.toFixed(1)} ms (median of ${a.runs})`
  );
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);

/** What a report says of the machine it ran on; the load average now, against `loadBefore` from the start. */
function machineFacts(loadBefore: number[]): BenchReport['machine'] {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memGiB: totalmem() / 2 ** 30,
    os: sh('uname -sr'),
    node: process.version,
    loadBefore,
    loadAfter: loadavg(),
  };
}
