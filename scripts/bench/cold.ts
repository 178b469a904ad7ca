/**
 * The deployed artifact: package it exactly as a deploy does (scripts/deploy/package.sh,
 * i.e. serverless package with serverless-esbuild), measure the zip, and time
 * the cold-start cost of loading the bundled handler in fresh Node processes;
 * and (measureSecretColdStart) the cold start of a first invocation whose
 * DATABASE_URL comes from SSM, for one or more packaged variants side by side.
 */

import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inflateRawSync } from 'node:zlib';

/** The scheduled function's zip (serverless.yml packages each function on its own: <function>.zip). */
export const ZIP_NAME = 'collect.zip';
/** The scheduled handler's bundle (serverless.yml: outputFileExtension .cjs). */
export const BUNDLE_PATH = 'functions/collect.cjs';

export interface PackageResult {
  /** The directory serverless wrote (template, state and the zip); the caller removes it. */
  outDir: string;
  /** The collect function's zip. */
  zipPath: string;
  zipBytes: number;
  /** Every function's zip, by function name. */
  zips: Record<string, string>;
  packageSeconds: number;
}

/**
 * Run scripts/deploy/package.sh in `root`, writing into a fresh temporary directory
 * (`--package`) rather than .serverless/, so a concurrent packaging elsewhere
 * cannot swap the zip under us. `env` is the deploy environment on top of ours
 * (a deploy needs an explicit region; any placeholder does for packaging).
 * Throws with its output on failure.
 */
export function packageFunction(root: string, env: Record<string, string> = { AWS_REGION: 'eu-west-1' }, args: string[] = []): PackageResult {
  const started = performance.now();
  const outDir = mkdtempSync(path.join(tmpdir(), 'xyn-package-'));
  // serverless-esbuild's work folder too is our own (serverless.yml reads ESBUILD_WORK_FOLDER),
  // so a packaging or `serverless offline` running at the same time cannot clean ours away.
  const workFolder = path.join('.tmp', `package-${path.basename(outDir)}`);
  const run = spawnSync('bash', ['scripts/deploy/package.sh', '--package', outDir, ...args], {
    cwd: root,
    encoding: 'utf8',
    // Much of it may be spent waiting for the checkout's packaging lock (scripts/deploy/locked.sh).
    timeout: 600_000,
    env: { ...process.env, ...env, ESBUILD_WORK_FOLDER: workFolder },
  });
  rmSync(path.join(root, workFolder), { recursive: true, force: true });
  if (run.status !== 0) {
    rmSync(outDir, { recursive: true, force: true });
    throw new Error(`scripts/deploy/package.sh failed (exit ${run.status}):\n${(run.stdout + run.stderr).slice(-3000)}`);
  }
  const zipPath = path.join(outDir, ZIP_NAME);
  const zips = Object.fromEntries(
    readdirSync(outDir).filter((f) => f.endsWith('.zip')).map((f) => [f.replace(/\.zip$/, ''), path.join(outDir, f)]),
  );
  return { outDir, zipPath, zipBytes: statSync(zipPath).size, zips, packageSeconds: (performance.now() - started) / 1000 };
}

export interface ZipEntry {
  name: string;
  /** Bytes the entry takes in the zip (compressed). */
  compressedBytes: number;
  data: Buffer;
}

/**
 * The entries of a zip file, read with Node alone (no `unzip` binary needed):
 * the central directory names each entry and where its local header is; data
 * is stored (method 0) or deflated (method 8), which is all a packager writes.
 */
export function readZip(zipPath: string): ZipEntry[] {
  const zip = readFileSync(zipPath);
  const eocd = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) throw new Error(`${zipPath} is not a zip file (no end of central directory)`);
  const count = zip.readUInt16LE(eocd + 10);
  let offset = zip.readUInt32LE(eocd + 16);
  const entries: ZipEntry[] = [];
  for (let i = 0; i < count; i++) {
    if (zip.readUInt32LE(offset) !== 0x02014b50) throw new Error(`${zipPath}: bad central directory entry ${i}`);
    const method = zip.readUInt16LE(offset + 10);
    const compressedSize = zip.readUInt32LE(offset + 20);
    const nameLength = zip.readUInt16LE(offset + 28);
    const extraLength = zip.readUInt16LE(offset + 30);
    const commentLength = zip.readUInt16LE(offset + 32);
    const local = zip.readUInt32LE(offset + 42);
    const name = zip.toString('utf8', offset + 46, offset + 46 + nameLength);
    offset += 46 + nameLength + extraLength + commentLength;

    if (zip.readUInt32LE(local) !== 0x04034b50) throw new Error(`${zipPath}: bad local header for ${name}`);
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const raw = zip.subarray(start, start + compressedSize);
    if (method !== 0 && method !== 8) throw new Error(`${zipPath}: ${name} uses compression method ${method}`);
    entries.push({ name, compressedBytes: compressedSize, data: method === 8 ? inflateRawSync(raw) : Buffer.from(raw) });
  }
  return entries;
}

