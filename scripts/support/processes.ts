/** Child processes the launchers start: watched until they serve, stopped with the signal each program takes, then killed if they linger. */

import type { ChildProcess } from 'node:child_process';

/** Send `signal`; SIGKILL after `graceMs` if the child has not exited by then. Resolves once it has. */
export function stopChild(child: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const force = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill(signal);
  });
}

/** The last `keep` characters of the child's stderr, and of any spawn error: what to quote when it does not come up. */
export function stderrTail(child: ChildProcess, keep: number): () => string {
  let tail = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    tail = (tail + chunk.toString()).slice(-keep);
  });
  child.on('error', (error) => {
    tail += error.message;
  });
  return () => tail;
}

/** Polls `ready` every `everyMs` until it holds (true), or the child exits or `timeoutMs` passes (false). */
export async function waitUntilReady(child: ChildProcess, ready: () => Promise<boolean>, timeoutMs: number, everyMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until && child.exitCode === null && child.signalCode === null) {
    if (await ready()) return true;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  return false;
}
