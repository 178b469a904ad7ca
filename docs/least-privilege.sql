-- xyn-metrics: the collector's own database role. It may read what the
-- enabled features read and nothing else: no write, no other table, no DDL
-- (but before PostgreSQL 15 every role may create in schema public unless its
-- owner revoked that: the script says so when it is the case; see the end).
-- Run it once per database as an administrator, with psql (10 or later):
--
--   psql "$ADMIN_DATABASE_URL" -v ON_ERROR_STOP=1 \
--        -v role=xyn_metrics -v schema=public -v table=runs \
--        -f docs/least-privilege.sql
--   psql "$ADMIN_DATABASE_URL" -c '\password xyn_metrics'    # set the password interactively
--
-- Then DATABASE_URL=postgresql://xyn_metrics:<password>@<host>/<db>
-- (and RUNS_TABLE=<schema>.<table> if not public.runs).
--
-- Who may run it, PostgreSQL 13 to 18:
--   - a superuser;
--   - a role with CREATEROLE that is not a superuser: what a managed database
--     gives you (the RDS or Aurora master user, Neon's project owner, Cloud
--     SQL's postgres user, Supabase's postgres). It must own the schema and the
--     table (or hold USAGE / SELECT WITH GRANT OPTION on them), as the role that
--     created them does, and owns the database or relies on PUBLIC's CONNECT.
--
-- What such a role cannot do, and what the script does instead (it says so
-- when it runs, as NOTICEs, and stops with an error where the result would not
-- be least privilege):
--   - set or clear SUPERUSER, REPLICATION or BYPASSRLS (every major), nor
--     CREATEDB unless it has CREATEDB itself (16 and later): the script names
--     no attribute it does not need to change. CREATE ROLE leaves them all off,
--     and the check at the end proves the role has none; a role given with
--     -v existing=1 that has one stops the script with what to ask a superuser.
--   - on 16 and later, alter a role it has no ADMIN OPTION on, i.e. one it did
--     not create: with -v existing=1 on such a role the script stops and says
--     how to get the option (GRANT <role> TO <admin> WITH ADMIN OPTION, by the
--     role's creator or a superuser). On 13 to 15 CREATEROLE may alter any role
--     that is not a superuser.
--   - grant CONNECT on a database it does not own: the role then connects
--     through the CONNECT that PUBLIC has on every database by default (the
--     script checks that it can; if PUBLIC's was revoked, it stops).
--   - grant SELECT on a table it neither owns nor holds SELECT WITH GRANT
--     OPTION on: the script stops before granting it, naming the table. USAGE
--     on a schema it may not grant (schema public before 15, owned by the
--     bootstrap superuser) is left to PUBLIC's USAGE when the role has it, and
--     stops the script when it does not.
--   - tighten PUBLIC's defaults (see the end of this file): only the database
--     or schema owner can, and it changes every role, so it is never done here.
--
-- Per feature (docs/extras.md):
--   the queue snapshot, BLUEPRINT_COLUMN, RUN_STARTED_COLUMN / RUN_FINISHED_COLUMN (flow),
--   STATUS_ESTIMATE_ABOVE: the runs table only (the grant below).
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
--
-- Tested (test/integration/least-privilege.test.ts) on every PostgreSQL major npm
-- test runs, run by a superuser and by a CREATEROLE admin that is not one.

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
\if :{?heartbeat_table}
  \if :{?heartbeat_schema}
  \else
    \set heartbeat_schema :schema
  \endif
\endif

BEGIN;

-- psql substitutes no variable inside a DO block's body: the blocks read them
-- from these transaction-local settings. (\gset: nothing is printed.)
SELECT set_config('xyn_metrics.role', :'role', true) AS role,
       set_config('xyn_metrics.connection_limit', :'connection_limit'::int::text, true) AS connection_limit
\gset xyn_metrics_
\if :{?heartbeat_table}
SELECT set_config('xyn_metrics.tables', ARRAY[format('%I.%I', :'schema', :'table'), format('%I.%I', :'heartbeat_schema', :'heartbeat_table')]::text, true) AS tables
\gset xyn_metrics_
\else
SELECT set_config('xyn_metrics.tables', ARRAY[format('%I.%I', :'schema', :'table')]::text, true) AS tables
\gset xyn_metrics_
\endif

\if :{?existing}
\else
CREATE ROLE :"role" LOGIN;
\endif

-- LOGIN, NOINHERIT and the connection limit (headroom over the reserved
-- concurrency, see the top of this file), which a CREATEROLE admin may set;
-- NOSUPERUSER, NOCREATEDB, NOCREATEROLE, NOREPLICATION, NOBYPASSRLS only for
-- an attribute the role has (a new role has none), since naming one is refused
-- to an admin that may not change it, even when nothing would change.
DO $$
DECLARE
  role_name text := current_setting('xyn_metrics.role');
  conn_limit int := current_setting('xyn_metrics.connection_limit')::int;
  major int := current_setting('server_version_num')::int / 10000;
  target pg_catalog.pg_roles;
  me pg_catalog.pg_roles;
  clear text[] := '{}';
  held text[] := '{}';
  detail text;
  hint text;
BEGIN
  SELECT * INTO target FROM pg_catalog.pg_roles WHERE rolname = role_name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'xyn-metrics: role % does not exist', role_name USING HINT = 'run the script without -v existing=1 to create it';
  END IF;
  SELECT * INTO me FROM pg_catalog.pg_roles WHERE rolname = current_user;
  IF target.rolsuper THEN held := held || 'SUPERUSER'::text; END IF;
  IF target.rolcreatedb THEN held := held || 'CREATEDB'::text; END IF;
  IF target.rolcreaterole THEN held := held || 'CREATEROLE'::text; END IF;
  IF target.rolreplication THEN held := held || 'REPLICATION'::text; END IF;
  IF target.rolbypassrls THEN held := held || 'BYPASSRLS'::text; END IF;
  SELECT coalesce(array_agg('NO' || attribute), '{}') INTO clear FROM unnest(held) AS attribute;
  BEGIN
    EXECUTE format('ALTER ROLE %I LOGIN NOINHERIT CONNECTION LIMIT %s %s', role_name, conn_limit, array_to_string(clear, ' '));
  EXCEPTION WHEN insufficient_privilege THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    IF cardinality(held) > 0 THEN
      hint := format('%s has %s, which %s may not remove: a superuser must (ALTER ROLE %I %s), or use a new role name',
                     role_name, array_to_string(held, ', '), current_user, role_name, array_to_string(clear, ' '));
    ELSIF major >= 16 THEN
      hint := format('PostgreSQL %s lets a CREATEROLE role alter only roles it has ADMIN OPTION on (those it created): '
                     'have the role''s creator or a superuser run GRANT %I TO %I WITH ADMIN OPTION, or use a new role name',
                     major, role_name, current_user);
    ELSE
      hint := 'run the script as a superuser or as a role with CREATEROLE';
    END IF;
    RAISE EXCEPTION 'xyn-metrics: % may not alter role %: %', current_user, role_name, SQLERRM
      USING DETAIL = coalesce(detail, ''), HINT = hint;
  END;
  IF NOT me.rolsuper THEN
    RAISE NOTICE 'xyn-metrics: run by %, not a superuser: SUPERUSER, REPLICATION, BYPASSRLS% are left as CREATE ROLE made them (off), not set: this role may not name them; the check at the end proves they are off',
      current_user, CASE WHEN major >= 16 AND NOT me.rolcreatedb THEN ' and CREATEDB' ELSE '' END;
  END IF;
END $$;

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

-- CONNECT on this database: granted when this role may (its owner, or WITH
-- GRANT OPTION); otherwise the role relies on PUBLIC's default CONNECT.
DO $$
DECLARE
  role_name text := current_setting('xyn_metrics.role');
BEGIN
  IF has_database_privilege(current_database(), 'CONNECT WITH GRANT OPTION') THEN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), role_name);
  ELSIF has_database_privilege(role_name, current_database(), 'CONNECT') THEN
    RAISE NOTICE 'xyn-metrics: CONNECT on database % not granted: % neither owns it nor holds CONNECT WITH GRANT OPTION; % connects through the CONNECT that PUBLIC has by default',
      current_database(), current_user, role_name;
  ELSE
    RAISE EXCEPTION 'xyn-metrics: % could not connect to database %, and % may not grant CONNECT on it', role_name, current_database(), current_user
      USING HINT = format('its owner can: GRANT CONNECT ON DATABASE %I TO %I', current_database(), role_name);
  END IF;
