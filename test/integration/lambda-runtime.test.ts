/**
 * The packaged collect zip, run the way Lambda runs it: unzipped (no
 * node_modules, no sources), loaded by AWS's own runtime interface client
 * (aws-lambda-ric) on Node 24, the nodejs24.x runtime's major, against an
 * emulated Lambda Runtime API (test/support/lambda-runtime.ts), pushing to a
 * real Pushgateway from a real PostgreSQL. One container (one runtime client
 * process) serves every invocation here, as a warm Lambda does.
 *
 * The runtime client comes from scripts/lambda-ric.sh (built once per machine,
 * cached outside the clone); if it cannot be had, this file fails.
 */

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageFunction, unzipTo, type PackageResult } from '../../scripts/bench/cold';
import { baseEnv, expectKnownQueue, pushTime, seedKnownQueue, startStack, type Stack } from '../support/faults';
import { scheduledEvent } from '../support/lambda';
import { lambdaNodePath, RUNTIME_NODE, runtimeClient, startRuntimeApi, startRuntimeClient, type RuntimeApi, type RuntimeProcess } from '../support/lambda-runtime';
import { sample } from '../support/pushgateway';
import { awsEnv, startFakeSsm, TEST_SECRET_ACCESS_KEY, TEST_SESSION_TOKEN, type FakeSsm } from '../../scripts/support/ssm';
import { selfSignedCertificate, startTlsFront, type Certificate, type TlsFront } from '../support/tls';

const root = path.resolve(import.meta.dirname, '../..');
const job = 'xyn_ric';

let client: string;
let packaged: PackageResult;
let taskRoot: string;
let stack: Stack;
let api: RuntimeApi;
let container: RuntimeProcess;
/** What the container printed while serving healthy ticks only. */
let healthyOutput = '';

/** An EventBridge Scheduler event: only the input serverless.yml gives it (time, source, id). */
function schedulerEvent(time = new Date()) {
  return { time: time.toISOString().replace(/\.\d{3}Z$/, 'Z'), source: 'aws.scheduler', id: 'c0ffee00-0000-4000-8000-000000000001' };
}

