/**
 * What the test run needs from the machine, found (or, as root with apt,
 * installed), and the PostgreSQL servers it talks to: the primary one
 * (TEST_DATABASE_URL's server, or a throw-away one started here) and one
 * throw-away server per major of the version matrix (postgres-matrix.ts).
 * Used by scripts/test/main.ts (npm test) and by test/global-setup.ts (a bare
 * `npx vitest run`).
 */

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { AWS_TOOLS_PYTHON_VARIABLE, findAwsPython, installAwsTools, installCommand } from './aws-tools';
import { displayDir, matrixBinDir, matrixBinVariable, matrixEnabled, matrixMajors, matrixUrlVariable, MATRIX_SWITCH } from './postgres-matrix';
import { postgresBinDir, startPostgresServer, type PostgresServer } from './postgres-server';

export interface Tool {
  what: string;
  /** Environment variable that overrides where it is. */
  variable?: string;
  /** The executable names looked for on PATH and in the usual places. */
  names: string[];
  /** The Debian package that ships it. */
  aptPackage: string;
}

export const TOOLS: Tool[] = [
  { what: 'Pushgateway', variable: 'PUSHGATEWAY_BIN', names: ['prometheus-pushgateway', 'pushgateway'], aptPackage: 'prometheus-pushgateway' },
  { what: 'Prometheus', variable: 'PROMETHEUS_BIN', names: ['prometheus'], aptPackage: 'prometheus' },
  { what: 'promtool', variable: 'PROMTOOL_BIN', names: ['promtool'], aptPackage: 'prometheus' },
  // Checks the Alertmanager example of docs/metrics.md (test/integration/alertmanager.test.ts).
  { what: 'amtool', names: ['amtool'], aptPackage: 'prometheus-alertmanager' },
  { what: 'psql', names: ['psql'], aptPackage: 'postgresql-client' },
  { what: 'openssl', names: ['openssl'], aptPackage: 'openssl' },
  // In transaction pooling mode in front of the test server (test/support/pgbouncer.ts).
  { what: 'PgBouncer', variable: 'PGBOUNCER_BIN', names: ['pgbouncer'], aptPackage: 'pgbouncer' },
  // To build AWS's Lambda runtime client once per machine (scripts/lambda-ric.sh), for the packaged zip's test.
  { what: 'cmake', names: ['cmake'], aptPackage: 'cmake' },
  { what: 'make', names: ['make'], aptPackage: 'make' },
  { what: 'g++', names: ['g++'], aptPackage: 'g++' },
  { what: 'autoconf', names: ['autoconf'], aptPackage: 'autoconf' },
  { what: 'automake', names: ['automake'], aptPackage: 'automake' },
  { what: 'libtool', names: ['libtoolize'], aptPackage: 'libtool' },
  // For the deploy tests' AWS tools (moto, boto3, cfn-lint: scripts/support/aws-tools.ts).
  { what: 'python3', names: ['python3'], aptPackage: 'python3' },
];

/** The services the summary line names; the rest are tools. */
const SERVICES = ['Pushgateway', 'Prometheus', 'promtool', 'PgBouncer'];

export function findTool(tool: Tool, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const override = tool.variable ? env[tool.variable] : undefined;
  // Debian puts pgbouncer in /usr/sbin, which a non-root PATH may lack.
  const dirs = [...(env.PATH ?? '').split(path.delimiter).filter(Boolean), '/usr/bin', '/usr/local/bin', '/usr/sbin', '/usr/local/sbin'];
  const candidates = [override, ...tool.names.flatMap((name) => dirs.map((dir) => path.join(dir, name)))];
  return candidates.find((candidate): candidate is string => !!candidate && existsSync(candidate));
}

/** Debian packages for what is missing (PostgreSQL's server only when the run must start one). */
export function missingPackages(needServer: boolean, env: NodeJS.ProcessEnv = process.env): string[] {
  const packages = TOOLS.filter((tool) => !findTool(tool, env)).map((tool) => tool.aptPackage);
  if (needServer && !postgresBinDir(env)) packages.push('postgresql');
  return [...new Set(packages)];
}