export function zipEntries(zipPath: string): string[] {
  return readZip(zipPath).map((e) => e.name);
}

/** Unpack into a fresh directory (under the temporary directory, or `parent`); the caller removes it. */
export function unzipTo(zipPath: string, parent = tmpdir()): string {
  const dir = mkdtempSync(path.join(parent, 'xyn-bundle-'));
  for (const entry of readZip(zipPath)) {
    const target = path.resolve(dir, entry.name);
    if (!target.startsWith(dir + path.sep)) throw new Error(`${zipPath}: entry ${entry.name} points outside the directory`);
    if (entry.name.endsWith('/')) continue;
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(target, entry.data);
  }
  return dir;
}

export interface ColdStart {
  runs: number;
  bundleBytes: number;
  /** Median wall time of `node -e "require('./functions/collect.cjs')"`. */
  processWithRequireMs: number;
  /** Median wall time of `node -e ""` (Node's own start), interleaved with the above. */
  processBaselineMs: number;
  /** Median time of the require() alone, measured inside the fresh process. */
  requireMs: number;
}

const TIMED_REQUIRE =
  `const t=process.hrtime.bigint();require('./${BUNDLE_PATH}');process.stdout.write(String(Number(process.hrtime.bigint()-t)/1e6))`;

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function timedNode(cwd: string, code: string): { wallMs: number; stdout: string } {
  const started = performance.now();
  const run = spawnSync(process.execPath, ['-e', code], { cwd, encoding: 'utf8', timeout: 30_000 });
  const wallMs = performance.now() - started;
  if (run.status !== 0) throw new Error(`node -e failed in ${cwd}: ${run.stderr}`);
  return { wallMs, stdout: run.stdout };
}

