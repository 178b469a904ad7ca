/**
 * The deployed zip, built as a deploy builds it (scripts/deploy/package.sh: serverless
 * package + serverless-esbuild), stays under a size budget and carries nothing
 * the functions do not need. Given the lock file the bundles are deterministic
 * (esbuild, fixed options, zip entries dated 1980), so exact checks are fair.
 *
 * Each function is packaged on its own (serverless.yml package.individually):
 * <function>.zip holds that function's bundle alone. Budget: 150 KiB
 * compressed per bundled function, and no zip over 150 KiB (issue 11).
 * Measured at the time of writing (issues 11, 14 and 15 merged): collect.zip
 * 124,455 bytes, metrics.zip 117,590; with the SDK-free SSM read (issue 20)
 * 125,844 and 119,585 (functions/collect.cjs ~348 KB minified:
 * the Neon driver 146 KB, node-postgres's Client and its parsers 69 KB, ws 49 KB,
 * prom-client's Registry and Gauge alone, remote write's protobuf, snappy and
 * SigV4 ~20 KB, our code ~40 KB).
 * Raised from 120 KiB by a decision (issue 15): node-postgres is the TCP+TLS
 * transport for every non-Neon database (+26 KB compressed). What is left
 * is crossed by any further real dependency: PGlite ~145 KB, an AWS SDK v3
 * client far more (none is used: lib/runtime/ssm.ts signs its one SSM call
 * with aws4, so the bundles need no node_modules, not even the runtime's). Size
 * matters because Lambda loads and parses the handler's whole bundle on every
 * cold start (docs/benchmarks.md has the cold-start figure).
 */

import { builtinModules } from 'node:module';
import path from 'node:path';
import { rmSync, statSync } from 'node:fs';
import * as esbuild from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageFunction, readZip, type PackageResult, type ZipEntry } from '../../scripts/bench/cold';

const PER_FUNCTION_BUDGET_BYTES = 150 * 1024;
const LARGEST_ZIP_BYTES = 150 * 1024;

/**
 * What node-postgres's Client (imported as pg/lib/client, never pg's index,
 * which would add its Pool and a lazy pg-native require) brings: the protocol,
 * the type parsers, the URL parser, ~/.pgpass support, and pg-cloudflare's
 * 93-byte Node stub.
 */
const PULLED_IN_BY_PG_CLIENT = ['pg-protocol', 'pg-types', 'pg-int8', 'postgres-array', 'postgres-bytea', 'postgres-date', 'postgres-interval', 'xtend',
    'pg-connection-string', 'pgpass', 'split2', 'pg-cloudflare'];
/** Packages the handlers use, directly or through them (@bufbuild/protobuf, aws4, snappyjs: remote write's protobuf, SigV4 (also the RDS IAM token's) and snappy, ~20 KB minified). */
const USED = ['@neondatabase/serverless', 'prom-client', 'ws', 'pg', ...PULLED_IN_BY_PG_CLIENT, '@bufbuild/protobuf', 'aws4', 'snappyjs'];
/** What remote write alone brings: the protobuf writer and snappy (SigV4 both functions carry, for RDS IAM tokens). */
const SINK_PACKAGES = ['@bufbuild/protobuf', 'snappyjs'];
/** Exactly the packages, and none of the own code, each function's bundle may hold. */
const PER_FUNCTION = {
  collect: { packages: USED, noOwn: [] as string[] },
  // GET /metrics reads and builds, never sends: no sink, no remote-write encoder, no snappy, no protobuf.
  // aws4 it has: it signs its own SSM read (lib/runtime/ssm.ts) and the RDS IAM token (lib/source/iam-token.ts).
  metrics: { packages: USED.filter((p) => !SINK_PACKAGES.includes(p)), noOwn: ['lib/sinks/'] },
} as const;
/** Never in a function: tooling, test-only and alternative drivers. */
const FORBIDDEN = [
  // What prom-client's index would pull in (lib/metrics/registry.ts imports its Registry and Gauge files instead):
  // Summary's tdigest and bintrees, the default metrics' @opentelemetry/api, ~32 KB minified.
  '@opentelemetry/api', 'bintrees', 'tdigest',
  'pg-native', 'pg-pool', '@electric-sql/pglite', '@electric-sql/pglite-socket', 'aws-sdk', '@aws-sdk/',
  'serverless', 'osls', 'serverless-esbuild', 'serverless-offline', 'esbuild', 'vitest', 'vite', 'typescript', 'tsx', '@types/',
];
/** ws tries these native accelerators in a try/catch; serverless.yml excludes them. */
const OPTIONAL_NATIVE = ['bufferutil', 'utf-8-validate'];

const root = path.resolve(import.meta.dirname, '../..');
let packaged: PackageResult;
/** Every function's zip entries, by function name. */
let zips: Record<string, ZipEntry[]>;
let entries: ZipEntry[];

