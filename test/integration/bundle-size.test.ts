/**
 * The deployed zip, built as a deploy builds it (scripts/package.sh: serverless
 * package + serverless-esbuild), stays under a size budget and carries nothing
 * the functions do not need. Given the lock file the bundles are deterministic
 * (esbuild, fixed options, zip entries dated 1980), so exact checks are fair.
 *
 * Budget: 150 KiB compressed per bundled function, and the zip at most that
 * per function. Measured at the time of writing: functions/collect.cjs 368 KB
 * minified, 131 KB compressed (the Neon driver 146 KB, node-postgres's Client
 * and its parsers 69 KB, ws 49 KB, prom-client and what its index pulls in
 * 67 KB, our code ~36 KB); functions/metrics.cjs 364 KB / 129 KB; the zip
 * holds both, 254 KiB. Raised from
 * 120 KiB by a decision (issue 15): node-postgres is the TCP+TLS transport for
 * every non-Neon database (+26 KB compressed). 150 KiB (153,600 bytes) leaves
 * ~19 KB for our own code to grow but is crossed by any further real
 * dependency: PGlite ~145 KB, an AWS SDK v3 client far more. Size
 * matters because Lambda loads and parses the handler's whole bundle on every
 * cold start (docs/benchmarks.md has the cold-start figure).
 */

import { builtinModules } from 'node:module';
import path from 'node:path';
import { rmSync } from 'node:fs';
import * as esbuild from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageFunction, readZip, type PackageResult, type ZipEntry } from '../../scripts/bench-cold';

const PER_FUNCTION_BUDGET_BYTES = 150 * 1024;

/**
 * What node-postgres's Client (imported as pg/lib/client, never pg's index,
 * which would add its Pool and a lazy pg-native require) brings: the protocol,
 * the type parsers, the URL parser, ~/.pgpass support, and pg-cloudflare's
 * 93-byte Node stub.
 */
const PULLED_IN_BY_PG_CLIENT = ['pg-protocol', 'pg-types', 'pg-int8', 'postgres-array', 'postgres-bytea', 'postgres-date', 'postgres-interval', 'xtend',
    'pg-connection-string', 'pgpass', 'split2', 'pg-cloudflare'];
/** Packages the handlers use, directly or through them (@bufbuild/protobuf, aws4, snappyjs: remote write's protobuf, SigV4 and snappy, ~20 KB minified). */
const USED = ['@neondatabase/serverless', 'prom-client', 'ws', 'pg', ...PULLED_IN_BY_PG_CLIENT, '@bufbuild/protobuf', 'aws4', 'snappyjs'];
/**
 * In the bundles because prom-client's index.js requires every metric type and
 * the default process metrics; the functions use neither Summary (tdigest,
 * bintrees) nor default metrics (@opentelemetry/api): ~32 KB minified each.
 * Listed so that the list stays exact; importing prom-client/lib/{registry,
 * gauge,pushgateway} in lib/ would drop them.
 */
const PULLED_IN_BY_PROM_CLIENT_INDEX = ['@opentelemetry/api', 'bintrees', 'tdigest'];
/** Never in a function: tooling, test-only and alternative drivers. */
const FORBIDDEN = [
  'pg-native', 'pg-pool', '@electric-sql/pglite', '@electric-sql/pglite-socket', 'aws-sdk', '@aws-sdk/',
  'serverless', 'serverless-esbuild', 'serverless-offline', 'esbuild', 'vitest', 'vite', 'typescript', 'tsx', '@types/',
];
/** ws tries these native accelerators in a try/catch; serverless.yml excludes them. */
const OPTIONAL_NATIVE = ['bufferutil', 'utf-8-validate'];
/** The Lambda Node runtime provides the AWS SDK v3; serverless.yml excludes it (lib/secrets.ts loads it only when a secret comes from SSM). */
const RUNTIME_PROVIDED = ['@aws-sdk/client-ssm'];

const root = path.resolve(import.meta.dirname, '../..');
let packaged: PackageResult;
let entries: ZipEntry[];

beforeAll(() => {
  packaged = packageFunction(root);
  entries = readZip(packaged.zipPath);
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
    target: 'node20',
    platform: 'node',
    format: 'cjs',
    outExtension: { '.js': '.cjs' },
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

describe('the deployed zip', () => {
  it('holds one bundled handler per function and nothing else (no node_modules, no sources, no maps)', () => {
    const names = entries.map((e) => e.name);
    expect(names).toContain('functions/collect.cjs');
    expect(names.every((n) => /^functions\/\w+\.cjs$/.test(n)), names.join(', ')).toBe(true);
  });

  it(`is under its budget: ${PER_FUNCTION_BUDGET_BYTES / 1024} KiB compressed per function`, () => {
    expect(packaged.zipBytes).toBeGreaterThan(10_000); // a real bundle, not an empty zip
    for (const entry of entries) {
      expect(entry.compressedBytes, `${entry.name}: ${entry.compressedBytes} bytes compressed`).toBeLessThanOrEqual(PER_FUNCTION_BUDGET_BYTES);
    }
    expect(packaged.zipBytes, `zip is ${packaged.zipBytes} bytes`).toBeLessThanOrEqual(PER_FUNCTION_BUDGET_BYTES * entries.length);
  });

  it('requires nothing at run time but Node built-ins, ws\'s optional accelerators (inside a try) and the runtime\'s AWS SDK', () => {
    const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
    for (const entry of entries) {
      const required = new Set([...entry.data.toString('utf8').matchAll(/(?:require|import)\("([^"]+)"\)/g)].map((m) => m[1]!));
      expect([...required].filter((m) => !builtins.has(m) && !OPTIONAL_NATIVE.includes(m) && !RUNTIME_PROVIDED.includes(m)), entry.name).toEqual([]);
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
      const allowed = [...USED, ...PULLED_IN_BY_PROM_CLIENT_INDEX].sort();
      // The scrape function (metrics) never sends, so esbuild drops the ESM protobuf writer; the CJS sink packages stay.
      if (entry.name === 'functions/collect.cjs') expect([...packages].sort(), entry.name).toEqual(allowed);
      else expect(allowed, entry.name).toEqual(expect.arrayContaining([...packages]));
      // Our own code is only what a handler imports: functions/ and lib/, never scripts/ or test/.
      const own = inputs.filter((i) => !i.includes('node_modules/'));
      expect(own.every((i) => /^(functions|lib)\//.test(i)), own.join(', ')).toBe(true);
    }
  });
});
