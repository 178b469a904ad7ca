/**
 * `npm start`: the collector running locally the way it runs on AWS, under
 * `serverless offline` with the real schedule event of serverless.yml, on
 * nothing but what `npm ci` installed:
 *
 *   embedded PGlite demo database (+ simulated worker)
 *     <- WebSocket bridge (the Neon driver speaks WebSocket)
 *   or DATABASE_URL, reached as deployed: Neon's WebSocket, else TCP + TLS (sslmode)
 *     <- serverless offline: collect on its schedule, plus a tick now
 *     -> local Pushgateway when installed  <- or PUSHGATEWAY_URL, else a dry run
 *
 * It prints one line per tick (read from the handler's JSON log line), how
 * to invoke the function on demand and how to scrape GET /metrics (with a
 * throw-away METRICS_BEARER_TOKEN generated when none is set). Ctrl-C (or SIGTERM) stops everything it
 * started and exits 0. Environment (all optional): DATABASE_URL, RUNS_TABLE,
 * PUSHGATEWAY_URL, PUSH_DRY_RUN, METRICS_BEARER_TOKEN, OFFLINE_LAMBDA_PORT, OFFLINE_HTTP_PORT,
 * DEV_TICK_SECONDS (extra ticks every N seconds), VERBOSE=1 (serverless's own output).
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startBridge, type Bridge } from '../bridge/bridge';
import { displayUrl } from '../../lib/config/urls';
import { freePort, portIsFree } from '../support/net';
import { findPushgateway, startPushgateway, type Pushgateway } from '../support/pushgateway';
import { startDemoDatabase, type DemoDatabase } from './demo-db';
import { startDemoWorker, type DemoWorker } from './demo-worker';
import { DevError, devOptions, type DevOptions } from './options';
import { clock, formatRecord, parseHandlerRecord } from './tick-line';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SERVERLESS = join(ROOT, 'node_modules', '.bin', 'serverless');
const LOOPBACK = '127.0.0.1';
const REGION = 'eu-west-1';
/** serverless offline with esbuild takes a while on a small machine; past this it is stuck. */
const OFFLINE_START_TIMEOUT_MS = 180_000;
const STOP_GRACE_MS = 5_000;

// ---------------------------------------------------------------- ports and processes

/** The user's port if free (else a clear error naming the variable), or a free one. */
async function choosePort(port: number | undefined, variable: string): Promise<number> {
  if (port === undefined) return freePort();
  if (!(await portIsFree(port))) {
    throw new DevError(
      `port ${port} (${variable}) is already in use on ${LOOPBACK}: stop what holds it, choose another (${variable}=${port + 100} npm start), or unset ${variable} to pick a free one`,
    );
  }
  return port;
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone
  }
}

// ---------------------------------------------------------------- invoking

function lambdaInvokeUrl(lambdaPort: number, functionName: string): string {
  return `http://${LOOPBACK}:${lambdaPort}/2015-03-31/functions/${functionName}/invocations`;
}

function scheduledEventBody(functionName: string): string {
  return JSON.stringify({
    version: '0',
    id: randomUUID(),
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    account: '000000000000',
    time: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    region: REGION,
    resources: [`arn:aws:events:${REGION}:000000000000:rule/${functionName}`],
    detail: {},
  });
}

/**
 * POST without keep-alive (agent: false): an idle kept-alive socket would make
 * serverless offline wait out its shutdown timeout when Ctrl-C comes.
 */