/** Cold start of the bundled handler: `runs` fresh processes each, baseline and require interleaved. */
export function measureColdStart(zipPath: string, runs: number): ColdStart {
  const dir = unzipTo(zipPath);
  try {
    const withRequire: number[] = [];
    const baseline: number[] = [];
    const requireOnly: number[] = [];
    timedNode(dir, TIMED_REQUIRE); // warm the OS file cache once, as a deployed image is
    for (let i = 0; i < runs; i++) {
      baseline.push(timedNode(dir, '').wallMs);
      const timed = timedNode(dir, TIMED_REQUIRE);
      withRequire.push(timed.wallMs);
      requireOnly.push(Number(timed.stdout));
    }
    return {
      runs,
      bundleBytes: readFileSync(path.join(dir, BUNDLE_PATH)).length,
      processWithRequireMs: median(withRequire),
      processBaselineMs: median(baseline),
      requireMs: median(requireOnly),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Median, quartiles and range of a set of timings (nearest-rank quartiles). */
export interface Spread {
  runs: number;
  median: number;
  p25: number;
  p75: number;
  min: number;
  max: number;
}

export function spread(values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
  return { runs: sorted.length, median: median(sorted), p25: rank(0.25), p75: rank(0.75), min: sorted[0]!, max: sorted[sorted.length - 1]! };
}

/** One packaged bundle to time. */
export interface SecretReadVariant {
  label: string;
  zipPath: string;
  /**
   * A node_modules directory linked in beside the unzipped bundle, for a
   * variant that loads the AWS SDK at run time (import('@aws-sdk/client-ssm')):
   * where Lambda's runtime would have it. Undefined: the bundle alone.
   */
  modules?: string;
}

/** One measurement over the rounds: wall time on the parent's clock from the spawn, and the process's own CPU time. */
export interface Timing {
  wallMs: Spread;
  cpuMs: Spread;
}

export interface SecretColdStartResult {
  label: string;
  /** Whether the bundle names @aws-sdk/client-ssm (loads the SDK at run time). */
  loadsSdk: boolean;
  /** `node -e "require('./functions/collect.cjs')"` to the end of the require: process start + require (Lambda's init). */
  require: Timing;
  /** To the handler's database connection (TCP established), DATABASE_URL in the environment: no SSM. */
  plain: Timing;
  /** The same with DATABASE_URL_SSM_PARAMETER: process start + require + the first SSM read, then the connection. */
  ssm: Timing;
  /** Per round, ssm minus plain: what the secret read adds to the first invocation. */
  readAdds: Timing;
}

export interface SecretColdStart {
  runs: number;
  /** A bare `node -e` to its first statement. */
  node: Timing;
  variants: SecretColdStartResult[];
}

const MARK = 'XYN_BENCH_MARK ';
/** Written by the timed process when it reaches the point timed: its CPU time so far (user + system, every thread). */
const WRITE_MARK = `const u = process.cpuUsage(); process.stdout.write('${MARK}' + JSON.stringify({ cpuMs: (u.user + u.system) / 1000 }) + '\\n');`;
/**
 * The handler, once, with a scheduled event and a Lambda-like context; the
 * mark is written when the process's first TCP connection to the stand-in
 * database (XYN_BENCH_DB_PORT) is established: by then the secrets are read and
 * the configuration parsed, and either way the process has set up its first
 * outbound connection (which the SSM read would otherwise be charged for).
 * Only net.Socket's connect is wrapped (node-postgres connects with it),
 * nothing of the bundle.
 */
const INVOKE_HANDLER =
  `const net = require('node:net'); const port = Number(process.env.XYN_BENCH_DB_PORT); const connect = net.Socket.prototype.connect; let marked = false;` +
  ` net.Socket.prototype.connect = function (...args) { const first = Array.isArray(args[0]) ? args[0][0] : args[0];` +
  ` if (!marked && Number(typeof first === 'object' && first !== null ? first.port : first) === port) { marked = true; this.once('connect', () => { ${WRITE_MARK} }); } return connect.apply(this, args); };` +
  ` require('./${BUNDLE_PATH}').collect({ time: new Date().toISOString().replace(/\\.\\d{3}Z$/, 'Z'), source: 'aws.events', 'detail-type': 'Scheduled Event' },` +
  ` { awsRequestId: 'bench', getRemainingTimeInMillis: () => 30000 }).catch(() => {});`;
const REQUIRE_BUNDLE = `require('./${BUNDLE_PATH}'); ${WRITE_MARK}`;
const BARE_NODE = WRITE_MARK;

/** A local SSM endpoint (test/support/ssm.ts checks every signature); the bench owns its lifetime. */
export interface SsmEndpoint {
  url: string;
  env: Record<string, string>;
  put(name: string, value: string): void;
  /** Requests whose signature did not check out, so far. */
  badSignatures(): number;
  requests(): number;
}

/** A TCP listener standing in for the database: it takes the connection and drops it. */
async function standInDatabase(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () => new Promise<void>((resolve) => (sockets.forEach((s) => s.destroy()), server.close(() => resolve()))),
  };
}

/** Spawn `node -e code` in `dir`, wait for its mark, then kill it: wall ms from the spawn to the mark, and its CPU ms. */
async function timedSpawn(dir: string, code: string, env: Record<string, string>): Promise<{ wallMs: number; cpuMs: number }> {
  const started = performance.now();
  const child = spawn(process.execPath, ['-e', code], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let timer: NodeJS.Timeout | undefined;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    return await new Promise<{ wallMs: number; cpuMs: number }>((resolve, reject) => {
      const fail = (why: string) => reject(new Error(`node -e in ${dir} ${why} before its mark:\n${output.slice(-2000)}`));
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        const at = performance.now();
        output += chunk;
        const line = output.split('\n').find((l) => l.startsWith(MARK));
        if (line) resolve({ wallMs: at - started, cpuMs: (JSON.parse(line.slice(MARK.length)) as { cpuMs: number }).cpuMs });
      });
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      void exited.then(() => fail('exited'));
      timer = setTimeout(() => fail('took 30 s'), 30_000);
    });
  } finally {
    clearTimeout(timer);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  }
}

function timing(values: { wallMs: number; cpuMs: number }[]): Timing {
  return { wallMs: spread(values.map((v) => v.wallMs)), cpuMs: spread(values.map((v) => v.cpuMs)) };
}

