/**
 * What the test run needs from the machine, found (or, as root with apt,
 * installed), and the PostgreSQL it talks to: TEST_DATABASE_URL's server, or
 * a throw-away one started here. Used by scripts/test/main.ts (npm test) and by
 * test/global-setup.ts (a bare `npx vitest run`).
 */

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { AWS_TOOLS_PYTHON_VARIABLE, findAwsPython, installAwsTools, installCommand } from './aws-tools';
import { postgresBinDir, startPostgresServer } from './postgres-server';

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
  { what: 'psql', names: ['psql'], aptPackage: 'postgresql-client' },
  { what: 'openssl', names: ['openssl'], aptPackage: 'openssl' },
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
const SERVICES = ['Pushgateway', 'Prometheus', 'promtool'];

export function findTool(tool: Tool, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const override = tool.variable ? env[tool.variable] : undefined;
  const dirs = [...(env.PATH ?? '').split(path.delimiter).filter(Boolean), '/usr/bin', '/usr/local/bin'];
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
  /** A Python with moto, boto3 and cfn-lint, for the deploy tests (AWS_TOOLS_PYTHON in their environment). */
  awsPython: string;
  /** One line: what the run uses (no password). */
  summary: string;
  /** Stops what was started here (the throw-away PostgreSQL); no-op otherwise. */
  stop(): Promise<void>;
}

const hidePassword = (url: string) => url.replace(/:[^:@/]*@/, ':***@');

async function serverVersion(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version.split(' ')[0]!;
  } catch (error) {
    throw new Error(`TEST_DATABASE_URL ${hidePassword(url)} does not answer: ${(error as Error).message}`);
  } finally {
    await client.end().catch(() => {});
  }
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
 * Starts a throw-away PostgreSQL unless TEST_DATABASE_URL names a server.
 */
export async function provideServices(env: NodeJS.ProcessEnv = process.env): Promise<Services> {
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
  if (existing) {
    const version = await serverVersion(existing);
    return {
      databaseUrl: existing,
      awsPython,
      summary: `PostgreSQL ${version} at ${hidePassword(existing)} (TEST_DATABASE_URL), ${tools}`,
      stop: async () => {},
    };
  }
  const server = await startPostgresServer();
  const version = await serverVersion(server.url);
  return {
    databaseUrl: server.url,
    awsPython,
    summary: `PostgreSQL ${version} started for this run on 127.0.0.1:${server.port} (${postgresBinDir(env)}, removed at the end), ${tools}`,
    stop: () => server.stop(),
  };
}
