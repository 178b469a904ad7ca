/**
 * The shape of the Xyn runtime's `runs` table (status enum, timestamps and the
 * indexes the collector relies on), for the demo database, the tests and
 * the benchmark. Production owns its own DDL; this mirrors it.
 */

export const RUN_STATUSES = ['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'] as const;

/** DDL for a runs table in `schema` (created if missing); identifiers must be pre-validated. */
export function runsSchemaSql(schema = 'public', table = 'runs'): string {
  const s = `"${schema}"`;
  const t = `${s}."${table}"`;
  return `
CREATE SCHEMA IF NOT EXISTS ${s};
DO $$ BEGIN
  CREATE TYPE ${s}.run_status AS ENUM (${RUN_STATUSES.map((x) => `'${x}'`).join(', ')});
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE TABLE IF NOT EXISTS ${t} (
  id               bigserial PRIMARY KEY,
  blueprint        text NOT NULL DEFAULT 'default',
  status           ${s}.run_status NOT NULL DEFAULT 'QUEUED',
  run_at           timestamptz,
  queued_at        timestamptz DEFAULT now(),
  lease_expires_at timestamptz,
  worker_id        text,
  started_at       timestamptz,
  finished_at      timestamptz,
  payload          jsonb
);
CREATE INDEX IF NOT EXISTS ix_runs_status ON ${t} (status);
CREATE INDEX IF NOT EXISTS ix_runs_run_at ON ${t} (run_at);
CREATE INDEX IF NOT EXISTS ix_runs_queued_at ON ${t} (queued_at);
CREATE INDEX IF NOT EXISTS ix_runs_lease_expires_at ON ${t} (lease_expires_at);
-- For the opt-in flow figures and per-blueprint durations (docs/extras.md): runs finished,
-- and runs started, in the last window.
CREATE INDEX IF NOT EXISTS ix_runs_finished_at ON ${t} (finished_at);
CREATE INDEX IF NOT EXISTS ix_runs_started_at ON ${t} (started_at);
`;
}
