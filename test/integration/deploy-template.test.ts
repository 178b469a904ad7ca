/**
 * The packaged deploy, as `npm run package` (scripts/deploy/package.sh: the framework
 * and serverless-esbuild) writes it for a deploy: CloudFormation template,
 * serverless-state.json and one zip per function. Packaged with recognisable
 * secret values exported in the deploy environment, which must appear nowhere;
 * and read as AWS would read it: runtime, per-function settings, each function's
 * role, the VPC, reserved concurrency, the scrape throttle, the one region, the
 * CA bundle, the metrics opt-in, the collect timeout. Every template is linted
 * with AWS's cfn-lint (test/support/cfn-lint.ts lists the warnings accepted, with why).
 */

import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageFunction, readZip, type PackageResult } from '../../scripts/bench/cold';
import { ACCEPTED_WARNINGS, lintTemplates, unacceptedMatches, type LintMatch } from '../support/cfn-lint';
import { selfSignedCertificate } from '../support/tls';

const root = path.resolve(import.meta.dirname, '../..');
const hex = randomBytes(4).toString('hex');
const REGION = 'ap-southeast-2';
const STAGE = 'qa';

/** Recognisable values for every secret of the contract, exported as a careless deploy shell would. */
const SECRETS = {
  DATABASE_URL: `postgresql://xyn:XynDbSecret${hex}@db.example:5432/xyn`,
  PUSHGATEWAY_PASSWORD: `XynGwPassword${hex}`,
  PUSHGATEWAY_TOKEN: `XynGwToken${hex}`,
  METRICS_BEARER_TOKEN: `XynScrapeToken${hex}`,
  REMOTE_WRITE_PASSWORD: `XynRwPassword${hex}`,
  REMOTE_WRITE_TOKEN: `XynRwToken${hex}`,
};
const SECRET_MARKERS = [`XynDbSecret${hex}`, ...Object.values(SECRETS).slice(1)];

type Resource = { Type: string; Properties: Record<string, any> };
type Template = { Resources: Record<string, Resource> };

const caDir = path.join(root, '.tmp', `deploy-template-${hex}`);
const caFile = path.join('.tmp', `deploy-template-${hex}`, 'pushgateway-ca.pem');
let caPem: string;
let full: PackageResult;
let fullTemplate: Template;
let plain: PackageResult;
let plainTemplate: Template;
/** A private database's deploy: in a VPC, triggered by EventBridge Scheduler, remote write to AMP with SigV4 only, no reservations. */
let vpc: PackageResult;
let vpcTemplate: Template;
const SUBNETS = ['subnet-0a1b2c3d4e5f60718', 'subnet-0f1e2d3c4b5a69788'];
const SECURITY_GROUPS = ['sg-0123456789abcdef0'];
const WORKSPACE = `arn:aws:aps:${REGION}:123456789012:workspace/ws-0123abcd-4567`;

const template = (p: PackageResult): Template => JSON.parse(readFileSync(path.join(p.outDir, 'cloudformation-template-update-stack.json'), 'utf8'));
const ofType = (t: Template, type: string) => Object.values(t.Resources).filter((r) => r.Type === type);
const fn = (t: Template, name: string) => t.Resources[`${name[0]!.toUpperCase()}${name.slice(1)}LambdaFunction`];
type Statement = { Effect: string; Action: string[]; Resource: any[]; Condition?: unknown };
const statementsOf = (t: Template, roleId: string): Statement[] => t.Resources[roleId]!.Properties.Policies.flatMap((p: any) => p.PolicyDocument.Statement);