/** Install `packages` with apt when we are root and apt is here; false when we may not. */
export function aptInstall(packages: string[]): boolean {
  if (packages.length === 0) return true;
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) return false;
  process.stdout.write(`installing ${packages.join(' ')} with apt-get…\n`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', '--no-install-recommends', ...packages]]) {
    const result = spawnSync('apt-get', args, { env, stdio: ['ignore', 'ignore', 'inherit'] });
    if (result.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed (exit ${result.status})`);
  }
  return true;
}

export interface Services {
  databaseUrl: string;
  /** What the test processes need to reach every server: TEST_DATABASE_URL, and per matrix major its URL and binaries. */
  env: Record<string, string>;
  /** A Python with moto, boto3 and cfn-lint, for the deploy tests (AWS_TOOLS_PYTHON in their environment). */
  awsPython: string;
  /** One line: what the run uses (no password). */
  summary: string;
  /** Stops what was started here (the throw-away servers); no-op otherwise. */
  stop(): Promise<void>;
}

const hidePassword = (url: string) => url.replace(/:[^:@/]*@/, ':***@');

async function serverVersion(url: string, what = 'TEST_DATABASE_URL'): Promise<string> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version.split(' ')[0]!;
  } catch (error) {
    throw new Error(`${what} ${hidePassword(url)} does not answer: ${(error as Error).message}`);
  } finally {
    await client.end().catch(() => {});
  }
}

export interface MatrixServer {
  major: number;
  version: string;
  bin: string;
  server: PostgresServer;
  /** TEST_POSTGRES_<major> and TEST_POSTGRES_<major>_BIN. */
  env: Record<string, string>;
}

/** A throw-away server of `major` (the version matrix), checked to be that major. */
export async function startMatrixServer(major: number, env: NodeJS.ProcessEnv = process.env): Promise<MatrixServer> {
  const bin = matrixBinDir(major, env);
  const server = await startPostgresServer({ bin });
  try {
    const version = await serverVersion(server.url, `PostgreSQL ${major} (${bin})`);
    if (Number(version.split('.')[0]) !== major) throw new Error(`${bin} is PostgreSQL ${version}, not ${major}`);
    return { major, version, bin, server, env: { [matrixUrlVariable(major)]: server.url, [matrixBinVariable(major)]: bin } };
  } catch (error) {
    await server.stop();
    throw error;
  }
}

/** "version matrix: PostgreSQL 13.23 on 127.0.0.1:41234 (node_modules/postgresql-13/native/bin), …" */
export function matrixSummary(servers: MatrixServer[], env: NodeJS.ProcessEnv = process.env): string {
  if (!matrixEnabled(env)) return `version matrix off (${MATRIX_SWITCH}=off)`;
  if (servers.length === 0) return 'no version matrix (package.json names no optional postgresql-<major>)';
  const each = servers.map((s) => `PostgreSQL ${s.version} on 127.0.0.1:${s.server.port} (${displayDir(s.bin)})`);
  return `version matrix: ${each.join(', ')}, started for this run and removed at the end`;
}

/**
 * moto, boto3 and cfn-lint: in python3 already, or installed with pip into a
 * virtual environment of their own (with Debian's python3-venv first, as root
 * with apt); else one error with the command to run.
 */
export function provideAwsPython(env: NodeJS.ProcessEnv = process.env): string {
  const found = findAwsPython(env);
  if (found) return found;
  let result = installAwsTools(env);
  if ('problem' in result && result.needsVenvPackage && aptInstall(['python3-venv'])) result = installAwsTools(env);
  if ('python' in result) return result.python;
  throw new Error(
    `the deploy tests need moto, boto3 and cfn-lint for Python 3 and could not install them (${result.problem}); run: ${result.needsVenvPackage ? 'apt-get install -y python3-venv && ' : ''}${installCommand(env)}`,
  );
}

/**
 * Everything the suite needs, or one error naming exactly what to install.
 * Starts a throw-away PostgreSQL unless TEST_DATABASE_URL names a server, and
 * with `matrix` one per major of the version matrix (all at once).
 */
export async function provideServices(env: NodeJS.ProcessEnv = process.env, { matrix = true }: { matrix?: boolean } = {}): Promise<Services> {
  const existing = env.TEST_DATABASE_URL?.trim();
  let missing = missingPackages(!existing, env);
  if (missing.length > 0 && aptInstall(missing)) missing = missingPackages(!existing, env);
  if (missing.length > 0) {
    const hint = missing.includes('postgresql') ? ' (for PostgreSQL, TEST_DATABASE_URL=<an existing server> or PG_BIN=<dir with initdb> also do)' : '';
    throw new Error(`the tests need what is missing here: apt-get install -y ${missing.join(' ')}${hint}`);
  }
  const awsPython = provideAwsPython(env);
  // The test workers inherit it and look no further (scripts/support/aws-tools.ts).
  process.env[AWS_TOOLS_PYTHON_VARIABLE] = awsPython;
  const tools = [
    ...TOOLS.filter((tool) => SERVICES.includes(tool.what)).map((tool) => `${tool.what} ${findTool(tool, env)}`),
    `moto, boto3, cfn-lint in ${awsPython}`,
  ].join(', ');
  // Every binary directory is checked before any server starts: a missing major fails at once.
  const majors = matrix && matrixEnabled(env) ? matrixMajors() : [];
  for (const major of majors) matrixBinDir(major, env);

  const primary = existing
    ? serverVersion(existing).then((version) => ({ url: existing, version, server: undefined as PostgresServer | undefined }))
    : startPostgresServer().then(async (server) => {
        try {
          return { url: server.url, version: await serverVersion(server.url), server: server as PostgresServer | undefined };
        } catch (error) {
          await server.stop();
          throw error;
        }
      });
  // All at once; when one fails, the others are stopped once they are up.
  const [main, ...others] = await Promise.allSettled([primary, ...majors.map((major) => startMatrixServer(major, env))]);
  const up = [main, ...others].flatMap((r) => (r.status === 'fulfilled' && r.value.server ? [r.value.server] : []));
  const stop = async () => {
    await Promise.all(up.map((server) => server.stop().catch(() => {})));
  };
  const failed = [main, ...others].find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed || main.status !== 'fulfilled') {
    await stop();
    throw failed?.reason ?? new Error('PostgreSQL did not start');
  }
  const matrixServers = others.map((r) => (r as PromiseFulfilledResult<MatrixServer>).value);
  const { url, version, server } = main.value;
  const where = server
    ? `PostgreSQL ${version} started for this run on 127.0.0.1:${server.port} (${postgresBinDir(env)}, removed at the end)`
    : `PostgreSQL ${version} at ${hidePassword(url)} (TEST_DATABASE_URL)`;
  return {
    databaseUrl: url,
    awsPython,
    env: Object.assign({ TEST_DATABASE_URL: url }, ...matrixServers.map((s) => s.env)) as Record<string, string>,
    summary: [where, ...(matrix ? [matrixSummary(matrixServers, env)] : []), tools].join('; '),
    stop,
  };
}
