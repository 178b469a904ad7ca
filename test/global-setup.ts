/**
 * vitest globalSetup. Under npm test, scripts/test/main.ts has already provided the
 * services and TEST_DATABASE_URL. For a bare `npx vitest run …` without
 * TEST_DATABASE_URL, start a throw-away PostgreSQL here and stop it at the end.
 */

import { provideServices } from '../scripts/support/services';

export default async function setup(): Promise<(() => Promise<void>) | void> {
  if (process.env.TEST_DATABASE_URL) return;
  const services = await provideServices();
  process.stdout.write(`xyn-metrics tests on Node ${process.version} | ${services.summary}\n`);
  // The test workers are forked after this and inherit it.
  process.env.TEST_DATABASE_URL = services.databaseUrl;
  return async () => {
    await services.stop();
  };
}
