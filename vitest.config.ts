import { defineConfig } from 'vitest/config';
import { matrixEnabled, matrixMajors, matrixProjectName } from './scripts/support/postgres-matrix.js';

/**
 * The files that talk to PostgreSQL in ways that may differ between majors:
 * the snapshot SQL on the exact path and the estimate path (pg_stats, the
 * plans), enum and text status columns (collect.test.ts), the degraded read,
 * the least-privilege script (CREATEROLE's rules changed in 16), TLS,
 * PgBouncer, and the server launcher itself (the npm binaries, not as root).
 * Worker liveness and per-blueprint SQL (count DISTINCT, percentile_cont) and
 * faults-data.test.ts's 200 000-row queue stay on the primary server: nothing
 * in them changed between 13 and 18, and the matrix must stay cheap. Each runs once more per major of the version matrix
 * (scripts/support/postgres-matrix.ts), as project `postgres-<major>`; every
 * file runs against the primary server as project `primary`.
 */
export const DATABASE_TESTS = [
  'test/integration/postgres-server.test.ts',
  'test/integration/collect.test.ts',
  'test/integration/estimate.test.ts',
  'test/integration/plan.test.ts',
  'test/integration/degraded.test.ts',
  'test/integration/least-privilege.test.ts',
  'test/integration/database-tls.test.ts',
  'test/integration/pgbouncer.test.ts',
];

export default defineConfig({
  test: {
    // Started per project with a file to run: the primary PostgreSQL, or a matrix major's (npm test starts them all first).
    globalSetup: ['test/global-setup.ts'],
    // Integration tests start real servers; their own deadlines are asserted inside.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    // A skipped test hides a missing service; CI must see every test run.
    allowOnly: false,
    passWithNoTests: false,
    projects: [
      { extends: true, test: { name: 'primary', include: ['test/**/*.test.ts'] } },
      ...(matrixEnabled() ? matrixMajors() : []).map((major) => ({
        extends: true as const,
        test: {
          name: matrixProjectName(major),
          include: DATABASE_TESTS,
          env: { XYN_TEST_POSTGRES_MAJOR: String(major) },
          setupFiles: ['test/support/postgres-major.ts'],
        },
      })),
    ],
  },
});
