/**
 * The AWS tools the deploy tests run, all Python: moto's server (an AWS
 * emulator the real `serverless deploy` talks to), boto3 (to read back what the
 * deploy made) and AWS's cfn-lint (to lint every packaged template). Found in
 * the system python3 (a Debian machine may have them already), or in a virtual
 * environment of their own under the cache, which is made with pip when
 * neither has them. Used by scripts/support/services.ts (npm test's setup) and
 * by the deploy tests themselves.
 */

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';

/** The versions the deploy tests were written against: moto's CloudFormation support and cfn-lint's rules change between releases. */
export const AWS_TOOL_PACKAGES = ['moto[server]==5.2.1', 'cfn-lint==1.51.0', 'boto3'];
/** moto's server needs flask and flask_cors, its [server] extra. */
const IMPORT_CHECK = 'import moto, moto.server, boto3, cfnlint, flask, flask_cors';

/** Overrides where the tools are: a Python that imports them all. */
export const AWS_TOOLS_PYTHON_VARIABLE = 'AWS_TOOLS_PYTHON';

/** The virtual environment made for them when no Python here has them. */
export function awsToolsVenv(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.XDG_CACHE_HOME || path.join(homedir(), '.cache'), 'xyn-metrics', 'aws-tools');
}

function hasTools(python: string): boolean {
  const run = spawnSync(python, ['-c', IMPORT_CHECK], { encoding: 'utf8', timeout: 60_000 });
  return run.status === 0;
}

/** A Python that imports moto, boto3 and cfn-lint: AWS_TOOLS_PYTHON, python3, or the cache's virtual environment. */
export function findAwsPython(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const venvPython = path.join(awsToolsVenv(env), 'bin', 'python');
  const candidates = [env[AWS_TOOLS_PYTHON_VARIABLE], 'python3', existsSync(venvPython) ? venvPython : undefined];
  return candidates.find((python): python is string => !!python && hasTools(python));
}

/** The one command that makes the tools' virtual environment, for a message. */
export function installCommand(env: NodeJS.ProcessEnv = process.env): string {
  const venv = awsToolsVenv(env);
  return `python3 -m venv ${venv} && ${venv}/bin/pip install ${AWS_TOOL_PACKAGES.map((p) => `'${p}'`).join(' ')}`;
}

export type InstallResult = { python: string } | { problem: string; needsVenvPackage: boolean };

/** Make the virtual environment and install the tools into it with pip (a minute or so, once per machine). */
export function installAwsTools(env: NodeJS.ProcessEnv = process.env): InstallResult {
  const venv = awsToolsVenv(env);
  const python = path.join(venv, 'bin', 'python');
  process.stdout.write(`installing ${AWS_TOOL_PACKAGES.join(', ')} into ${venv} with pip…\n`);
  const made = spawnSync('python3', ['-m', 'venv', venv], { encoding: 'utf8', timeout: 120_000 });
  if (made.status !== 0) {
    // Debian's python3 has no venv module (ensurepip) without its python3-venv package.
    const output = `${made.stdout ?? ''}${made.stderr ?? ''}${made.error?.message ?? ''}`;
    return { problem: `python3 -m venv failed: ${output.trim().slice(-500)}`, needsVenvPackage: /ensurepip|python3-venv|No module named venv/i.test(output) };
  }
  const pip = spawnSync(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', ...AWS_TOOL_PACKAGES], { encoding: 'utf8', timeout: 900_000 });
  if (pip.status !== 0 || !hasTools(python)) {
    // pip's last line says why (e.g. "No matching distribution found for …" when PyPI cannot be reached).
    const last = `${pip.stdout ?? ''}${pip.stderr ?? ''}${pip.error?.message ?? ''}`.trim().split('\n').pop() ?? '';
    return { problem: `pip install failed: ${last.slice(0, 300)}`, needsVenvPackage: false };
  }
  return { python };
}
