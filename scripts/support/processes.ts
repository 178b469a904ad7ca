/** Child processes the launchers start: stopped with the signal each program takes, then killed if it lingers. */

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