END $$;

-- See the schema, read the table (and with -v heartbeat_table=..., that one
-- too). Checked first, so a role that may not grant stops here with the
-- object's name rather than after PostgreSQL's "no privileges were granted"
-- warning.
DO $$
DECLARE
  role_name text := current_setting('xyn_metrics.role');
  name text;
  rel regclass;
  nsp text;
BEGIN
  FOREACH name IN ARRAY current_setting('xyn_metrics.tables')::text[] LOOP
    rel := to_regclass(name);
    IF rel IS NULL THEN
      RAISE EXCEPTION 'xyn-metrics: table % does not exist', name USING HINT = 'pass -v schema=... -v table=... (and -v heartbeat_schema, -v heartbeat_table)';
    END IF;
    SELECT n.nspname INTO nsp FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel;
    IF NOT has_table_privilege(rel, 'SELECT WITH GRANT OPTION') THEN
      RAISE EXCEPTION 'xyn-metrics: % may not grant SELECT on %', current_user, rel
        USING HINT = 'run the script as the table''s owner, or have it GRANT SELECT ON the table to this role WITH GRANT OPTION';
    END IF;
    IF has_schema_privilege(nsp, 'USAGE WITH GRANT OPTION') THEN
      EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', nsp, role_name);
    ELSIF has_schema_privilege(role_name, nsp, 'USAGE') THEN
      -- E.g. schema public before PostgreSQL 15, owned by the bootstrap superuser, USAGE granted to PUBLIC.
      RAISE NOTICE 'xyn-metrics: USAGE on schema % not granted: % neither owns it nor holds USAGE WITH GRANT OPTION; % uses it through the USAGE that PUBLIC has on it',
        nsp, current_user, role_name;
    ELSE
      RAISE EXCEPTION 'xyn-metrics: % may not grant USAGE on schema %', current_user, nsp
        USING HINT = 'run the script as the schema''s owner, or have it GRANT USAGE ON SCHEMA to this role WITH GRANT OPTION';
    END IF;
    EXECUTE format('GRANT SELECT ON TABLE %s TO %I', rel, role_name);
    IF has_schema_privilege(role_name, nsp, 'CREATE') THEN
      -- Not revoked here: it is PUBLIC's, so every role's (see the end of this file).
      RAISE NOTICE 'xyn-metrics: % may CREATE in schema % (before PostgreSQL 15 every role may create in schema public): the schema''s owner can REVOKE CREATE ON SCHEMA % FROM PUBLIC',
        role_name, nsp, quote_ident(nsp);
    END IF;
  END LOOP;
