/**
 * The packaged deploy, as `npm run package` (scripts/deploy/package.sh: the framework
 * and serverless-esbuild) writes it for a deploy: CloudFormation template,
 * serverless-state.json and one zip per function. Packaged with recognisable
 * secret values exported in the deploy environment, which must appear nowhere;
 * and read as AWS would read it: runtime, per-function settings, the role, the
 * one region, the CA bundle, the metrics opt-in, the collect timeout.
 */

import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageFunction, readZip, type PackageResult } from '../../scripts/bench/cold';
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

const template = (p: PackageResult): Template => JSON.parse(readFileSync(path.join(p.outDir, 'cloudformation-template-update-stack.json'), 'utf8'));
const ofType = (t: Template, type: string) => Object.values(t.Resources).filter((r) => r.Type === type);
const fn = (t: Template, name: string) => t.Resources[`${name[0]!.toUpperCase()}${name.slice(1)}LambdaFunction`];

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
}, 240_000);

afterAll(() => {
  for (const p of [full, plain]) if (p) rmSync(p.outDir, { recursive: true, force: true });
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

  it('lets the role read exactly those parameters, decrypt only via SSM, and write its own logs; nothing else', () => {
    const roles = ofType(fullTemplate, 'AWS::IAM::Role');
    expect(roles).toHaveLength(1);
    expect(roles[0]!.Properties.ManagedPolicyArns ?? []).toEqual([]);
    const statements = roles[0]!.Properties.Policies.flatMap((p: any) => p.PolicyDocument.Statement) as {
      Effect: string; Action: string[]; Resource: { 'Fn::Sub': string }[]; Condition?: unknown;
    }[];
    const byAction = (prefix: string) => statements.filter((s) => s.Action.every((a) => a.startsWith(prefix)));
    expect(byAction('logs:').length + byAction('ssm:').length + byAction('kms:').length).toBe(statements.length);
    for (const s of statements) expect(s.Effect).toBe('Allow');
    for (const s of byAction('logs:')) {
      for (const a of s.Action) expect(a).toMatch(/^logs:(CreateLogStream|CreateLogGroup|TagResource|PutLogEvents)$/);
      for (const r of s.Resource) expect(r['Fn::Sub']).toContain(`log-group:/aws/lambda/xyn-metrics-${STAGE}`);
    }
    const [ssm] = byAction('ssm:');
    expect(byAction('ssm:')).toHaveLength(1);
    expect(ssm!.Action).toEqual(['ssm:GetParameter', 'ssm:GetParameters']);
    expect(ssm!.Resource.map((r) => r['Fn::Sub']).sort()).toEqual(
      ['database-url', 'metrics-bearer-token', 'pushgateway-password'].map(
        (name) => `arn:\${AWS::Partition}:ssm:${REGION}:\${AWS::AccountId}:parameter/xyn-metrics/${STAGE}/${name}`,
      ),
    );
    const [kms] = byAction('kms:');
    expect(byAction('kms:')).toHaveLength(1);
    expect(kms!.Action).toEqual(['kms:Decrypt']);
    expect(kms!.Condition).toEqual({ StringEquals: { 'kms:ViaService': `ssm.${REGION}.amazonaws.com` } });
  });

  it('uses the one explicit region everywhere, and refuses to package without one', () => {
    for (const p of [full, plain]) {
      const texts = readdirSync(p.outDir).filter((f) => f.endsWith('.json')).map((f) => readFileSync(path.join(p.outDir, f), 'utf8'));
      const regions = new Set(texts.flatMap((t) => [...t.matchAll(/\b(?:us|eu|ap|sa|ca|me|af|il|mx)-[a-z]+-\d\b/g)].map((m) => m[0])));
      expect([...regions]).toEqual([REGION]);
    }
    const run = spawnSync('bash', ['scripts/deploy/package.sh', '--package', path.join(caDir, 'no-region')], {
      cwd: root, encoding: 'utf8', timeout: 120_000,
      env: { ...process.env, AWS_REGION: '', AWS_DEFAULT_REGION: '', ESBUILD_WORK_FOLDER: path.join(caDir, 'work') },
    });
    expect(run.status).not.toBe(0);
    expect(run.stdout + run.stderr).toMatch(/export AWS_REGION=<region>/);
  }, 120_000);

  it('packages with no network at all: no packaging step downloads anything', () => {
    // A fresh network namespace has no route anywhere (root, as CI and this machine run).
    const out = path.join(caDir, 'no-network');
    const run = spawnSync('unshare', ['--net', 'bash', 'scripts/deploy/package.sh', '--package', out], {
      cwd: root, encoding: 'utf8', timeout: 120_000,
      env: { ...process.env, AWS_REGION: REGION, METRICS_ENDPOINT: 'on', ESBUILD_WORK_FOLDER: path.join(caDir, 'work-no-network') },
    });
    expect(run.status, (run.stdout + run.stderr).slice(-2000)).toBe(0);
    expect(readdirSync(out).filter((f) => f.endsWith('.zip')).sort()).toEqual(['collect.zip', 'metrics.zip']);
  }, 120_000);

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
