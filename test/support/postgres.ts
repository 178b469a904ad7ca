/**
 * A real PostgreSQL for the integration tests: each test file gets its own
 * schema with a fresh runs table. A server that cannot be reached fails the
 * suite (never a skip): CI starts one, see .ci/run.
 */

import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { runsSchemaSql } from '../../scripts/support/runs-schema';

export const ADMIN_URL = process.env.TEST_DATABASE_URL ?? 'postgresql://postgres:postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  url: string;
  schema: string;
  /** schema.runs, the RUNS_TABLE value */
  table: string;
  query<T extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  close(): Promise<void>;
}

export async function adminClient(url = ADMIN_URL): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
  } catch (error) {
    throw new Error(
      `integration tests need PostgreSQL at ${url.replace(/:[^:@/]*@/, ':***@')} (set TEST_DATABASE_URL; .ci/run starts it): ${(error as Error).message}`,
    );
  }
  return client;
}

/**
 * A runs table in a schema of its own (`<prefix>_<random>`, or `schema`),
 * created by `url`'s user, so owned by it: the superuser's by default, e.g. a
 * managed database's admin for the least-privilege tests.
 */
export async function createTestDatabase(prefix = 't', { url = ADMIN_URL, schema: given }: { url?: string; schema?: string } = {}): Promise<TestDatabase> {
  const client = await adminClient(url);
  const schema = given ?? `${prefix}_${randomBytes(5).toString('hex')}`;
  await client.query(runsSchemaSql(schema));
  return {
    url,
    schema,
    table: `${schema}.runs`,
    async query(sql, params) {
      return (await client.query(sql, params as unknown[])).rows;
    },
    async close() {
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
      await client.end();
    },
  };
}

/**
 * The queue the alert tests know by heart: 150 ready runs (a backlog), the
 * oldest queued 900 s ago, 2 future, 2 RUNNING with expired leases and no
 * active one, plus `terminal` runs per terminal status.
 */
export async function seedAlertingQueue(db: TestDatabase, terminal: Record<string, number>): Promise<void> {
  await db.query(`
    INSERT INTO ${db.table} (status, run_at, queued_at, lease_expires_at)
    SELECT 'QUEUED', now() - interval '1 minute', now() - interval '900 seconds' + g * interval '1 second', NULL
    FROM generate_series(0, 149) g`);
  await db.query(`
    INSERT INTO ${db.table} (status, run_at, queued_at, lease_expires_at) VALUES
      ('QUEUED',    now() + interval '1 hour', now(), NULL),
      ('QUEUED',    now() + interval '1 day',  now(), NULL),
      ('RUNNING',   now(), now(), now() - interval '10 minutes'),
      ('RUNNING',   now(), now(), now() - interval '1 hour')`);
  for (const [status, count] of Object.entries(terminal)) {
    await db.query(`INSERT INTO ${db.table} (status, run_at, queued_at) SELECT $1, now(), now() FROM generate_series(1, $2)`, [status, count]);
  }
}