END $$;

-- The check: what the collector's role must be, whoever ran the script.
DO $$
DECLARE
  role_name text := current_setting('xyn_metrics.role');
  conn_limit int := current_setting('xyn_metrics.connection_limit')::int;
  r pg_catalog.pg_roles;
  settings text[];
  wanted text[] := ARRAY['default_transaction_read_only=on', 'statement_timeout=30s', 'lock_timeout=5s', 'idle_in_transaction_session_timeout=30s'];
  wrong text[] := '{}';
  name text;
  rel regclass;
  tables text[] := '{}';
BEGIN
  SELECT * INTO r FROM pg_catalog.pg_roles WHERE rolname = role_name;
  IF r.rolsuper THEN wrong := wrong || 'SUPERUSER'::text; END IF;
  IF r.rolcreatedb THEN wrong := wrong || 'CREATEDB'::text; END IF;
  IF r.rolcreaterole THEN wrong := wrong || 'CREATEROLE'::text; END IF;
  IF r.rolreplication THEN wrong := wrong || 'REPLICATION'::text; END IF;
  IF r.rolbypassrls THEN wrong := wrong || 'BYPASSRLS'::text; END IF;
  IF r.rolinherit THEN wrong := wrong || 'INHERIT'::text; END IF;
  IF NOT r.rolcanlogin THEN wrong := wrong || 'NOLOGIN'::text; END IF;
  IF r.rolconnlimit <> conn_limit THEN wrong := wrong || format('CONNECTION LIMIT %s', r.rolconnlimit); END IF;
  SELECT s.setconfig INTO settings FROM pg_catalog.pg_db_role_setting s WHERE s.setdatabase = 0 AND s.setrole = r.oid;
  IF NOT coalesce(settings @> wanted, false) THEN
    wrong := wrong || format('settings %s (wanted %s)', coalesce(settings::text, 'none'), wanted::text);
  END IF;
  IF NOT has_database_privilege(role_name, current_database(), 'CONNECT') THEN
    wrong := wrong || format('no CONNECT on database %I', current_database());
  END IF;
  FOREACH name IN ARRAY current_setting('xyn_metrics.tables')::text[] LOOP
    rel := to_regclass(name);
    IF NOT has_table_privilege(role_name, rel, 'SELECT') THEN wrong := wrong || format('no SELECT on %s', rel); END IF;
    IF NOT has_schema_privilege(role_name, (SELECT c.relnamespace FROM pg_catalog.pg_class c WHERE c.oid = rel), 'USAGE') THEN
      wrong := wrong || format('no USAGE on the schema of %s', rel);
    END IF;
    tables := tables || rel::text;
  END LOOP;
  IF cardinality(wrong) > 0 THEN
    RAISE EXCEPTION 'xyn-metrics: role % is not what the collector needs: %', role_name, array_to_string(wrong, '; ');
  END IF;
  RAISE NOTICE 'xyn-metrics: role % ready: LOGIN, CONNECTION LIMIT %, no other attribute; sessions read-only, statement_timeout 30s, lock_timeout 5s, idle_in_transaction_session_timeout 30s; SELECT on %',
    role_name, conn_limit, array_to_string(tables, ', ');
END $$;

COMMIT;

-- Not done here, because it changes every role of the database: PostgreSQL
-- also grants PUBLIC (so this role too) CONNECT and TEMPORARY on each database,
-- USAGE on schema public (CREATE too before PostgreSQL 15) and EXECUTE on
-- functions. Where policy requires it, the database's owner can tighten that
-- (a CREATEROLE admin that does not own the database cannot):
--   REVOKE TEMPORARY ON DATABASE <db> FROM PUBLIC;
--   REVOKE CREATE ON SCHEMA public FROM PUBLIC;   -- already so on PostgreSQL 15+
-- (Revoking CONNECT from PUBLIC on a database this script ran on as a
-- non-owner leaves the role without CONNECT: grant it first, as the owner.)
--
-- To remove the role later:
--   REVOKE ALL ON TABLE <schema>.<table> FROM xyn_metrics;   -- and the heartbeat table, if granted
--   REVOKE ALL ON SCHEMA <schema> FROM xyn_metrics;
--   REVOKE ALL ON DATABASE <db> FROM xyn_metrics;
--   DROP ROLE xyn_metrics;
