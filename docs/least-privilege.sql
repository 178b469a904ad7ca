-- xyn-metrics: the collector's own database role. It may read what the
-- enabled features read and nothing else: no write, no other table, no DDL.
-- Run it once per database as an administrator (on Neon: the project owner
-- role), with psql:
--
--   psql "$ADMIN_DATABASE_URL" -v ON_ERROR_STOP=1 \
--        -v role=xyn_metrics -v schema=public -v table=runs \
--        -f docs/least-privilege.sql
--   psql "$ADMIN_DATABASE_URL" -c '\password xyn_metrics'    # set the password interactively
--
-- Then DATABASE_URL=postgresql://xyn_metrics:<password>@<host>/<db>
-- (and RUNS_TABLE=<schema>.<table> if not public.runs).
--
-- Per feature (docs/extras.md):
--   the queue snapshot, BLUEPRINT_COLUMN, STATUS_ESTIMATE_ABOVE: the runs table only (the grant below).
--   HEARTBEAT_TABLE=<hschema>.<htable>: add -v heartbeat_schema=<hschema> -v heartbeat_table=<htable>
--     (run the script again with the same role and both to add it later: every statement is repeatable
--     but CREATE ROLE, so pass -v existing=1 to skip that one).
--
-- Connection limit (-v connection_limit=N, default 8): one connection per tick,
-- and the functions' reserved concurrency is 3 (collect 1, metrics 2, by default;
-- with COLLECT_RESERVED_CONCURRENCY or METRICS_RESERVED_CONCURRENCY=none nothing
-- bounds it but this limit, so size it for the concurrency you expect); a close
-- cut at its deadline leaves a backend until the server notices (one more per
-- function), and a manual `npm run collect` or psql session needs room too:
-- 3 + 3 + 2 = 8. At the limit a tick fails with "too many connections for role".
--
-- Passing -v password='...' sets it here instead, but puts it in the shell
-- history and the process list; \password sends only a hash.
--
-- What the collector reads besides the table: pg_catalog.pg_attribute and
-- pg_enum (the status enum's labels), pg_class, pg_namespace and pg_stats (only
-- with STATUS_ESTIMATE_ABOVE). Every role can read those by default; pg_stats
-- shows only columns the role may SELECT. No grant is needed for them.

\set ON_ERROR_STOP on
\if :{?role}
\else
  \set role xyn_metrics
\endif
\if :{?schema}
\else
  \set schema public
\endif
\if :{?table}
\else
  \set table runs
\endif
\if :{?connection_limit}
\else
  \set connection_limit 8
\endif

BEGIN;

\if :{?existing}
\else
CREATE ROLE :"role" LOGIN;
\endif
ALTER ROLE :"role" LOGIN
  NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT
  -- Headroom over the reserved concurrency (see the top of this file).
  CONNECTION LIMIT :connection_limit;

\if :{?password}
  ALTER ROLE :"role" PASSWORD :'password';
\endif

-- Defence in depth: the collector already runs every tick in a READ ONLY
-- transaction with its own statement and lock timeouts; the role keeps a
-- session read-only and bounded even for someone who holds its password.
ALTER ROLE :"role" SET default_transaction_read_only = on;
ALTER ROLE :"role" SET statement_timeout = '30s';
ALTER ROLE :"role" SET lock_timeout = '5s';
ALTER ROLE :"role" SET idle_in_transaction_session_timeout = '30s';

-- The three grants: connect, see the schema, read the table.
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'role') \gexec
GRANT USAGE ON SCHEMA :"schema" TO :"role";
GRANT SELECT ON TABLE :"schema".:"table" TO :"role";

-- HEARTBEAT_TABLE (worker liveness): read that table too.
\if :{?heartbeat_table}
  \if :{?heartbeat_schema}
  \else
    \set heartbeat_schema :schema
  \endif
GRANT USAGE ON SCHEMA :"heartbeat_schema" TO :"role";
GRANT SELECT ON TABLE :"heartbeat_schema".:"heartbeat_table" TO :"role";
\endif

COMMIT;

-- Not done here, because it changes every role of the database: PostgreSQL
-- also grants PUBLIC (so this role too) CONNECT and TEMPORARY on each database,
-- USAGE on schema public (CREATE too before PostgreSQL 15) and EXECUTE on
-- functions. Where policy requires it, an administrator can tighten that:
--   REVOKE TEMPORARY ON DATABASE <db> FROM PUBLIC;
--   REVOKE CREATE ON SCHEMA public FROM PUBLIC;   -- already so on PostgreSQL 15+
--
-- To remove the role later:
--   REVOKE ALL ON TABLE <schema>.<table> FROM xyn_metrics;   -- and the heartbeat table, if granted
--   REVOKE ALL ON SCHEMA <schema> FROM xyn_metrics;
--   REVOKE ALL ON DATABASE <db> FROM xyn_metrics;
--   DROP ROLE xyn_metrics;
