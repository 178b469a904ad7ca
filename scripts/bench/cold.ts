/**
 * The deployed artifact: package it exactly as a deploy does (scripts/deploy/package.sh,
 * i.e. serverless package with serverless-esbuild), measure the zip, and time
 * the cold-start cost of loading the bundled handler in fresh Node processes.
 */

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
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
