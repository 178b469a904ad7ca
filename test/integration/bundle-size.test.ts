/**
 * The deployed zip, built as a deploy builds it (scripts/package.sh: serverless
 * package + serverless-esbuild), stays under a size budget and carries nothing
 * the function does not need. Given the lock file the bundle is deterministic
 * (esbuild, fixed options, zip entries dated 1980), so exact checks are fair.
 *
 * Budget: 120 KiB zipped. Measured at the time of writing: 100,261 bytes
 * (one file, functions/collect.js, 282 KB minified: the Neon driver 146 KB,
 * ws 49 KB, prom-client and what its index pulls in 67 KB, our code 19 KB).
 * 120 KiB leaves ~22 KB for our own code to grow (a few KB per feature) but is
 * crossed by any real new dependency: `pg` alone adds ~27 KB zipped, PGlite
 * ~145 KB, an AWS SDK v3 client far more. Crossing it should be a decision.
 * Size matters for the function because Lambda loads and parses the whole
 * bundle on every cold start (docs/benchmarks.md has the cold-start figure).
 */

import { builtinModules } from 'node:module';
import path from 'node:path';
import { readFileSync, rmSync } from 'node:fs';
import * as esbuild from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLE_PATH, packageFunction, unzipTo, zipEntries, type PackageResult } from '../../scripts/bench-cold';

const ZIP_BUDGET_BYTES = 120 * 1024;

/** Packages the handler uses, directly or through them. */
const USED = ['@neondatabase/serverless', 'prom-client', 'ws'];
/**
 * In the bundle because prom-client's index.js requires every metric type and
 * the default process metrics; the function uses neither Summary (tdigest,
 * bintrees) nor default metrics (@opentelemetry/api), ~32 KB minified. Listed
 * so that the list stays exact; importing prom-client/lib/{registry,gauge,
 * pushgateway} in lib/ would drop them.
 */
const PULLED_IN_BY_PROM_CLIENT_INDEX = ['@opentelemetry/api', 'bintrees', 'tdigest'];
/** Never in the function: tooling, test-only and alternative drivers. */
const FORBIDDEN = [
  'pg', 'pg-native', 'pg-protocol', '@electric-sql/pglite', '@electric-sql/pglite-socket', 'aws-sdk', '@aws-sdk/',
  'serverless', 'serverless-esbuild', 'serverless-offline', 'esbuild', 'vitest', 'vite', 'typescript', 'tsx', '@types/',
];
/** ws tries these native accelerators in a try/catch; serverless.yml excludes them. */
const OPTIONAL_NATIVE = ['bufferutil', 'utf-8-validate'];

const root = path.resolve(import.meta.dirname, '../..');
let packaged: PackageResult;
let bundle: string;

beforeAll(() => {
  packaged = packageFunction(root);
  const dir = unzipTo(packaged.zipPath);
  try {
    bundle = readFileSync(path.join(dir, BUNDLE_PATH), 'utf8');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
afterAll(() => {
  if (packaged) rmSync(packaged.outDir, { recursive: true, force: true });
});

/** The same build serverless-esbuild runs (serverless.yml custom.esbuild), with a metafile. */
async function metafileBuild() {
  return esbuild.build({
    absWorkingDir: root,
    entryPoints: ['functions/collect.ts'],
    bundle: true,
    minify: true,
    sourcemap: false,
    target: 'node20',
    platform: 'node',
    format: 'cjs',
    external: OPTIONAL_NATIVE,
    metafile: true,
    write: false,
    outdir: 'out',
    logLevel: 'silent',
  });
}

function packageOf(input: string): string | undefined {
  return /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input)?.[1];
}

describe('the deployed zip', () => {
  it(`is under its budget of ${ZIP_BUDGET_BYTES / 1024} KiB`, () => {
    expect(packaged.zipBytes).toBeGreaterThan(10_000); // a real bundle, not an empty zip
    expect(packaged.zipBytes, `zip is ${packaged.zipBytes} bytes`).toBeLessThanOrEqual(ZIP_BUDGET_BYTES);
  });

  it('holds the one bundled handler and nothing else (no node_modules, no sources, no maps)', () => {
    expect(zipEntries(packaged.zipPath)).toEqual([BUNDLE_PATH]);
  });

  it('requires nothing at run time but Node built-ins (and ws\'s optional accelerators, inside a try)', () => {
    const required = new Set([...bundle.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1]!));
    const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
    const foreign = [...required].filter((m) => !builtins.has(m) && !OPTIONAL_NATIVE.includes(m));
    expect(foreign).toEqual([]);
  });

  it('is built from exactly the packages the function uses', async () => {
    const result = await metafileBuild();
    const [output] = result.outputFiles;
    // The metafile describes the shipped bundle: same options, byte for byte the same output.
    expect(Buffer.from(output!.contents).equals(Buffer.from(bundle, 'utf8'))).toBe(true);

    const packages = new Set(Object.keys(result.metafile.inputs).map(packageOf).filter((p): p is string => !!p));
    const forbidden = [...packages].filter((p) => FORBIDDEN.some((f) => (f.endsWith('/') ? p.startsWith(f) : p === f)));
    expect(forbidden).toEqual([]);
    expect([...packages].sort()).toEqual([...USED, ...PULLED_IN_BY_PROM_CLIENT_INDEX].sort());
    // Our own code is only what the handler imports: functions/ and lib/, never scripts/ or test/.
    const own = Object.keys(result.metafile.inputs).filter((i) => !i.includes('node_modules/'));
    expect(own.every((i) => /^(functions|lib)\//.test(i)), own.join(', ')).toBe(true);
  });
});
