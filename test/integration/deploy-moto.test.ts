/**
 * A real `npx serverless deploy` against an AWS emulator (moto's server, on a
 * free loopback port; dummy credentials; the framework's AWS SDK v3 pointed
 * at it with AWS_ENDPOINT_URL), from a committed-style stage file made from
 * stages/prod.example.env and a deploy shell with no setting at all: into a
 * VPC (moto's subnets and security group), one role per function, the metrics
 * function on, bearer auth to the gateway. What the deploy made is read back
 * with boto3 (test/support/aws-inspect.py): each function's runtime, handler,
 * environment names (never values), VPC, role and its policy, reserved
 * concurrency; the schedule and its retry policy; the log groups. Then:
 *
 * - the deployed zips, fetched from the deployment bucket in moto's S3, run
 *   under AWS's runtime interface client (test/support/lambda-runtime.ts) with
 *   the deployed function's environment; they read their secrets from moto's
 *   SSM and push (collect) or serve (metrics) the seeded queue's gauges. moto
 *   would need Docker to run Lambda code, so the test runs it itself;
 * - a redeploy from the same bare shell changes nothing ("No changes to deploy");
 * - info, logs and invoke work with no stage file and no setting but the region;
 * - `serverless remove` leaves no stack, function, role or log group; the SSM
 *   parameters stay (the README's remove step says so).
 *
 * moto has no CloudFormation support for AWS::Lambda::EventInvokeConfig,
 * AWS::S3::BucketPolicy, AWS::Scheduler::Schedule or AWS::ApiGatewayV2::*: it
 * creates nothing for them and reports them with an empty physical id. Those are
 * checked in the template moto was given (and in deploy-template.test.ts and
 * late-ticks.test.ts), and cfn-lint lints that template.
 */

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unzipTo } from '../../scripts/bench/cold';
import { SETTING_NAMES } from '../../lib/config/settings';
import { startAuthFront, type AuthFront } from '../support/auth-front';
import { lintTemplates, unacceptedMatches } from '../support/cfn-lint';
import { expectKnownQueue, seedKnownQueue, startStack, type Stack } from '../support/faults';
import { scheduledEvent } from '../support/lambda';
import { runtimeClient, startRuntimeApi, startRuntimeClient, type RuntimeApi, type RuntimeProcess } from '../support/lambda-runtime';
import { MOTO_ACCOUNT, startMoto, type Moto } from '../support/moto';
import { sample } from '../support/pushgateway';

const root = path.resolve(import.meta.dirname, '../..');
const hex = randomBytes(4).toString('hex');
const STAGE = `moto-${hex}`;
const REGION = 'eu-central-1';
const STACK = `xyn-metrics-${STAGE}`;
const FUNCTIONS = { collect: `${STACK}-collect`, metrics: `${STACK}-metrics` };
const JOB = `xyn_moto_${hex}`;
const STAGE_FILE = path.join(root, 'stages', `${STAGE}.env`);
/** In the project, so the bundle's import of the AWS SDK resolves as it does in Lambda's runtime (which provides it). */
const work = path.join(root, '.tmp', `deploy-moto-${hex}`);
const GATEWAY_TOKEN = `moto-gateway-token-${hex}`;
const SCRAPE_TOKEN = `moto-scrape-token-${randomBytes(12).toString('hex')}`;
const PARAMETERS = ['database-url', 'pushgateway-token', 'metrics-bearer-token'].map((name) => `/xyn-metrics/${STAGE}/${name}`);

interface Described {
  status: string;
  lastUpdated: string;
  resources: Record<string, { type: string; physical: string; status: string }>;
  template: { Resources: Record<string, { Type: string; Properties: any }> };
  functions: Record<string, {
    runtime: string; handler: string; timeout: number; memory: number; role: string; environmentNames: string[];
    vpc: { SubnetIds?: string[]; SecurityGroupIds?: string[] }; reservedConcurrency: number | undefined; codeSha256: string; lastModified: string; policy: any;
  }>;
  roles: Record<string, { arn: string; trust: any; policies: Record<string, { Statement: any[] }>; attached: string[] }>;
  rules: Record<string, { arn: string; schedule: string; state: string; targets: any[] }>;
  logGroups: Record<string, number | undefined>;
}

let moto: Moto;
let stack: Stack;
let front: AuthFront;
let network: { vpc: string; subnets: string[]; securityGroups: string[] };
let deployed: Described;
let firstDeploy: Run;
const containers: RuntimeProcess[] = [];
const apis: RuntimeApi[] = [];

type Run = { status: number | null; output: string; seconds: number };

