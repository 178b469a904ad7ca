/**
 * An AWS emulator for the deploy test: moto's server (test/support/moto-server.py)
 * on a free loopback port, with the environment that points the AWS SDK v3 of
 * the framework at it (AWS_ENDPOINT_URL, dummy credentials, no shared config),
 * and boto3 calls through test/support/aws-inspect.py.
 *
 * moto runs Lambda code only in Docker; without it an invoke is answered with
 * a handled function error ("error running docker: …"), so the test runs the
 * deployed zips itself. (moto's use_docker=false mode would answer invokes, but
 * from a Lambda backend of its own that does not hold what CloudFormation made.)
 */

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { freePort, listensOn, waitForHttp } from '../../scripts/support/net';
import { runEnv } from '../../scripts/support/test-run';
import { awsPython } from './cfn-lint';

const HERE = import.meta.dirname;
/** Credentials moto accepts; never a real account's. */
const DUMMY_CREDENTIALS = { AWS_ACCESS_KEY_ID: 'AKIDXYNMETRICSMOTO01', AWS_SECRET_ACCESS_KEY: 'xyn-metrics-moto-secret-access-key' };
/** moto's account. */
export const MOTO_ACCOUNT = '123456789012';

export interface Moto {
  url: string;
  /** The AWS part of an environment that reaches moto only: endpoint, dummy credentials, no profile or shared files. */
  awsEnv: Record<string, string>;
  /** One boto3 command of test/support/aws-inspect.py in `region`; its JSON answer. */
  inspect<T = any>(command: string, input: unknown, region: string): T;
  output(): string;
  stop(): Promise<void>;
}

export async function startMoto(python = awsPython()): Promise<Moto> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(python, [path.join(HERE, 'moto-server.py'), String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...runEnv(), PYTHONUNBUFFERED: '1' },
  });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  try {
    await waitForHttp(`${url}/moto-api/`, 60_000);
    // Not another process that took the port between freePort() and moto's bind.
    if (listensOn(child.pid!, port) === false) throw new Error(`port ${port} is not moto's`);
  } catch (error) {
    await stop();
    throw new Error(`moto_server did not start: ${(error as Error).message}\n${output.slice(-2000)}`);
  }
  const awsEnv = {
    ...DUMMY_CREDENTIALS,
    AWS_ENDPOINT_URL: url,
    // Nothing of this machine's own AWS setup may take part.
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  };
  return {
    url,
    awsEnv,
    inspect(command, input, region) {
      const run = spawnSync(python, [path.join(HERE, 'aws-inspect.py'), command, region], {
        input: JSON.stringify(input),
        encoding: 'utf8',
        timeout: 120_000,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...awsEnv },
      });
      if (run.status !== 0) throw new Error(`aws-inspect.py ${command} failed (exit ${run.status ?? run.signal}): ${(run.stderr || run.stdout).slice(-3000)}`);
      return JSON.parse(run.stdout);
    },
    output: () => output,
    stop,
  };
}
