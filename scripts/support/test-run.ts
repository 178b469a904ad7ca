/**
 * What marks a process as started by one test run: XYN_TEST_RUN=<id> in its
 * environment, inherited by everything the run spawns (PostgreSQL, the
 * Pushgateway, Prometheus, serverless offline and its workers, the bridge),
 * whatever process group it put itself in. scripts/test/main.ts ends every such
 * process when the run is over, passing, failing or interrupted.
 */

import { readdirSync, readFileSync } from 'node:fs';

export const RUN_VARIABLE = 'XYN_TEST_RUN';

/**
 * The variables a child spawned with a hand-built environment must keep to
 * stay owned by the run (its marker, and its temporary directory).
 */
export function runEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of [RUN_VARIABLE, 'TMPDIR']) if (env[name]) out[name] = env[name]!;
  return out;
}

/** pids of live processes whose environment carries XYN_TEST_RUN=<id> (Linux /proc; as root, any user's). */
export function processesOfRun(id: string, except: number[] = [process.pid]): number[] {
  const needle = `${RUN_VARIABLE}=${id}`;
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (except.includes(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(needle)) pids.push(pid);
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

/**
 * End every process of run `id`: SIGTERM, then SIGKILL what is still there
 * after `graceMs`. Returns the pids it found.
 */
export async function sweepRun(id: string, graceMs = 3_000): Promise<number[]> {
  const found = processesOfRun(id);
  for (const pid of found) signal(pid, 'SIGTERM');
  const until = Date.now() + graceMs;
  let left = processesOfRun(id);
  while (left.length > 0 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 100));
    left = processesOfRun(id);
  }
  for (const pid of left) signal(pid, 'SIGKILL');
  return found;
}
