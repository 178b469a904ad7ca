import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // A throw-away PostgreSQL when TEST_DATABASE_URL is unset (npm test's scripts/test/main.ts sets it).
    globalSetup: ['test/global-setup.ts'],
    // Integration tests start real servers; their own deadlines are asserted inside.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    // A skipped test hides a missing service; CI must see every test run.
    allowOnly: false,
    passWithNoTests: false,
  },
});
