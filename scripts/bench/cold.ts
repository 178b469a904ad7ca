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
    timeout: 180_000,
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

/** Unpack into a fresh temporary directory; the caller removes it. */
export function unzipTo(zipPath: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'xyn-bundle-'));
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

export interface SecretColdStartResult {
  label: string;
  /** Whether the bundle names @aws-sdk/client-ssm (loads the SDK at run time). */
  loadsSdk: boolean;
  /** Spawn to exit of `node -e "require('./functions/collect.cjs')"`: process start + require (Lambda's init). */
  requireMs: Spread;
  /** Spawn to the handler's first database connection, DATABASE_URL in the environment: no SSM. */
  plainMs: Spread;
  /** The same with DATABASE_URL_SSM_PARAMETER: process start + require + the first SSM read, then the connection. */
  ssmMs: Spread;
  /** Per round, ssm minus plain: what the secret read adds to the first invocation. */
  readAddsMs: Spread;
}

export interface SecretColdStart {
  runs: number;
  /** Spawn to exit of a bare `node -e ""`. */
  nodeMs: Spread;
  variants: SecretColdStartResult[];
}

/** What the fresh process runs: the handler, once, with a scheduled event and a Lambda-like context. */
const INVOKE_HANDLER =
  `require('./${BUNDLE_PATH}').collect({ time: new Date().toISOString().replace(/\\.\\d{3}Z$/, 'Z'), source: 'aws.events', 'detail-type': 'Scheduled Event' },` +
  ` { awsRequestId: 'bench', getRemainingTimeInMillis: () => 30000 }).catch(() => {})`;

/** A local SSM endpoint (test/support/ssm.ts checks every signature); the bench owns its lifetime. */
export interface SsmEndpoint {
  url: string;
  env: Record<string, string>;
  put(name: string, value: string): void;
  /** Requests whose signature did not check out, so far. */
  badSignatures(): number;
  requests(): number;
}

/**
 * A TCP listener standing in for the database: the first connection a
 * process opens to it is the end of what is timed (by then the secrets were
 * read and the configuration parsed). The socket is dropped at once.
 */
async function connectionMarker(): Promise<{ port: number; next(): Promise<number>; close(): Promise<void> }> {
  let waiter: ((at: number) => void) | undefined;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    const at = performance.now();
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.destroy();
    waiter?.(at);
    waiter = undefined;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    next: () => new Promise<number>((resolve) => (waiter = resolve)),
    close: () => new Promise<void>((resolve) => (sockets.forEach((s) => s.destroy()), server.close(() => resolve()))),
  };
}

/** Spawn `node -e code` in `dir` and time it to `until` (a connection to the marker, or the process's exit). */
async function timedSpawn(dir: string, code: string, env: Record<string, string>, marker?: { next(): Promise<number> }): Promise<number> {
  const connected = marker?.next();
  const started = performance.now();
  const child = spawn(process.execPath, ['-e', code], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (output += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (output += c));
  const exited = new Promise<number>((resolve) => child.once('exit', (status) => resolve(status === 0 ? performance.now() : Number.NaN)));
  let timer: NodeJS.Timeout | undefined;
  try {
    const end = await Promise.race([
      connected ?? exited,
      ...(connected ? [exited.then(() => Number.NaN)] : []),
      new Promise<number>((resolve) => (timer = setTimeout(() => resolve(Number.NaN), 30_000))),
    ]);
    if (!Number.isFinite(end)) throw new Error(`node -e in ${dir} ended without ${connected ? 'connecting to the database' : 'success'}:\n${output.slice(-2000)}`);
    return end - started;
  } finally {
    clearTimeout(timer);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  }
}

/**
 * The first invocation's cold start with its DATABASE_URL in SSM, for each
 * variant side by side: `runs` rounds, every measurement once per round in a
 * rotating order (machine noise hits all alike), after one warm-up round (the
 * OS file cache, as a deployed image has it). Each process gets only a
 * Lambda-like environment (its credentials, region, NODE_PATH as Lambda sets
 * it with the task root in place of /var/task, HOME in the task root so no
 * ~/.aws is read) and AWS_ENDPOINT_URL_SSM pointing at `ssm`.
 */
export async function measureSecretColdStart(variants: SecretReadVariant[], runs: number, ssm: SsmEndpoint): Promise<SecretColdStart> {
  const marker = await connectionMarker();
  const dirs = variants.map((v) => {
    const dir = unzipTo(v.zipPath);
    if (v.modules) symlinkSync(v.modules, path.join(dir, 'node_modules'), 'dir');
    return dir;
  });
  try {
    const databaseUrl = `postgresql://bench:bench@127.0.0.1:${marker.port}/bench`;
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
      // Nowhere to push: the run is over at the database connection, before any push.
      PUSHGATEWAY_URL: 'http://127.0.0.1:9/',
      PUSHGATEWAY_JOB: 'xyn_bench_cold',
    });
    type Step = { key: string; run: () => Promise<number> };
    const steps: Step[] = [{ key: 'node', run: () => timedSpawn(dirs[0]!, '', lambdaEnv(dirs[0]!)) }];
    variants.forEach((_, i) => {
      const dir = dirs[i]!;
      steps.push(
        { key: `${i}:require`, run: () => timedSpawn(dir, `require('./${BUNDLE_PATH}')`, lambdaEnv(dir)) },
        { key: `${i}:plain`, run: () => timedSpawn(dir, INVOKE_HANDLER, { ...lambdaEnv(dir), DATABASE_URL: databaseUrl }, marker) },
        { key: `${i}:ssm`, run: () => timedSpawn(dir, INVOKE_HANDLER, { ...lambdaEnv(dir), DATABASE_URL_SSM_PARAMETER: parameter }, marker) },
      );
    });
    const times: Record<string, number[]> = Object.fromEntries(steps.map((s) => [s.key, []]));
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
      nodeMs: spread(times.node!),
      variants: variants.map((v, i) => {
        const plain = times[`${i}:plain`]!;
        const ssmTimes = times[`${i}:ssm`]!;
        return {
          label: v.label,
          loadsSdk: readFileSync(path.join(dirs[i]!, BUNDLE_PATH), 'utf8').includes('@aws-sdk/client-ssm'),
          requireMs: spread(times[`${i}:require`]!),
          plainMs: spread(plain),
          ssmMs: spread(ssmTimes),
          readAddsMs: spread(ssmTimes.map((t, r) => t - plain[r]!)),
        };
      }),
    };
  } finally {
    await marker.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }
}