beforeAll(() => {
  mkdirSync(caDir, { recursive: true });
  const cert = selfSignedCertificate('IP:127.0.0.1');
  caPem = cert.cert.toString('utf8');
  cert.dispose();
  writeFileSync(path.join(root, caFile), caPem);
  full = packageFunction(root, {
    ...SECRETS,
    AWS_REGION: REGION,
    METRICS_ENDPOINT: 'on',
    PUSHGATEWAY_URL: 'https://pushgateway.example:9091',
    PUSHGATEWAY_AUTH: 'basic',
    PUSHGATEWAY_USERNAME: 'xyn_pusher',
    PUSHGATEWAY_CA_FILE: caFile,
    // The database's CA (e.g. RDS's bundle): both zips carry it; DATABASE_URL's sslrootcert names it.
    DATABASE_CA_FILE: caFile,
    SAMPLES_PER_INVOCATION: '3',
    RUNS_TABLE: 'xyn.runs',
  }, ['--stage', STAGE]);
  fullTemplate = template(full);
  plain = packageFunction(root, { ...SECRETS, AWS_REGION: REGION, PUSHGATEWAY_URL: 'http://pushgateway.example:9091' });
  plainTemplate = template(plain);
  vpc = packageFunction(root, {
    ...SECRETS,
    AWS_REGION: REGION,
    METRICS_ENDPOINT: 'on',
    // No Pushgateway: the placeholder of package.sh must not stand in when a sink is set.
    PUSHGATEWAY_URL: '',
    REMOTE_WRITE_URL: `https://aps-workspaces.${REGION}.amazonaws.com/workspaces/ws-0123abcd-4567/api/v1/remote_write`,
    REMOTE_WRITE_SIGV4: 'true',
    AMP_WORKSPACE_ARN: WORKSPACE,
    COLLECT_SCHEDULE_METHOD: 'scheduler',
    VPC_SUBNET_IDS: SUBNETS.join(','),
    VPC_SECURITY_GROUP_IDS: SECURITY_GROUPS.join(' , '),
    COLLECT_RESERVED_CONCURRENCY: 'none',
    METRICS_RESERVED_CONCURRENCY: 'none',
    METRICS_THROTTLE_RATE: '10',
    METRICS_THROTTLE_BURST: '20',
  }, ['--stage', STAGE]);
  vpcTemplate = template(vpc);
}, 600_000);

afterAll(() => {
  for (const p of [full, plain, vpc]) if (p) rmSync(p.outDir, { recursive: true, force: true });
  rmSync(caDir, { recursive: true, force: true });
});