/** The variables of `env` that are set (the runtime client's environment holds strings only). */
function definedEnv(env: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

/** Log lines the runtime client wrote at level ERROR (its format: time, request id, level, message). */
function errorLines(output: string): string[] {
  return output.split('\n').filter((line) => /\tERROR\t|^ERROR\b|"level":"ERROR"/.test(line));
}

beforeAll(async () => {
  client = runtimeClient();
  packaged = packageFunction(root, { AWS_REGION: 'eu-west-1' });
  taskRoot = unzipTo(packaged.zips.collect!);
  stack = await startStack('ric');
  await seedKnownQueue(stack.db);
  api = await startRuntimeApi();
  const env = Object.fromEntries(Object.entries(baseEnv(stack, job)).filter((e): e is [string, string] => e[1] !== undefined));
  container = startRuntimeClient(client, api, taskRoot, 'functions/collect.collect', env);
}, 900_000);

afterAll(async () => {
  await container?.stop();
  await api?.close();
  await stack?.close();
  if (taskRoot) rmSync(taskRoot, { recursive: true, force: true });
  if (packaged) rmSync(packaged.outDir, { recursive: true, force: true });
});

describe('the packaged zip under AWS\'s runtime interface client', () => {
  it('runs on the runtime\'s Node major', () => {
    const version = spawnSync(RUNTIME_NODE, ['--version'], { encoding: 'utf8' }).stdout.trim();
    expect(version).toMatch(/^v24\./);
  });

  it('a scheduled EventBridge event ticks and pushes', async () => {
    const outcome = await api.invoke(scheduledEvent());
    expect(outcome.kind, container.output()).toBe('response');
    expect(outcome.body).toMatchObject({ outcome: 'ok' });
    expectKnownQueue(await stack.gateway.scrape(), job);
  });

  it('an EventBridge Scheduler event ticks and pushes: a second invocation in the same container', async () => {
    const before = pushTime(await stack.gateway.scrape(), job);
    const outcome = await api.invoke(schedulerEvent());
    expect(outcome.kind, container.output()).toBe('response');
    expect(outcome.body).toMatchObject({ outcome: 'ok' });
    const text = await stack.gateway.scrape();
    expect(pushTime(text, job)).toBeGreaterThan(before);
    expectKnownQueue(text, job);
    expect(container.exited()).toBe(false);
    expect(api.initErrors).toEqual([]);
    healthyOutput = container.output();
  });

  it('a healthy tick writes no ERROR-level line', () => {
    // The ticks' own JSON lines are there (the handler did log), and none is at level ERROR.
    expect(healthyOutput).toContain('"outcome":"ok"');
    expect(errorLines(healthyOutput)).toEqual([]);
  });

  it('a failing tick is reported as a function error, and the container serves the next one', async () => {
    await stack.db.query(`ALTER TABLE ${stack.db.table} RENAME TO runs_away`);
    try {
      const outcome = await api.invoke(scheduledEvent());
      expect(outcome.kind, container.output()).toBe('error');
      expect(outcome.body.errorMessage).toMatch(/tick failed: database .*does not exist/);
      expect(sample(await stack.gateway.scrape(), 'xyn_collector_up', { job })).toBe(0);
    } finally {
      await stack.db.query(`ALTER TABLE ${stack.db.schema}.runs_away RENAME TO runs`);
    }
    const next = await api.invoke(scheduledEvent());
    expect(next.kind, container.output()).toBe('response');
    expectKnownQueue(await stack.gateway.scrape(), job);
  });
});

describe('a private CA bundle deployed in the package (PUSHGATEWAY_CA_FILE)', () => {
  const caDir = path.join('.tmp', `ric-ca-${randomBytes(4).toString('hex')}`);
  let certificate: Certificate;
  let withCa: PackageResult;
  let caRoot: string;
  let front: TlsFront;
  let caApi: RuntimeApi;
  let caContainer: RuntimeProcess;
  let deployedEnv: Record<string, string>;

  beforeAll(async () => {
    certificate = selfSignedCertificate('IP:127.0.0.1');
    mkdirSync(path.join(root, caDir), { recursive: true });
    writeFileSync(path.join(root, caDir, 'pushgateway-ca.pem'), certificate.cert);
    withCa = packageFunction(root, { AWS_REGION: 'eu-west-1', PUSHGATEWAY_CA_FILE: `${caDir}/pushgateway-ca.pem` });
    const template = JSON.parse(readFileSync(path.join(withCa.outDir, 'cloudformation-template-update-stack.json'), 'utf8'));
    deployedEnv = template.Resources.CollectLambdaFunction.Properties.Environment.Variables;
    caRoot = unzipTo(withCa.zips.collect!);
    front = await startTlsFront(certificate, stack.gateway.url, 'Bearer ric-ca-token');
    caApi = await startRuntimeApi();
    const env = Object.fromEntries(Object.entries(baseEnv(stack, `${job}_ca`)).filter((e): e is [string, string] => e[1] !== undefined));
    caContainer = startRuntimeClient(client, caApi, caRoot, 'functions/collect.collect', {
      ...env,
      PUSHGATEWAY_URL: front.url,
      PUSHGATEWAY_TOKEN: 'ric-ca-token',
      PUSHGATEWAY_CA_FILE: deployedEnv.PUSHGATEWAY_CA_FILE!,
    });
  }, 240_000);

  afterAll(async () => {
    await caContainer?.stop();
    await caApi?.close();
    await front?.close();
    certificate?.dispose();
    for (const dir of [caRoot, withCa?.outDir, path.join(root, caDir)]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the deployed function reads the bundle from its package and pushes over TLS to a gateway of that CA', async () => {
    expect(deployedEnv.PUSHGATEWAY_CA_FILE).toBe(`${caDir}/pushgateway-ca.pem`);
    // Seeded afresh: the known queue's shortest active lease (30 s) can run out while this describe packages its zip under load.
    await stack.db.query(`TRUNCATE ${stack.db.table}`);
    await seedKnownQueue(stack.db);
    const outcome = await caApi.invoke(scheduledEvent());
    expect(outcome.kind, caContainer.output()).toBe('response');
    expect(outcome.body).toMatchObject({ outcome: 'ok' });
    expect(front.authorizations).toContain('Bearer ric-ca-token');
    expectKnownQueue(await stack.gateway.scrape(), `${job}_ca`);
  });
});

describe('a secret read from SSM (DATABASE_URL_SSM_PARAMETER), as a deployed function reads it', () => {
  const parameter = `/xyn-metrics/ric-${randomBytes(4).toString('hex')}/database-url`;
  const ssmJob = `${job}_ssm`;
  let ssm: FakeSsm;
  let ssmApi: RuntimeApi;
  let ssmContainer: RuntimeProcess;

  beforeAll(async () => {
    ssm = await startFakeSsm();
    ssm.put(parameter, stack.reader.url);
    ssmApi = await startRuntimeApi();
    // The deployed environment: the parameter's name, never the value; Lambda's credentials and region.
    const { DATABASE_URL: _value, ...env } = definedEnv(baseEnv(stack, ssmJob));
    ssmContainer = startRuntimeClient(client, ssmApi, taskRoot, 'functions/collect.collect', {
      ...env,
      ...awsEnv(ssm.url),
      DATABASE_URL_SSM_PARAMETER: parameter,
    });
  }, 120_000);

  afterAll(async () => {
    await ssmContainer?.stop();
    await ssmApi?.close();
    await ssm?.close();
  });

  it('nothing to load but the bundle: NODE_PATH is Lambda\'s, and none of its directories exists here but the task root, which holds no node_modules', () => {
    for (const dir of lambdaNodePath(taskRoot).split(':').filter((d) => d !== taskRoot)) expect(existsSync(dir), dir).toBe(false);
    expect(existsSync(path.join(taskRoot, 'node_modules'))).toBe(false);
  });

  it('reads DATABASE_URL with one signed GetParameters call to the SSM endpoint, and the tick pushes the right gauges', async () => {
    const outcome = await ssmApi.invoke(scheduledEvent());
    expect(outcome.kind, ssmContainer.output()).toBe('response');
    expect(outcome.body).toMatchObject({ outcome: 'ok' });
    expectKnownQueue(await stack.gateway.scrape(), ssmJob);
    expect(ssm.requests).toHaveLength(1);
    expect(ssm.requests[0]).toMatchObject({
      target: 'AmazonSSM.GetParameters',
      contentType: 'application/x-amz-json-1.1',
      signatureProblem: undefined,
      names: [parameter],
      withDecryption: true,
    });
    expect(ssm.requests[0]!.credentialScope).toMatch(/^\d{8}\/eu-west-1\/ssm\/aws4_request$/);
    expect(ssm.requests[0]!.signedHeaders).toEqual(expect.arrayContaining(['host', 'x-amz-date', 'x-amz-security-token', 'x-amz-target']));
  });

  it('a second invocation in the same container uses the cached value: no second call', async () => {
    const outcome = await ssmApi.invoke(scheduledEvent());
    expect(outcome.kind, ssmContainer.output()).toBe('response');
    expectKnownQueue(await stack.gateway.scrape(), ssmJob);
    expect(ssm.requests).toHaveLength(1);
  });

  it('prints no secret and no credential, and no ERROR-level line', () => {
    const output = ssmContainer.output();
    expect(output).toContain('"outcome":"ok"');
    for (const secret of [stack.reader.password, TEST_SECRET_ACCESS_KEY, TEST_SESSION_TOKEN]) expect(output.includes(secret), output).toBe(false);
    expect(errorLines(output)).toEqual([]);
  });
});