/**
 * The first invocation's cold start with its DATABASE_URL in SSM, for each
 * variant side by side: `runs` rounds, every measurement once per round in a
 * rotating order (machine noise hits all alike), after one warm-up round (the
 * OS file cache, as a deployed image has it). Each process gets only a
 * Lambda-like environment (its credentials, region, NODE_PATH as Lambda sets it
 * with the task root in place of /var/task, HOME in the task root so no ~/.aws
 * is read) and AWS_ENDPOINT_URL_SSM pointing at `ssm`. Wall time is the
 * parent's clock from the spawn to the process's mark; CPU time the process's
 * own (process.cpuUsage, all threads), far less moved by other work on the
 * machine than wall time.
 */
export async function measureSecretColdStart(variants: SecretReadVariant[], runs: number, ssm: SsmEndpoint): Promise<SecretColdStart> {
  const database = await standInDatabase();
  const dirs = variants.map((v) => {
    const dir = unzipTo(v.zipPath);
    if (v.modules) symlinkSync(v.modules, path.join(dir, 'node_modules'), 'dir');
    return dir;
  });
  try {
    const databaseUrl = `postgresql://bench:bench@127.0.0.1:${database.port}/bench`;
    const parameter = '/xyn-metrics/bench/database-url';
    ssm.put(parameter, databaseUrl);
    const lambdaEnv = (dir: string): Record<string, string> => ({
      PATH: '/usr/local/bin:/usr/bin:/bin',
      LANG: 'en_US.UTF-8',
      TZ: ':UTC',
      HOME: dir,
      NODE_PATH: `/opt/nodejs/node24/node_modules:/opt/nodejs/node_modules:/var/runtime/node_modules:/var/runtime:${dir}`,
      LAMBDA_TASK_ROOT: dir,
      AWS_LAMBDA_FUNCTION_NAME: 'xyn-metrics-bench-collect',
      AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs24.x',
      ...ssm.env,
      // Nowhere to push: the process is stopped at the database connection, before any push.
      PUSHGATEWAY_URL: 'http://127.0.0.1:9/',
      PUSHGATEWAY_JOB: 'xyn_bench_cold',
      XYN_BENCH_DB_PORT: String(database.port),
    });
    type Step = { key: string; run: () => Promise<{ wallMs: number; cpuMs: number }> };
    const steps: Step[] = [{ key: 'node', run: () => timedSpawn(dirs[0]!, BARE_NODE, lambdaEnv(dirs[0]!)) }];
    variants.forEach((_, i) => {
      const dir = dirs[i]!;
      steps.push(
        { key: `${i}:require`, run: () => timedSpawn(dir, REQUIRE_BUNDLE, lambdaEnv(dir)) },
        { key: `${i}:plain`, run: () => timedSpawn(dir, INVOKE_HANDLER, { ...lambdaEnv(dir), DATABASE_URL: databaseUrl }) },
        { key: `${i}:ssm`, run: () => timedSpawn(dir, INVOKE_HANDLER, { ...lambdaEnv(dir), DATABASE_URL_SSM_PARAMETER: parameter }) },
      );
    });
    const times: Record<string, { wallMs: number; cpuMs: number }[]> = Object.fromEntries(steps.map((s) => [s.key, []]));
    for (const step of steps) await step.run(); // warm-up, not counted
    for (let round = 0; round < runs; round++) {
      for (let k = 0; k < steps.length; k++) {
        const step = steps[(round + k) % steps.length]!;
        times[step.key]!.push(await step.run());
      }
    }
    if (ssm.badSignatures() > 0) throw new Error(`${ssm.badSignatures()} SSM request(s) failed the signature check`);
    const expectedReads = variants.length * (runs + 1);
    if (ssm.requests() !== expectedReads) throw new Error(`expected ${expectedReads} SSM requests, the endpoint saw ${ssm.requests()}`);
    return {
      runs,
      node: timing(times.node!),
      variants: variants.map((v, i) => {
        const plain = times[`${i}:plain`]!;
        const withSsm = times[`${i}:ssm`]!;
        return {
          label: v.label,
          loadsSdk: readFileSync(path.join(dirs[i]!, BUNDLE_PATH), 'utf8').includes('@aws-sdk/client-ssm'),
          require: timing(times[`${i}:require`]!),
          plain: timing(plain),
          ssm: timing(withSsm),
          readAdds: timing(withSsm.map((t, r) => ({ wallMs: t.wallMs - plain[r]!.wallMs, cpuMs: t.cpuMs - plain[r]!.cpuMs }))),
        };
      }),
    };
  } finally {
    await database.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }
}
