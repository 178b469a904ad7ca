/**
 * A real PostgreSQL for the integration tests: each test file gets its own
 * schema with a fresh runs table. A server that cannot be reached fails the
 * suite (never a skip): CI starts one, see .ci/run.
 */

import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { runsSchemaSql } from '../../scripts/runs-schema';

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

export async function createTestDatabase(prefix = 't'): Promise<TestDatabase> {
  const client = await adminClient();
  const schema = `${prefix}_${randomBytes(5).toString('hex')}`;
  await client.query(runsSchemaSql(schema));
  return {
    url: ADMIN_URL,
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