function post(url: string, body: string, signal: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      { method: 'POST', agent: false, signal, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

/**
 * The curl for GET /metrics. A generated (throw-away, this session only) token
 * is shown as is so the line can be pasted; the user's own is never printed.
 */
function scrapeCommand(httpPort: number, generatedToken: string | undefined): string {
  const url = `http://${LOOPBACK}:${httpPort}/metrics`;
  return generatedToken
    ? `curl -H 'Authorization: Bearer ${generatedToken}' ${url}   (a throw-away METRICS_BEARER_TOKEN for this session)`
    : `curl -H "Authorization: Bearer $METRICS_BEARER_TOKEN" ${url}   (your METRICS_BEARER_TOKEN)`;
}

// ---------------------------------------------------------------- the stack

interface Stack {
  demo?: DemoDatabase;
  worker?: DemoWorker;
  bridge?: Bridge;
  gateway?: Pushgateway;
  offline?: ChildProcess;
  workFolder?: string;
  timers: NodeJS.Timeout[];
  invocations: Set<AbortController>;
  /** Set once stopping began: start() starts nothing more. */
  stopped: boolean;
}

function say(line = ''): void {
  process.stdout.write(`${line}\n`);
}

async function stopStack(stack: Stack, hurry: boolean): Promise<void> {
  stack.stopped = true;
  for (const timer of stack.timers.splice(0)) clearInterval(timer);
  for (const invocation of stack.invocations) invocation.abort();

  const offline = stack.offline;
  if (offline?.pid !== undefined) {
    // serverless offline runs in its own process group (with esbuild's service
    // and the handler's workers): stop the group, then make sure nothing stayed.
    if (!exited(offline)) {
      killGroup(offline.pid, hurry ? 'SIGKILL' : 'SIGINT');
      if (!(await waitForExit(offline, hurry ? 1_000 : STOP_GRACE_MS))) killGroup(offline.pid, 'SIGKILL');
      await waitForExit(offline, 2_000);
    }
    killGroup(offline.pid, 'SIGKILL');
  }
  const gateway = stack.gateway?.process;
  if (gateway && !exited(gateway)) {
    gateway.kill(hurry ? 'SIGKILL' : 'SIGTERM');
    if (!(await waitForExit(gateway, 3_000))) gateway.kill('SIGKILL');
  }
  await stack.worker?.stop().catch(() => {});
  await stack.bridge?.close().catch(() => {});
  await stack.demo?.close().catch(() => {});
  if (stack.workFolder) rmSync(join(ROOT, stack.workFolder), { recursive: true, force: true });
}

/** Lines of a child's stdout and stderr, one callback each. */
function eachLine(child: ChildProcess, onLine: (line: string) => void): void {
  for (const stream of [child.stdout, child.stderr]) {
    if (stream) readline.createInterface({ input: stream, crlfDelay: Infinity }).on('line', onLine);
  }
}

interface OfflineStart {
  lambdaPort: number;
  functionName: string;
  cron: string | undefined;
}

async function main(): Promise<number> {
  const options = devOptions(process.env);
  const stack: Stack = { timers: [], invocations: new Set(), stopped: false };
  let stopping: Promise<number> | undefined;
  let signals = 0;

  const stop = (code: number, hurry = false): Promise<number> => {
    stopping ??= stopStack(stack, hurry).then(() => code);
    return stopping;
  };
  const finished = new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      signals += 1;
      if (signals === 1) say(`\n${signal}: stopping serverless offline, the Pushgateway, the bridge and the database…`);
      // A second Ctrl-C does not wait for anyone.
      if (signals > 1) void stopStack(stack, true);
      void stop(0, signals > 1).then(resolve);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.on('SIGHUP', onSignal);
    stackFailed = (code) => void stop(code).then(resolve);
  });
  // Last resort if this process dies some other way: no child outlives it.
  process.on('exit', () => {
    killGroup(stack.offline?.pid, 'SIGKILL');
    stack.gateway?.process.kill('SIGKILL');
  });

  try {
    await start(options, stack);
  } catch (error) {
    if (signals > 0) return finished;
    say(`xyn-metrics dev: ${error instanceof DevError ? error.message : (error as Error).message}`);
    return stop(1);
  }
  return finished;
}

/** Set by main: the stack failed after start (serverless offline died). */
let stackFailed: (code: number) => void = () => {};