describe('the packaged deploy', () => {
  it('carries no secret value: nothing in the package folder (template, state) and nothing in any zip', () => {
    for (const p of [full, plain]) {
      const files = readdirSync(p.outDir);
      expect(files).toContain('serverless-state.json');
      const texts = files.flatMap((file) =>
        file.endsWith('.zip')
          ? readZip(path.join(p.outDir, file)).map((e) => ({ where: `${file}:${e.name}`, text: e.data.toString('utf8') }))
          : [{ where: file, text: readFileSync(path.join(p.outDir, file), 'utf8') }],
      );
      for (const { where, text } of texts) {
        for (const marker of SECRET_MARKERS) expect(text.includes(marker), `${where} contains a secret (${marker.slice(0, 8)}…)`).toBe(false);
      }
    }
  });

  it('runs every function on nodejs24.x', () => {
    const functions = ofType(fullTemplate, 'AWS::Lambda::Function');
    expect(functions).toHaveLength(2);
    for (const f of functions) expect(f.Properties.Runtime).toBe('nodejs24.x');
  });

  it('gives each function only its own settings and the names of its own secrets', () => {
    expect(fn(fullTemplate, 'collect')!.Properties.Environment.Variables).toEqual({
      PUSHGATEWAY_URL: 'https://pushgateway.example:9091',
      PUSHGATEWAY_USERNAME: 'xyn_pusher',
      PUSHGATEWAY_CA_FILE: caFile,
      RUNS_TABLE: 'xyn.runs',
      SAMPLES_PER_INVOCATION: '3',
      DATABASE_URL_SSM_PARAMETER: `/xyn-metrics/${STAGE}/database-url`,
      PUSHGATEWAY_PASSWORD_SSM_PARAMETER: `/xyn-metrics/${STAGE}/pushgateway-password`,
    });
    expect(fn(fullTemplate, 'metrics')!.Properties.Environment.Variables).toEqual({
      RUNS_TABLE: 'xyn.runs',
      TICK_TIMEOUT_MS: '8000',
      DATABASE_URL_SSM_PARAMETER: `/xyn-metrics/${STAGE}/database-url`,
      METRICS_BEARER_TOKEN_SSM_PARAMETER: `/xyn-metrics/${STAGE}/metrics-bearer-token`,
    });
  });

  it('gives each function a role of its own and the framework none: no shared role, no managed policy', () => {
    for (const t of [fullTemplate, plainTemplate, vpcTemplate]) {
      expect(t.Resources.IamRoleLambdaExecution).toBeUndefined();
      for (const role of ofType(t, 'AWS::IAM::Role')) expect(role.Properties.ManagedPolicyArns ?? []).toEqual([]);
    }
    expect(Object.keys(fullTemplate.Resources).filter((id) => fullTemplate.Resources[id]!.Type === 'AWS::IAM::Role').sort()).toEqual(['CollectExecutionRole', 'MetricsExecutionRole']);
    expect(Object.keys(plainTemplate.Resources).filter((id) => plainTemplate.Resources[id]!.Type === 'AWS::IAM::Role')).toEqual(['CollectExecutionRole']);
    for (const [name, roleId] of [['collect', 'CollectExecutionRole'], ['metrics', 'MetricsExecutionRole']] as const) {
      expect(fn(fullTemplate, name)!.Properties.Role).toEqual({ 'Fn::GetAtt': [roleId, 'Arn'] });
      expect(fullTemplate.Resources[roleId]!.Properties.AssumeRolePolicyDocument.Statement).toEqual([
        { Effect: 'Allow', Principal: { Service: ['lambda.amazonaws.com'] }, Action: ['sts:AssumeRole'] },
      ]);
    }
  });

  it('lets each role read exactly its function\'s parameters, decrypt only via SSM, and write its own log group; nothing else', () => {
    const expected = { collect: ['database-url', 'pushgateway-password'], metrics: ['database-url', 'metrics-bearer-token'] };
    for (const [name, roleId] of [['collect', 'CollectExecutionRole'], ['metrics', 'MetricsExecutionRole']] as const) {
      const statements = statementsOf(fullTemplate, roleId);
      const byAction = (prefix: string) => statements.filter((s) => s.Action.every((a) => a.startsWith(prefix)));
      expect(byAction('logs:').length + byAction('ssm:').length + byAction('kms:').length, roleId).toBe(statements.length);
      for (const s of statements) expect(s.Effect).toBe('Allow');
      for (const s of byAction('logs:')) {
        for (const a of s.Action) expect(a).toMatch(/^logs:(CreateLogStream|CreateLogGroup|PutLogEvents)$/);
        for (const r of s.Resource) expect(r['Fn::Sub']).toMatch(new RegExp(`:log-group:/aws/lambda/xyn-metrics-${STAGE}-${name}:\\*(:\\*)?$`));
      }
      const [ssm, ...moreSsm] = byAction('ssm:');
      expect(moreSsm).toEqual([]);
      expect(ssm!.Action).toEqual(['ssm:GetParameters']);
      expect(ssm!.Resource.map((r) => r['Fn::Sub']).sort()).toEqual(
        expected[name].map((p) => `arn:\${AWS::Partition}:ssm:${REGION}:\${AWS::AccountId}:parameter/xyn-metrics/${STAGE}/${p}`),
      );
      const [kms, ...moreKms] = byAction('kms:');
      expect(moreKms).toEqual([]);
      expect(kms!.Action).toEqual(['kms:Decrypt']);
      expect(kms!.Condition).toEqual({ StringEquals: { 'kms:ViaService': `ssm.${REGION}.amazonaws.com` } });
    }
  });

  it('with SigV4, only collect\'s role may aps:RemoteWrite, to the one workspace', () => {
    expect(statementsOf(vpcTemplate, 'CollectExecutionRole').filter((s) => s.Action.includes('aps:RemoteWrite'))).toEqual([
      { Effect: 'Allow', Action: ['aps:RemoteWrite'], Resource: [WORKSPACE] },
    ]);
    expect(statementsOf(vpcTemplate, 'MetricsExecutionRole').flatMap((s) => s.Action)).not.toContain('aps:RemoteWrite');
    expect(statementsOf(fullTemplate, 'CollectExecutionRole').flatMap((s) => s.Action)).not.toContain('aps:RemoteWrite');
    const env = fn(vpcTemplate, 'collect')!.Properties.Environment.Variables;
    expect(env).toMatchObject({ REMOTE_WRITE_SIGV4: 'true' });
    expect(env).not.toHaveProperty('PUSHGATEWAY_URL');
  });

  it('puts both functions in the VPC of VPC_SUBNET_IDS and VPC_SECURITY_GROUP_IDS, their roles allowed the network interfaces Lambda makes there', () => {
    const eni = ['ec2:CreateNetworkInterface', 'ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets', 'ec2:DeleteNetworkInterface', 'ec2:AssignPrivateIpAddresses', 'ec2:UnassignPrivateIpAddresses'];
    for (const [name, roleId] of [['collect', 'CollectExecutionRole'], ['metrics', 'MetricsExecutionRole']] as const) {
      expect(fn(vpcTemplate, name)!.Properties.VpcConfig).toEqual({ SubnetIds: SUBNETS, SecurityGroupIds: SECURITY_GROUPS });
      // The framework's way would be AWSLambdaVPCAccessExecutionRole, which also grants logs:* on every log group.
      expect(vpcTemplate.Resources[roleId]!.Properties.ManagedPolicyArns).toBeUndefined();
      expect(statementsOf(vpcTemplate, roleId).filter((s) => s.Action.some((a) => a.startsWith('ec2:')))).toEqual([{ Effect: 'Allow', Action: eni, Resource: ['*'] }]);
    }
    for (const t of [fullTemplate, plainTemplate]) {
      for (const f of ofType(t, 'AWS::Lambda::Function')) expect(f.Properties.VpcConfig).toBeUndefined();
      for (const roleId of ['CollectExecutionRole', 'MetricsExecutionRole'].filter((id) => t.Resources[id])) {
        expect(statementsOf(t, roleId).flatMap((s) => s.Action).filter((a) => a.startsWith('ec2:'))).toEqual([]);
      }
    }
  });

  it('gives EventBridge Scheduler a role of its own that may invoke collect and nothing else', () => {
    const [schedule] = ofType(vpcTemplate, 'AWS::Scheduler::Schedule');
    expect(schedule!.Properties.Target.RoleArn).toEqual({ 'Fn::GetAtt': ['CollectSchedulerRole', 'Arn'] });
    const role = vpcTemplate.Resources.CollectSchedulerRole!;
    expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
      { Effect: 'Allow', Principal: { Service: ['scheduler.amazonaws.com'] }, Action: ['sts:AssumeRole'], Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } } },
    ]);
    expect(statementsOf(vpcTemplate, 'CollectSchedulerRole')).toEqual([{ Effect: 'Allow', Action: ['lambda:InvokeFunction'], Resource: [{ 'Fn::GetAtt': ['CollectLambdaFunction', 'Arn'] }] }]);
    // The functions' roles are Lambda's alone.
    for (const roleId of ['CollectExecutionRole', 'MetricsExecutionRole']) {
      expect(JSON.stringify(vpcTemplate.Resources[roleId]!.Properties.AssumeRolePolicyDocument)).not.toContain('scheduler');
    }
    expect(fullTemplate.Resources.CollectSchedulerRole).toBeUndefined();
  });

  it('reserves 1 and 2 concurrent executions by default, none with none', () => {
    expect(fn(fullTemplate, 'collect')!.Properties.ReservedConcurrentExecutions).toBe(1);
    expect(fn(fullTemplate, 'metrics')!.Properties.ReservedConcurrentExecutions).toBe(2);
    for (const f of ofType(vpcTemplate, 'AWS::Lambda::Function')) expect(f.Properties).not.toHaveProperty('ReservedConcurrentExecutions');
  });

  it('throttles the scrape function\'s HTTP API (METRICS_THROTTLE_RATE, METRICS_THROTTLE_BURST) on its one stage', () => {
    const stages = (t: Template) => ofType(t, 'AWS::ApiGatewayV2::Stage');
    expect(stages(fullTemplate)).toHaveLength(1);
    expect(stages(fullTemplate)[0]!.Properties).toMatchObject({ StageName: '$default', DefaultRouteSettings: { ThrottlingRateLimit: 1, ThrottlingBurstLimit: 5 } });
    expect(stages(vpcTemplate)[0]!.Properties.DefaultRouteSettings).toMatchObject({ ThrottlingRateLimit: 10, ThrottlingBurstLimit: 20 });
    // No route of its own that would escape the stage's default.
    expect(stages(fullTemplate)[0]!.Properties.RouteSettings).toBeUndefined();
    expect(stages(plainTemplate)).toEqual([]);
  });

  it('every packaged template passes cfn-lint: no error, and no warning but those listed with why', () => {
    const lint: LintMatch[] = lintTemplates([full, plain, vpc].map((p) => path.join(p.outDir, 'cloudformation-template-update-stack.json')), REGION);
    expect(unacceptedMatches(lint)).toEqual([]);
    // The list is not stale: each accepted warning is still there to accept.
    for (const accepted of ACCEPTED_WARNINGS) expect(lint.some((m) => m.rule === accepted.rule && accepted.path.test(m.path)), accepted.why).toBe(true);
  }, 180_000);

  it('uses the one explicit region everywhere, and refuses to package without one', () => {
    for (const p of [full, plain]) {
      const texts = readdirSync(p.outDir).filter((f) => f.endsWith('.json')).map((f) => readFileSync(path.join(p.outDir, f), 'utf8'));
      const regions = new Set(texts.flatMap((t) => [...t.matchAll(/\b(?:us|eu|ap|sa|ca|me|af|il|mx)-[a-z]+-\d\b/g)].map((m) => m[0])));
      expect([...regions]).toEqual([REGION]);
    }
    const run = spawnSync('bash', ['scripts/deploy/package.sh', '--package', path.join(caDir, 'no-region')], {
      cwd: root, encoding: 'utf8', timeout: 600_000,
      env: { ...process.env, AWS_REGION: '', AWS_DEFAULT_REGION: '', ESBUILD_WORK_FOLDER: path.join(caDir, 'work') },
    });
    expect(run.status).not.toBe(0);
    expect(run.stdout + run.stderr).toMatch(/export AWS_REGION=<region>/);
  }, 600_000);

  it('packages with no network at all: no packaging step downloads anything', () => {
    // A fresh network namespace has no route anywhere (root, as CI and this machine run).
    const out = path.join(caDir, 'no-network');
    const run = spawnSync('unshare', ['--net', 'bash', 'scripts/deploy/package.sh', '--package', out], {
      cwd: root, encoding: 'utf8', timeout: 600_000,
      env: { ...process.env, AWS_REGION: REGION, METRICS_ENDPOINT: 'on', ESBUILD_WORK_FOLDER: path.join(caDir, 'work-no-network') },
    });
    expect(run.status, (run.stdout + run.stderr).slice(-2000)).toBe(0);
    expect(readdirSync(out).filter((f) => f.endsWith('.zip')).sort()).toEqual(['collect.zip', 'metrics.zip']);
    // Defaults with the metrics function: one more combination for cfn-lint.
    expect(unacceptedMatches(lintTemplates([path.join(out, 'cloudformation-template-update-stack.json')], REGION))).toEqual([]);
  }, 600_000);

  it('serverless print needs no deploy-only setting: the region alone, no sink, no stage file', () => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(PUSHGATEWAY|REMOTE_WRITE|METRICS|VPC|COLLECT)_/.test(name)));
    const run = spawnSync('npx', ['serverless', 'print', '--stage', `print-${hex}`, '--format', 'json'], {
      cwd: root, encoding: 'utf8', timeout: 300_000,
      env: { ...env, AWS_REGION: REGION, SLS_TELEMETRY_DISABLED: '1', SLS_NOTIFICATIONS_MODE: 'off' },
    });
    expect(run.status, (run.stdout + run.stderr).slice(-2000)).toBe(0);
    const printed = JSON.parse(run.stdout.slice(run.stdout.indexOf('{')));
    expect(printed.functions.collect.environment).toEqual({ DATABASE_URL_SSM_PARAMETER: `/xyn-metrics/print-${hex}/database-url` });
    expect(Object.keys(printed.resources.Resources)).toContain('CollectExecutionRole');
  }, 300_000);

  it('carries the private CA bundle in the collect zip, where PUSHGATEWAY_CA_FILE names it', () => {
    const entries = readZip(full.zips.collect!);
    const ca = entries.find((e) => e.name === fn(fullTemplate, 'collect')!.Properties.Environment.Variables.PUSHGATEWAY_CA_FILE);
    expect(ca?.data.toString('utf8')).toBe(caPem);
  });

  it('carries DATABASE_CA_FILE in both zips at its path in the project, and only there', () => {
    for (const name of ['collect', 'metrics'] as const) {
      const entries = readZip(full.zips[name]!);
      expect(entries.map((e) => e.name).sort(), `${name}.zip`).toEqual([`functions/${name}.cjs`, caFile].sort());
      expect(entries.find((e) => e.name === caFile)?.data.toString('utf8')).toBe(caPem);
    }
  });

  it('sets the collect timeout from SAMPLES_PER_INVOCATION: one tick 30 s, sampling the schedule period + 10 s', () => {
    expect(fn(fullTemplate, 'collect')!.Properties.Timeout).toBe(70);
    expect(fn(plainTemplate, 'collect')!.Properties.Timeout).toBe(30);
  });

  it('deploys the metrics function and its public HTTP API only when asked for', () => {
    expect(Object.keys(plain.zips)).toEqual(['collect']);
    expect(ofType(plainTemplate, 'AWS::Lambda::Function')).toHaveLength(1);
    expect(Object.values(plainTemplate.Resources).filter((r) => r.Type.startsWith('AWS::ApiGatewayV2::'))).toEqual([]);
    expect(fn(plainTemplate, 'collect')!.Properties.Environment.Variables).toEqual({
      PUSHGATEWAY_URL: 'http://pushgateway.example:9091',
      DATABASE_URL_SSM_PARAMETER: '/xyn-metrics/dev/database-url',
    });
    expect(ofType(fullTemplate, 'AWS::ApiGatewayV2::Api')).toHaveLength(1);
  });
});
