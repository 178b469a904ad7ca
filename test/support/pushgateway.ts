/**
 * A real Prometheus Pushgateway per test file, on a free loopback port.
 * A missing binary fails the suite: CI installs Debian's prometheus-pushgateway.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { freePort, listensOn, waitForHttp } from '../../scripts/support/net';

const CANDIDATES = [process.env.PUSHGATEWAY_BIN, '/usr/bin/prometheus-pushgateway', '/usr/local/bin/pushgateway'];

export function pushgatewayBinary(): string {
  const found = CANDIDATES.find((p): p is string => !!p && existsSync(p));
  if (!found) {
    throw new Error('integration tests need a Pushgateway binary: apt-get install prometheus-pushgateway (or set PUSHGATEWAY_BIN)');
  }
  return found;
}

export interface TestPushgateway {
  url: string;
  port: number;
  /** The raw exposition text the gateway serves to Prometheus. */
  scrape(): Promise<string>;
  /** Value of a sample line (name with labels, as in the exposition), within job's group. */
  stop(): Promise<void>;
  process: ChildProcess;
}

export async function startPushgateway(extraArgs: string[] = []): Promise<TestPushgateway> {
  // A free port can be taken between picking and binding it; try a few.
  let last: unknown;
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      return await startPushgatewayOnce(extraArgs);
    } catch (error) {
      last = error;
    }
  }
  throw last;
}

async function startPushgatewayOnce(extraArgs: string[]): Promise<TestPushgateway> {
  const port = await freePort();
  // --persistence.file= keeps it in memory: Debian's default file is shared by every gateway on the machine.
  const persistence = extraArgs.some((a) => a.startsWith('--persistence.file')) ? [] : ['--persistence.file='];
  const child = spawn(pushgatewayBinary(), [...persistence, `--web.listen-address=127.0.0.1:${port}`, ...extraArgs], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    const exited = new Promise<never>((_, reject) =>
      child.once('exit', (code) => reject(new Error(`exited with ${code}`))),
    );
    exited.catch(() => {});
    await Promise.race([waitForHttp(`${url}/-/ready`, 10_000), exited]);
    // Another process may have taken the port between freePort() and the bind: only our child holding the socket proves it is ours.
    if (!listensOn(child.pid!, port)) throw new Error(`port ${port} is held by another process`);
    const existing = await (await fetch(`${url}/api/v1/metrics`)).json() as { data?: unknown[] };
    if ((existing.data ?? []).length > 0) throw new Error(`the gateway on port ${port} is not a fresh one`);
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`Pushgateway did not start: ${(error as Error).message}\n${stderr.slice(-2000)}`);
  }
  return {
    url,
    port,
    process: child,
    async scrape() {
      const response = await fetch(`${url}/metrics`);
      return response.text();
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** Samples of `name` in the exposition text whose labels include `labels`. */
export function samples(exposition: string, name: string, labels: Record<string, string> = {}): number[] {
  const out: number[] = [];
  for (const line of exposition.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries(
      [...(match[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) out.push(Number(match[4]));
  }
  return out;
}

/** The single value of `name{labels}`; throws if absent or ambiguous. */
export function sample(exposition: string, name: string, labels: Record<string, string> = {}): number {
  const values = samples(exposition, name, labels);
  if (values.length !== 1) throw new Error(`expected one ${name}${JSON.stringify(labels)}, found ${values.length}`);
  return values[0]!;
}