/**
 * A shell with no xyn-metrics setting and nothing of this machine's AWS setup:
 * what the deploy knows comes from the stage file; AWS is moto.
 */
function bareShell(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const ours = new Set<string>(SETTING_NAMES);
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('AWS_') && !ours.has(name) && !name.endsWith('_SSM_PARAMETER')));
  return { ...env, ...moto.awsEnv, SLS_TELEMETRY_DISABLED: '1', SLS_NOTIFICATIONS_MODE: 'off', ESBUILD_WORK_FOLDER: path.join('.tmp', `deploy-moto-${hex}-esbuild`), ...extra };
}

/** `npx serverless <args>`; a deploy (which packages into the project's .serverless/) holds the packaging lock. */
function serverless(args: string[], env: NodeJS.ProcessEnv, locked = false): Promise<Run> {
  const started = performance.now();
  const [command, ...rest] = locked ? ['bash', 'scripts/deploy/locked.sh', 'npx', 'serverless', ...args] : ['npx', 'serverless', ...args];
  return new Promise((resolve) => {
    const child = spawn(command!, rest, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
    child.on('exit', (status) => {
      clearTimeout(timer);
      resolve({ status, output, seconds: (performance.now() - started) / 1000 });
    });
  });
}

/** stages/prod.example.env with these settings set: a line of the example (commented out or not) replaced, or one added. */
function stageFileFrom(example: string, values: Record<string, string>): string {
  const done = new Set<string>();
  const lines = example.split('\n').map((line) => {
    const name = /^(?:# ?)?([A-Z][A-Z0-9_]*)=/.exec(line)?.[1];
    if (name === undefined || !(name in values) || done.has(name)) return line;
    done.add(name);
    return `${name}=${values[name]}`;
  });
  for (const [name, value] of Object.entries(values)) if (!done.has(name)) lines.push(`${name}=${value}`);
  return `${lines.join('\n')}\n`;
}

const inspect = <T = any>(command: string, input: unknown) => moto.inspect<T>(command, input, REGION);
const describeStack = () =>
  inspect<Described>('describe', { stack: STACK, functions: Object.values(FUNCTIONS), logGroupPrefix: `/aws/lambda/${STACK}-` });
const statements = (role: string) => Object.values(deployed.roles[role]!.policies).flatMap((p) => p.Statement);

beforeAll(async () => {
  mkdirSync(work, { recursive: true });
  moto = await startMoto();
  stack = await startStack('moto');
  front = await startAuthFront(stack.gateway.url, GATEWAY_TOKEN);
  network = inspect('setup-network', {});
  inspect('put-parameters', {
    [PARAMETERS[0]!]: stack.reader.url,
    [PARAMETERS[1]!]: GATEWAY_TOKEN,
    [PARAMETERS[2]!]: SCRAPE_TOKEN,
  });
  writeFileSync(
    STAGE_FILE,
    stageFileFrom(readFileSync(path.join(root, 'stages', 'prod.example.env'), 'utf8'), {
      AWS_REGION: REGION,
      PUSHGATEWAY_URL: front.url,
      PUSHGATEWAY_JOB: JOB,
      RUNS_TABLE: stack.db.table,
      VPC_SUBNET_IDS: network.subnets.join(','),
      VPC_SECURITY_GROUP_IDS: network.securityGroups.join(','),
      METRICS_ENDPOINT: 'on',
    }),
  );
  firstDeploy = await serverless(['deploy', '--stage', STAGE], bareShell(), true);
  if (firstDeploy.status !== 0) throw new Error(`serverless deploy failed (exit ${firstDeploy.status}):\n${firstDeploy.output.slice(-4000)}\nmoto:\n${moto.output().slice(-2000)}`);
  deployed = describeStack();
}, 900_000);

afterAll(async () => {
  for (const container of containers) await container.stop();
  for (const api of apis) await api.close();
  rmSync(STAGE_FILE, { force: true });
  rmSync(work, { recursive: true, force: true });
  rmSync(path.join(root, '.tmp', `deploy-moto-${hex}-esbuild`), { recursive: true, force: true });
  await front?.close();
  await stack?.close();
  await moto?.stop();
});

describe('serverless deploy against moto, from the stage file alone', () => {
  it('completes the stack', () => {
    // osls creates the stack with its deployment bucket, then updates it with the template.
    expect(deployed.status, firstDeploy.output.slice(-2000)).toMatch(/^(CREATE|UPDATE)_COMPLETE$/);
    for (const [id, r] of Object.entries(deployed.resources)) expect(r.status, id).toMatch(/_COMPLETE$/);
  });

  it('deploys each function with its runtime, handler and only its own settings (by name; no value is read here)', () => {
    const collect = deployed.functions[FUNCTIONS.collect]!;
    const metrics = deployed.functions[FUNCTIONS.metrics]!;
    for (const f of [collect, metrics]) {
      expect(f.runtime).toBe('nodejs24.x');
      expect(f.memory).toBe(256);
    }
    expect(collect.handler).toBe('functions/collect.collect');
    expect(metrics.handler).toBe('functions/metrics.metrics');
    expect([collect.timeout, metrics.timeout]).toEqual([30, 10]);
    expect(collect.environmentNames).toEqual(
      ['DATABASE_URL_SSM_PARAMETER', 'PUSHGATEWAY_GROUPING', 'PUSHGATEWAY_JOB', 'PUSHGATEWAY_TOKEN_SSM_PARAMETER', 'PUSHGATEWAY_URL', 'RUNS_TABLE'],
    );
    expect(metrics.environmentNames).toEqual(['DATABASE_URL_SSM_PARAMETER', 'METRICS_BEARER_TOKEN_SSM_PARAMETER', 'RUNS_TABLE', 'TICK_TIMEOUT_MS']);
    // moto reports x86_64 whatever it is given; the template it was given says arm64.
    for (const id of ['CollectLambdaFunction', 'MetricsLambdaFunction']) expect(deployed.template.Resources[id]!.Properties.Architectures).toEqual(['arm64']);
  });

  it('puts both functions in the stage\'s VPC: its subnets, its security group', () => {
    for (const name of Object.values(FUNCTIONS)) {
      expect(deployed.functions[name]!.vpc).toEqual({ SubnetIds: [...network.subnets].sort(), SecurityGroupIds: network.securityGroups });
    }
  });

  it('gives each function its own role: assumable by Lambda alone, no managed policy, its own parameters, logs and network interfaces', () => {
    const arn = (service: string, resource: string) => `arn:aws:${service}:${REGION}:${MOTO_ACCOUNT}:${resource}`;
    const expected = {
      CollectExecutionRole: { fn: FUNCTIONS.collect, parameters: [PARAMETERS[0], PARAMETERS[1]] },
      MetricsExecutionRole: { fn: FUNCTIONS.metrics, parameters: [PARAMETERS[0], PARAMETERS[2]] },
    };
    expect(Object.keys(deployed.roles).sort()).toEqual(Object.keys(expected).sort());
    for (const [roleId, { fn, parameters }] of Object.entries(expected)) {
      const role = deployed.roles[roleId]!;
      expect(deployed.functions[fn]!.role).toBe(role.arn);
      expect(role.attached).toEqual([]);
      expect(role.trust.Statement).toEqual([{ Effect: 'Allow', Principal: { Service: ['lambda.amazonaws.com'] }, Action: ['sts:AssumeRole'] }]);
      const group = arn('logs', `log-group:/aws/lambda/${fn}`);
      expect(statements(roleId)).toEqual([
        { Effect: 'Allow', Action: ['logs:CreateLogGroup', 'logs:CreateLogStream'], Resource: [`${group}:*`] },
        { Effect: 'Allow', Action: ['logs:PutLogEvents'], Resource: [`${group}:*:*`] },
        { Effect: 'Allow', Action: ['ssm:GetParameters'], Resource: parameters.map((p) => arn('ssm', `parameter${p}`)) },
        { Effect: 'Allow', Action: ['kms:Decrypt'], Resource: [arn('kms', 'key/*')], Condition: { StringEquals: { 'kms:ViaService': `ssm.${REGION}.amazonaws.com` } } },
        {
          Effect: 'Allow',
          Action: ['ec2:CreateNetworkInterface', 'ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets', 'ec2:DeleteNetworkInterface', 'ec2:AssignPrivateIpAddresses', 'ec2:UnassignPrivateIpAddresses'],
          Resource: ['*'],
        },
      ]);
    }
  });

  it('reserves 1 concurrent execution for collect and 2 for the metrics function', () => {
    expect(deployed.functions[FUNCTIONS.collect]!.reservedConcurrency).toBe(1);
    expect(deployed.functions[FUNCTIONS.metrics]!.reservedConcurrency).toBe(2);
  });

  it('schedules collect every minute with a rule whose target retries nothing and drops an event after 60 s', () => {
    const rules = Object.values(deployed.rules);
    expect(rules).toHaveLength(1);
    const [rule] = rules;
    expect(rule).toMatchObject({ schedule: 'rate(1 minute)', state: 'ENABLED' });
    expect(rule!.targets).toHaveLength(1);
    expect(rule!.targets[0]).toMatchObject({ Arn: `arn:aws:lambda:${REGION}:${MOTO_ACCOUNT}:function:${FUNCTIONS.collect}`, RetryPolicy: { MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60 } });
    // EventBridge may invoke collect for that rule only.
    const grants = deployed.functions[FUNCTIONS.collect]!.policy.Statement as any[];
    expect(grants.map((g) => [g.Principal?.Service ?? g.Principal, g.Condition?.ArnLike?.['AWS:SourceArn']])).toEqual([['events.amazonaws.com', rule!.arn]]);
  });

  it('creates both log groups, kept 14 days', () => {
    expect(deployed.logGroups).toEqual({ [`/aws/lambda/${FUNCTIONS.collect}`]: 14, [`/aws/lambda/${FUNCTIONS.metrics}`]: 14 });
  });

  it('where moto has no CloudFormation support, the template it was given says it: no late retries, TLS-only bucket, the scrape throttle', () => {
    const resources = deployed.template.Resources;
    const ofType = (type: string) => Object.values(resources).filter((r) => r.Type === type);
    expect(ofType('AWS::Lambda::EventInvokeConfig').map((r) => r.Properties)).toEqual([
      expect.objectContaining({ FunctionName: { Ref: 'CollectLambdaFunction' }, MaximumEventAgeInSeconds: 60, MaximumRetryAttempts: 0 }),
    ]);
    const [bucketPolicy] = ofType('AWS::S3::BucketPolicy');
    expect(bucketPolicy!.Properties.PolicyDocument.Statement).toEqual([
      expect.objectContaining({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': false } } }),
    ]);
    expect(ofType('AWS::ApiGatewayV2::Stage').map((r) => r.Properties.DefaultRouteSettings)).toEqual([
      expect.objectContaining({ ThrottlingRateLimit: 1, ThrottlingBurstLimit: 5 }),
    ]);
  });

  it('the template moto was given passes cfn-lint', () => {
    const file = path.join(work, 'deployed-template.json');
    writeFileSync(file, JSON.stringify(deployed.template));
    expect(unacceptedMatches(lintTemplates([file], REGION))).toEqual([]);
  }, 180_000);
});

describe('the deployed zips, run as Lambda runs them', () => {
  let client: string;

  /** The function's zip as deployed: from the deployment bucket in moto's S3, unzipped. */
  function deployedTask(logicalId: string): string {
    const code = deployed.template.Resources[logicalId]!.Properties.Code;
    const file = path.join(work, `${logicalId}.zip`);
    inspect('download', { bucket: deployed.resources.ServerlessDeploymentBucket!.physical, key: code.S3Key, file });
    return unzipTo(file, work);
  }

  /** The runtime client on `taskRoot`, with the deployed function's environment and the credentials Lambda would give it. */
  async function container(taskRoot: string, functionName: string, handler: string): Promise<{ api: RuntimeApi; process: RuntimeProcess }> {
    const api = await startRuntimeApi();
    apis.push(api);
    const env = {
      ...inspect<Record<string, string>>('environment', { function: functionName }),
      AWS_REGION: REGION,
      AWS_ACCESS_KEY_ID: moto.awsEnv.AWS_ACCESS_KEY_ID!,
      AWS_SECRET_ACCESS_KEY: moto.awsEnv.AWS_SECRET_ACCESS_KEY!,
      AWS_SESSION_TOKEN: 'moto-session-token',
      AWS_ENDPOINT_URL_SSM: moto.url,
    };
    const started = startRuntimeClient(client, api, taskRoot, handler, env);
    containers.push(started);
    return { api, process: started };
  }

  beforeAll(async () => {
    client = runtimeClient();
    // Seeded now, not before the deploy: the known queue's oldest run is 600 s old when seeded and must be read within a minute.
    await seedKnownQueue(stack.db);
  }, 900_000);

  it('collect reads its secrets from moto\'s SSM and pushes the queue\'s gauges through the gateway\'s token check', async () => {
    const { api, process } = await container(deployedTask('CollectLambdaFunction'), FUNCTIONS.collect, 'functions/collect.collect');
    const outcome = await api.invoke(scheduledEvent());
    expect(outcome.kind, process.output()).toBe('response');
    expect(outcome.body).toMatchObject({ outcome: 'ok' });
    const text = await stack.gateway.scrape();
    expectKnownQueue(text, JOB);
    // The stage file's grouping label (PUSHGATEWAY_GROUPING=env=prod of the example).
    expect(sample(text, 'xyn_collector_up', { job: JOB, env: 'prod' })).toBe(1);
    expect(front.refused()).toBe(0);
    expect(process.output()).not.toContain(GATEWAY_TOKEN);
  });

  it('the metrics function reads its token and the database URL from moto\'s SSM and serves the gauges to the right token only', async () => {
    const { api, process } = await container(deployedTask('MetricsLambdaFunction'), FUNCTIONS.metrics, 'functions/metrics.metrics');
    const request = (authorization: string) => ({ version: '2.0', routeKey: 'GET /metrics', rawPath: '/metrics', headers: { authorization }, requestContext: { http: { method: 'GET', path: '/metrics' } } });
    const refused = await api.invoke(request('Bearer not-the-token-at-all'));
    expect(refused.kind, process.output()).toBe('response');
    expect(refused.body.statusCode).toBe(401);
    const served = await api.invoke(request(`Bearer ${SCRAPE_TOKEN}`));
    expect(served.body.statusCode, process.output()).toBe(200);
    expect(sample(served.body.body, 'xyn_queue_depth', { status: 'QUEUED' })).toBe(5);
    expect(process.output()).not.toContain(SCRAPE_TOKEN);
  });
});

describe('after the deploy', () => {
  it('a redeploy from the same bare shell changes nothing', async () => {
    const run = await serverless(['deploy', '--stage', STAGE], bareShell(), true);
    expect(run.status, run.output.slice(-3000)).toBe(0);
    expect(run.output).toContain('No changes to deploy');
    const after = describeStack();
    expect(after.lastUpdated).toBe(deployed.lastUpdated);
    for (const name of Object.values(FUNCTIONS)) {
      expect(after.functions[name]!.codeSha256).toBe(deployed.functions[name]!.codeSha256);
      expect(after.functions[name]!.lastModified).toBe(deployed.functions[name]!.lastModified);
    }
  }, 600_000);

  it('info, logs and invoke need no stage file and no setting but the region', async () => {
    rmSync(STAGE_FILE);
    const marker = `xyn-moto-log-marker-${hex}`;
    inspect('put-log-event', { group: `/aws/lambda/${FUNCTIONS.collect}`, stream: `2026/12/02/[$LATEST]${hex}`, timestamp: Date.now(), message: marker });
    const env = bareShell({ AWS_REGION: REGION });
    // One after the other: three framework starts at once would take the CPU from the timing tests running beside this file.
    const info = await serverless(['info', '--stage', STAGE], env);
    const logs = await serverless(['logs', '--function', 'collect', '--stage', STAGE, '--startTime', '1h'], env);
    const invoke = await serverless(['invoke', '--function', 'collect', '--stage', STAGE], env);
    expect(info.status, info.output.slice(-2000)).toBe(0);
    // The stack's own name and region, as CloudFormation (moto) answered for it.
    expect(info.output).toContain(`stack: ${STACK}`);
    expect(info.output).toContain(`region: ${REGION}`);
    expect(logs.status, logs.output.slice(-2000)).toBe(0);
    expect(logs.output).toContain(marker);
    // The invoke reached Lambda's Invoke for the deployed function (moto's request log). moto runs function
    // code only in Docker and answers, without it, with a text the framework cannot parse as JSON, so
    // the command's own status says nothing here.
    expect(moto.output()).toMatch(new RegExp(`"POST /2015-03-31/functions/${FUNCTIONS.collect}/invocations HTTP/1\\.1" 200`));
    for (const run of [info, logs, invoke]) expect(run.output).not.toContain('xyn-metrics deploy settings');
  }, 600_000);

  it('serverless remove deletes the stack, the functions, their roles and log groups; the parameters stay', async () => {
    const run = await serverless(['remove', '--stage', STAGE], bareShell({ AWS_REGION: REGION }));
    expect(run.status, run.output.slice(-3000)).toBe(0);
    const left = inspect('remains', {
      stack: STACK,
      functions: Object.values(FUNCTIONS),
      roles: Object.values(deployed.roles).map((r) => r.arn.split('/').pop()),
      logGroupPrefix: `/aws/lambda/${STACK}-`,
      parameters: PARAMETERS,
    });
    expect(left.stacks.filter((s: string) => s !== 'DELETE_COMPLETE')).toEqual([]);
    expect(left).toMatchObject({ functions: [], roles: [], logGroups: [], parameters: [...PARAMETERS].sort() });
    expect(existsSync(STAGE_FILE)).toBe(false);
  }, 600_000);
});