async function start(options: DevOptions, stack: Stack): Promise<void> {
  const lambdaPort = await choosePort(options.lambdaPort, 'OFFLINE_LAMBDA_PORT');
  const httpPort = options.httpPort ?? (await freePort());

  // ---- database: the user's, or the embedded demo (started while offline boots)
  let databaseUrl: string;
  let databaseLabel: string;
  let demoReady: Promise<void> = Promise.resolve();
  let relayTo: string | undefined;
  if (options.databaseUrl) {
    try {
      new URL(options.databaseUrl);
    } catch {
      throw new DevError('DATABASE_URL is not a valid URL (expected postgresql://user:password@host:5432/db)');
    }
    databaseUrl = options.databaseUrl;
    databaseLabel = `${displayUrl(databaseUrl)} (DATABASE_URL)`;
    // No bridge: the handler reaches it as deployed (Neon's WebSocket, or TCP with TLS as sslmode says).
  } else {
    const port = await freePort();
    databaseUrl = `postgresql://postgres@${LOOPBACK}:${port}/postgres`;
    databaseLabel = `embedded PGlite demo, ${databaseUrl} (a simulated worker keeps it moving)`;
    relayTo = `${LOOPBACK}:${port}`;
    demoReady = startDemoDatabase({ port }).then(async (demo) => {
      stack.demo = demo;
      if (stack.stopped) return demo.close(); // Ctrl-C came while it started
      stack.worker = startDemoWorker(demo.pg, { onError: (error) => say(`demo worker: ${(error as Error).message}`) });
    });
  }
  demoReady.catch(() => {});
  // The schedule runs from offline's start, which may come before the embedded database is up.
  let databaseReady = false;
  void demoReady.then(() => (databaseReady = true), () => {});
  if (relayTo) stack.bridge = await startBridge({ allow: [relayTo] });
  const wsProxy = options.wsProxy ?? stack.bridge?.proxy ?? '';

  // ---- where the ticks push
  let pushgatewayUrl = options.pushgatewayUrl;
  let pushLabel: string;
  let curl: string | undefined;
  let dryRun = options.dryRun;
  if (pushgatewayUrl) {
    pushLabel = `${displayUrl(pushgatewayUrl)} (PUSHGATEWAY_URL)`;
    curl = `curl -s ${displayUrl(pushgatewayUrl)}/metrics | grep ^xyn_`;
  } else if (!dryRun) {
    const binary = findPushgateway();
    if (binary) {
      try {
        // In memory, never Debian's shared --persistence.file (scripts/support/pushgateway.ts).
        stack.gateway = await startPushgateway({ binary });
        pushgatewayUrl = stack.gateway.url;
        pushLabel = `${pushgatewayUrl} (local Pushgateway, ${binary})`;
        curl = `curl -s ${pushgatewayUrl}/metrics | grep ^xyn_`;
      } catch (error) {
        say(`could not start a local Pushgateway: ${(error as Error).message}; dry run instead`);
        dryRun = true;
        pushLabel = '';
      }
    } else {
      dryRun = true;
      pushLabel = '';
    }
  } else {
    pushLabel = '';
  }
  if (dryRun) {
    pushLabel =
      'nowhere: dry run, each tick prints its exposition text. For a Pushgateway: apt-get install prometheus-pushgateway ' +
      '(or put a `pushgateway` binary on PATH, from prometheus.io/download), or set PUSHGATEWAY_URL';
  }

  // ---- GET /metrics answers 503 without a token: give this session one.
  const metricsToken = options.metricsToken ?? randomBytes(24).toString('hex');

  // ---- serverless offline
  // Not under .esbuild: `serverless package` deletes that whole folder when it is done.
  stack.workFolder = join('.tmp', `offline-${process.pid}`);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: databaseUrl,
    DATABASE_WS_PROXY: wsProxy,
    PUSHGATEWAY_URL: dryRun ? '' : pushgatewayUrl,
    PUSH_DRY_RUN: dryRun ? 'true' : '',
    // serverless.yml falls back to SSM only for unset variables; these are all set,
    // so no AWS account is ever asked. Placeholder credentials keep the SDK quiet.
    AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
    AWS_SECRET_ACCESS_KEY: 'placeholder-not-a-secret',
    AWS_SESSION_TOKEN: '',
    AWS_PROFILE: '',
    SLS_TELEMETRY_DISABLED: '1',
    SLS_NOTIFICATIONS_MODE: 'off',
    OFFLINE_LAMBDA_PORT: String(lambdaPort),
    OFFLINE_HTTP_PORT: String(httpPort),
    METRICS_BEARER_TOKEN: metricsToken,
    ESBUILD_WORK_FOLDER: stack.workFolder,
    // The demo's worker records start and finish times: its ticks show throughput and wait too.
    ...(options.databaseUrl ? {} : { RUNS_TABLE: 'runs', RUN_STARTED_COLUMN: 'started_at', RUN_FINISHED_COLUMN: 'finished_at' }),
  };
  if (stack.stopped) return;
  say(`xyn-metrics dev stack on Node ${process.version} (${process.execPath}): starting serverless offline (esbuild bundles the handler; this takes a few seconds)…`);
  const offline = spawn(SERVERLESS, ['offline'], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  stack.offline = offline;

  const recent: string[] = [];
  let started: OfflineStart | undefined;
  let functionName = 'xyn-metrics-dev-collect';
  let cron: string | undefined;
  let listeningPort: number | undefined;
  let readyResolve: (value: OfflineStart) => void = () => {};
  const ready = new Promise<OfflineStart>((resolve) => {
    readyResolve = resolve;
  });

  eachLine(offline, (line) => {
    const record = parseHandlerRecord(line);
    if (record) {
      if (!databaseReady && record.outcome !== 'ok' && record.outcome !== 'skipped_late') {
        say(`${clock()}  (a scheduled tick came while the embedded database was still starting; it pushed xyn_collector_up 0, the next tick replaces it)`);
        return;
      }
      say(formatRecord(record));
      if (record.exposition) say(record.exposition.replace(/^/gm, '    ').trimEnd());
      return;
    }
    recent.push(line);
    if (recent.length > 40) recent.shift();
    if (options.verbose) say(`  [offline] ${line}`);
    const name = /^\s*\*\s*collect:\s*(\S+)/.exec(line);
    if (name?.[1]) functionName = name[1];
    const listening = /Offline \[http for lambda\] listening on http:\/\/[^:]+:(\d+)/.exec(line);
    if (listening?.[1]) {
      listeningPort = Number(listening[1]);
      // The schedule is set up right after the Lambda endpoint; wait a little for its line.
      setTimeout(() => readyResolve({ lambdaPort: listeningPort ?? lambdaPort, functionName, cron }), 5_000);
    }
    const schedule = /Scheduling \[collect\] cron: (.*)$/.exec(line);
    if (schedule?.[1]) {
      cron = schedule[1].replace(/^\[|\]$/g, '');
      if (listeningPort !== undefined) readyResolve({ lambdaPort: listeningPort, functionName, cron });
    }
  });

  const died = new Promise<never>((_, reject) => {
    offline.once('error', (error) => reject(new DevError(`could not run ${SERVERLESS}: ${error.message} (did npm ci run?)`)));
    offline.once('exit', (code, signal) => {
      const tail = recent.slice(-15).join('\n');
      const inUse = /EADDRINUSE|address already in use/i.test(tail);
      const message = inUse
        ? `a port serverless offline needs is already in use (lambda ${lambdaPort}, http ${httpPort}); set OFFLINE_LAMBDA_PORT / OFFLINE_HTTP_PORT to free ports or unset them`
        : `serverless offline exited (${signal ?? `code ${code}`})${started ? '' : ' before it was ready'}; its last output:\n${tail}`;
      if (started && !stack.stopped) {
        say(`xyn-metrics dev: ${message}`);
        stackFailed(1);
      }
      reject(new DevError(message));
    });
  });
  died.catch(() => {});

  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new DevError(`serverless offline did not start within ${OFFLINE_START_TIMEOUT_MS / 1000} s; run with VERBOSE=1 to see its output`)),
      OFFLINE_START_TIMEOUT_MS,
    );
  });
  try {
    started = await Promise.race([ready, died, timeout]);
    await Promise.race([demoReady, died, timeout]);
  } finally {
    clearTimeout(timer);
  }
  if (stack.stopped) return;

  // ---- what the user sees, then the first tick
  const invokeUrl = lambdaInvokeUrl(started.lambdaPort, started.functionName);
  say();
  say(`  database   ${databaseLabel}`);
  if (stack.bridge) say(`  bridge     ws://${stack.bridge.proxy} (WebSocket -> TCP for the Neon driver, to ${relayTo} only)`);
  say(`  pushing to ${pushLabel}`);
  if (curl) say(`  metrics    ${curl}`);
  say(`  schedule   ${started.cron ? `${started.cron === 'disabled' ? 'disabled' : `cron [${started.cron}]`} (the schedule event of serverless.yml)` : 'the schedule event of serverless.yml'}, plus a tick now${options.tickEverySeconds > 0 ? ` and one every ${options.tickEverySeconds} s (DEV_TICK_SECONDS)` : ''}`);
  say(`  Lambda     ${invokeUrl}`);
  say(`  invoke     curl -s -X POST ${invokeUrl} -d '{}'`);
  // An empty payload is the event {}; fileb:// reads it the same in AWS CLI v1 and v2.
  say(
    `             aws lambda invoke --endpoint-url http://${LOOPBACK}:${started.lambdaPort} --no-sign-request --region ${REGION} --function-name ${started.functionName} --payload fileb:///dev/null /dev/stdout`,
  );
  say(`  scrape     ${scrapeCommand(httpPort, options.metricsToken === undefined ? metricsToken : undefined)}`);
  say('  Ctrl-C stops everything.');
  say();

  const invoke = async () => {
    const abort = new AbortController();
    stack.invocations.add(abort);
    try {
      const status = await post(invokeUrl, scheduledEventBody(started.functionName), abort.signal);
      if (status !== 200) say(`invocation answered HTTP ${status}`);
    } catch (error) {
      if (!abort.signal.aborted) say(`invocation failed: ${(error as Error).message}`);
    } finally {
      stack.invocations.delete(abort);
    }
  };
  await invoke();
  if (options.tickEverySeconds > 0) {
    let busy = false;
    stack.timers.push(
      setInterval(() => {
        if (busy) return;
        busy = true;
        void invoke().finally(() => {
          busy = false;
        });
      }, options.tickEverySeconds * 1_000),
    );
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`xyn-metrics dev: ${error instanceof DevError ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
