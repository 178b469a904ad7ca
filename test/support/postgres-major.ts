/**
 * setupFiles of a version-matrix project (`postgres-<major>`, vitest.config.ts):
 * before a test file loads, point it at that major's server. TEST_DATABASE_URL
 * (test/support/postgres.ts's ADMIN_URL) becomes the major's server, PG_BIN its
 * binaries (for tests that start a server of their own, e.g. with TLS). A
 * missing server fails the file: never the primary server in its place.
 */

import { matrixBinVariable, matrixUrlVariable } from '../../scripts/support/postgres-matrix';

const major = Number(process.env.XYN_TEST_POSTGRES_MAJOR);
const url = process.env[matrixUrlVariable(major)];
const bin = process.env[matrixBinVariable(major)];
if (!Number.isInteger(major) || !url || !bin) {
  throw new Error(
    `the version matrix project for PostgreSQL ${process.env.XYN_TEST_POSTGRES_MAJOR} has no server (${matrixUrlVariable(major)} or ${matrixBinVariable(major)} unset): ` +
      'npm test and test/global-setup.ts start it',
  );
}
process.env.TEST_DATABASE_URL = url;
process.env.PG_BIN = bin;
