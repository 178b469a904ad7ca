/**
 * vitest globalSetup, run once per project that has tests to run (and for the
 * root). Under npm test, scripts/test/main.ts has already provided every server
 * (TEST_DATABASE_URL, TEST_POSTGRES_<major>). For a bare `npx vitest run …`,
 * start here what is missing, and stop it at the end: the primary PostgreSQL
 * for the root and `primary` projects, and for a matrix project
 * (`postgres-<major>`, vitest.config.ts) a server of that major, only when
 * that project runs a file.
 */

import type { TestProject } from 'vitest/node';
import { matrixUrlVariable } from '../scripts/support/postgres-matrix';
import { matrixSummary, provideServices, startMatrixServer } from '../scripts/support/services';

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | void> {
  const major = /^postgres-(\d+)$/.exec(project.name)?.[1];
  if (major !== undefined) {
    if (process.env[matrixUrlVariable(Number(major))]) return;
    const started = await startMatrixServer(Number(major));
    process.stdout.write(`xyn-metrics tests, project ${project.name}: ${matrixSummary([started])}\n`);
    // The test workers are forked after every global setup and inherit it.
    Object.assign(process.env, started.env);
    return () => started.server.stop();
  }
  if (process.env.TEST_DATABASE_URL) return;
  const services = await provideServices(process.env, { matrix: false });
  process.stdout.write(`xyn-metrics tests on Node ${process.version} | ${services.summary}\n`);
  Object.assign(process.env, services.env);
  return async () => {
    await services.stop();
  };
}
