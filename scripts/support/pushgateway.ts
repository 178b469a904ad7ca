/**
 * A real Prometheus Pushgateway on a free loopback port, for npm start and the
 * tests alike. It keeps its groups in memory: Debian's build defaults
 * --persistence.file to one system file, which every gateway on the machine
 * would load at start and overwrite on exit (issue 25), so the flag is always
 * given, empty, unless the caller names a file of its own.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { freePort, listensOn, waitForHttp } from './net';

export interface Pushgateway {
  url: string;
  port: number;
  /** The raw exposition text the gateway serves to Prometheus. */
  scrape(): Promise<string>;
  stop(): Promise<void>;
  process: ChildProcess;
}

function executable(file: string | undefined): file is string {
  if (!file) return false;
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** PUSHGATEWAY_BIN, else prometheus-pushgateway or pushgateway on PATH or in the usual places. */
export function findPushgateway(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dirs = [...(env.PATH ?? '').split(path.delimiter).filter(Boolean), '/usr/bin', '/usr/local/bin'];
  const candidates = [env.PUSHGATEWAY_BIN, ...['prometheus-pushgateway', 'pushgateway'].flatMap((name) => dirs.map((dir) => path.join(dir, name)))];
  return candidates.find(executable);
}

export function pushgatewayBinary(env: NodeJS.ProcessEnv = process.env): string {
  const found = findPushgateway(env);
  if (!found) throw new Error('no Pushgateway binary: apt-get install prometheus-pushgateway (or set PUSHGATEWAY_BIN)');
  return found;
}

export interface PushgatewayOptions {
  binary?: string;
  /** More flags; a --persistence.file of the caller's replaces the empty one. */
  extraArgs?: string[];
}

const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null;

async function startOnce(binary: string, extraArgs: string[]): Promise<Pushgateway> {
  const port = await freePort();
  const persistence = extraArgs.some((a) => a.startsWith('--persistence.file')) ? [] : ['--persistence.file='];
  const child = spawn(binary, [...persistence, `--web.listen-address=127.0.0.1:${port}`, ...extraArgs], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-2_000);
  });
  child.on('error', (error) => {
    stderr += error.message;
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    const gone = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`exited with ${code}`))));
    gone.catch(() => {});
    await Promise.race([waitForHttp(`${url}/-/ready`, 15_000), gone]);
    // Another process may have taken the port between freePort() and the bind: only our child holding it proves it is ours.
    const ours = listensOn(child.pid!, port);
    if (ours === false) throw new Error(`port ${port} is held by another process`);
    if (ours === undefined) {
      // No /proc (macOS): a child that lost the race exits at once ("address already in use").
      await new Promise((resolve) => setTimeout(resolve, 500));
      if (exited(child)) throw new Error('exited');
    }
    const existing = (await (await fetch(`${url}/api/v1/metrics`)).json()) as { data?: unknown[] };
    if ((existing.data ?? []).length > 0) throw new Error(`the gateway on port ${port} is not a fresh one`);
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`Pushgateway ${binary} did not start: ${(error as Error).message}\n${stderr.slice(-2000)}`);
  }
  return {
    url,
    port,
    process: child,
    async scrape() {
      return (await fetch(`${url}/metrics`)).text();
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (exited(child)) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

export async function startPushgateway(options: PushgatewayOptions = {}): Promise<Pushgateway> {
  const binary = options.binary ?? pushgatewayBinary();
  // A free port can be taken between picking and binding it; try a few.
  let last: unknown;
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      return await startOnce(binary, options.extraArgs ?? []);
    } catch (error) {
      last = error;
    }
  }
  throw last;
}