beforeAll(() => {
  // The metrics function is packaged only when asked for; ask, so both are checked.
  packaged = packageFunction(root, { AWS_REGION: 'eu-west-1', METRICS_ENDPOINT: 'on' });
  zips = Object.fromEntries(Object.entries(packaged.zips).map(([name, zip]) => [name, readZip(zip)]));
  entries = Object.values(zips).flat();
});
afterAll(() => {
  if (packaged) rmSync(packaged.outDir, { recursive: true, force: true });
});

/** The same build serverless-esbuild runs (serverless.yml custom.esbuild), with a metafile. */
async function metafileBuild(sources: string[]) {
  return esbuild.build({
    absWorkingDir: root,
    entryPoints: sources,
    bundle: true,
    minify: true,
    sourcemap: false,
    target: 'node24',
    platform: 'node',
    format: 'cjs',
    outExtension: { '.js': '.cjs' },
    // serverless.yml still excludes '@aws-sdk/*', as a guard: an SDK import would stay out of the bundle and fail the "requires nothing" test below.
    external: [...OPTIONAL_NATIVE, '@aws-sdk/*'],
    metafile: true,
    write: false,
    outdir: 'out',
    logLevel: 'silent',
  });
}

function packageOf(input: string): string | undefined {
  return /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input)?.[1];
}

describe('the deployed zips', () => {
  it('one zip per function, holding its own bundled handler and nothing else (no node_modules, no sources, no maps)', () => {
    expect(Object.keys(zips).sort()).toEqual(['collect', 'metrics']);
    for (const [name, zipEntries] of Object.entries(zips)) {
      expect(zipEntries.map((e) => e.name), `${name}.zip`).toEqual([`functions/${name}.cjs`]);
    }
  });

  it(`are under budget: ${PER_FUNCTION_BUDGET_BYTES / 1024} KiB compressed per function, no zip over ${LARGEST_ZIP_BYTES / 1024} KiB`, () => {
    for (const entry of entries) {
      expect(entry.compressedBytes, `${entry.name}: ${entry.compressedBytes} bytes compressed`).toBeGreaterThan(10_000); // a real bundle
      expect(entry.compressedBytes, `${entry.name}: ${entry.compressedBytes} bytes compressed`).toBeLessThanOrEqual(PER_FUNCTION_BUDGET_BYTES);
    }
    for (const [name, zip] of Object.entries(packaged.zips)) {
      const bytes = statSync(zip).size;
      expect(bytes, `${name}.zip is ${bytes} bytes`).toBeLessThanOrEqual(LARGEST_ZIP_BYTES);
    }
  });

  it('requires nothing at run time but Node built-ins and ws\'s optional accelerators (inside a try): no AWS SDK, nothing from the runtime', () => {
    const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
    for (const entry of entries) {
      const required = new Set([...entry.data.toString('utf8').matchAll(/(?:require|import)\("([^"]+)"\)/g)].map((m) => m[1]!));
      expect([...required].filter((m) => !builtins.has(m) && !OPTIONAL_NATIVE.includes(m)), entry.name).toEqual([]);
    }
  });

  it('is built from exactly the packages the functions use', async () => {
    const sources = entries.map((e) => e.name.replace(/\.cjs$/, '.ts'));
    const result = await metafileBuild(sources);
    for (const entry of entries) {
      const output = result.outputFiles.find((f) => f.path.endsWith(`/out/${path.basename(entry.name)}`));
      // The metafile describes the shipped bundle: same options, byte for byte the same output.
      expect(output, `no build output for ${entry.name}`).toBeDefined();
      expect(Buffer.from(output!.contents).equals(entry.data), `${entry.name} differs from the metafile build`).toBe(true);

      const meta = Object.entries(result.metafile.outputs).find(([file]) => file.endsWith(path.basename(entry.name)))![1];
      const inputs = Object.keys(meta.inputs);
      const packages = new Set(inputs.map(packageOf).filter((p): p is string => !!p));
      const forbidden = [...packages].filter((p) => FORBIDDEN.some((f) => (f.endsWith('/') ? p.startsWith(f) : p === f)));
      expect(forbidden, entry.name).toEqual([]);
      const name = path.basename(entry.name, '.cjs') as keyof typeof PER_FUNCTION;
      const { packages: expected, noOwn } = PER_FUNCTION[name];
      expect([...packages].sort(), entry.name).toEqual([...expected].sort());
      // Our own code is only what a handler imports: functions/ and lib/, never scripts/ or test/.
      const own = inputs.filter((i) => !i.includes('node_modules/'));
      expect(own.every((i) => /^(functions|lib)\//.test(i)), own.join(', ')).toBe(true);
      // The scrape function never sends: no sink code of ours either (issue 19).
      expect(own.filter((i) => noOwn.some((prefix) => i.startsWith(prefix))), entry.name).toEqual([]);
    }
  });
});
