import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

type Settings = {
  region: string;
  metricsEndpoint: 'on' | 'off';
  collect: { timeout: number; environment: Record<string, string>; packagePatterns: string[] };
  metrics: { environment: Record<string, string>; packagePatterns: string[] };
  parameters: string[];
  iamStatements: { Action: string[]; Resource: unknown[]; Condition?: unknown }[];
};
const { deploySettings, isLocal } = createRequire(import.meta.url)('../../scripts/deploy/settings.cjs') as {
  isLocal: (argv: string[]) => boolean;
  deploySettings: (env: Record<string, string | undefined>, at: { region?: string; stage: string; local: boolean; serviceDir: string }) => Settings;
};

const serviceDir = mkdtempSync(path.join(tmpdir(), 'xyn-deploy-settings-'));
afterAll(() => rmSync(serviceDir, { recursive: true, force: true }));

const BASE = { PUSHGATEWAY_URL: 'https://gw.example:9091' };
const deploy = (env: Record<string, string | undefined>, stage = 'prod') =>
  deploySettings({ ...BASE, ...env }, { region: 'eu-central-1', stage, local: false, serviceDir });

describe('deploy settings', () => {
  it('a deployed function carries parameter names, never a secret value from the deploy environment', () => {
    const s = deploy({ DATABASE_URL: 'postgres://u:pw-in-env@db/x', METRICS_ENDPOINT: 'on', METRICS_BEARER_TOKEN: 'tok-in-env' });
    expect(s.collect.environment).toEqual({
      PUSHGATEWAY_URL: BASE.PUSHGATEWAY_URL,
      DATABASE_URL_SSM_PARAMETER: '/xyn-metrics/prod/database-url',
    });
    expect(s.metrics.environment).toEqual({
      TICK_TIMEOUT_MS: '8000',
      DATABASE_URL_SSM_PARAMETER: '/xyn-metrics/prod/database-url',
      METRICS_BEARER_TOKEN_SSM_PARAMETER: '/xyn-metrics/prod/metrics-bearer-token',
    });
    expect(JSON.stringify(s)).not.toMatch(/pw-in-env|tok-in-env/);
  });

  it('the Pushgateway secret follows PUSHGATEWAY_AUTH; the metrics function never gets it', () => {
    const basic = deploy({ PUSHGATEWAY_AUTH: 'basic', PUSHGATEWAY_USERNAME: 'pusher' });
    expect(basic.collect.environment).toMatchObject({ PUSHGATEWAY_USERNAME: 'pusher', PUSHGATEWAY_PASSWORD_SSM_PARAMETER: '/xyn-metrics/prod/pushgateway-password' });
    expect(basic.collect.environment).not.toHaveProperty('PUSHGATEWAY_TOKEN_SSM_PARAMETER');
    const bearer = deploy({ PUSHGATEWAY_AUTH: 'bearer', METRICS_ENDPOINT: 'on', PUSHGATEWAY_USERNAME: 'ignored' });
    expect(bearer.collect.environment).toMatchObject({ PUSHGATEWAY_TOKEN_SSM_PARAMETER: '/xyn-metrics/prod/pushgateway-token' });
    expect(bearer.collect.environment).not.toHaveProperty('PUSHGATEWAY_USERNAME');
    expect(Object.keys(bearer.metrics.environment).filter((k) => k.startsWith('PUSH'))).toEqual([]);
    expect(() => deploy({ PUSHGATEWAY_AUTH: 'basic' })).toThrow(/PUSHGATEWAY_AUTH=basic needs PUSHGATEWAY_USERNAME/);
    expect(() => deploy({ PUSHGATEWAY_AUTH: 'token' })).toThrow(/PUSHGATEWAY_AUTH must be one of none, basic, bearer/);
  });

  it('the role reads exactly the parameters the functions name, in the one region, and decrypts only via SSM', () => {
    const s = deploy({ PUSHGATEWAY_AUTH: 'bearer', DATABASE_URL_SSM_PARAMETER: '/team/db-url' });
    expect(s.parameters).toEqual(['/team/db-url', '/xyn-metrics/prod/pushgateway-token']);
    expect(s.collect.environment.DATABASE_URL_SSM_PARAMETER).toBe('/team/db-url');
    const [ssm, kms] = s.iamStatements;
    expect(ssm!.Action).toEqual(['ssm:GetParameter', 'ssm:GetParameters']);
    expect(ssm!.Resource).toEqual([
      { 'Fn::Sub': 'arn:${AWS::Partition}:ssm:eu-central-1:${AWS::AccountId}:parameter/team/db-url' },
      { 'Fn::Sub': 'arn:${AWS::Partition}:ssm:eu-central-1:${AWS::AccountId}:parameter/xyn-metrics/prod/pushgateway-token' },
    ]);
    expect(kms!.Action).toEqual(['kms:Decrypt']);
    expect(kms!.Condition).toEqual({ StringEquals: { 'kms:ViaService': 'ssm.eu-central-1.amazonaws.com' } });
    expect(() => deploy({ DATABASE_URL_SSM_PARAMETER: 'db-url' })).toThrow(/DATABASE_URL_SSM_PARAMETER must be a full parameter name/);
  });

  it('the region is explicit: no default for a deploy', () => {
    expect(() => deploySettings(BASE, { region: undefined, stage: 'prod', local: false, serviceDir })).toThrow(/export AWS_REGION/);
    expect(() => deploySettings({}, { region: 'eu-west-1', stage: 'prod', local: false, serviceDir })).toThrow(/PUSHGATEWAY_URL \(or REMOTE_WRITE_URL\) must be set/);
  });

  it('the metrics function and its HTTP API only when asked for (always under serverless offline)', () => {
    expect(deploy({}).metricsEndpoint).toBe('off');
    expect(deploy({}).parameters).toEqual(['/xyn-metrics/prod/database-url']);
    expect(deploy({ METRICS_ENDPOINT: 'on' }).metricsEndpoint).toBe('on');
    expect(() => deploy({ METRICS_ENDPOINT: 'yes' })).toThrow(/METRICS_ENDPOINT must be one of on, off/);
    expect(deploySettings({}, { stage: 'dev', local: true, serviceDir }).metricsEndpoint).toBe('on');
  });

  it('knows a local run from a deploy by the command', () => {
    const argv = (...args: string[]) => ['node', 'serverless', ...args];
    expect(isLocal(argv('offline'))).toBe(true);
    expect(isLocal(argv('--stage', 'dev', 'offline', 'start'))).toBe(true);
    expect(isLocal(argv('invoke', 'local', '-f', 'collect'))).toBe(true);
    expect(isLocal(argv('deploy', '--stage', 'prod'))).toBe(false);
    expect(isLocal(argv('package'))).toBe(false);
    expect(isLocal(argv('invoke', '-f', 'collect'))).toBe(false);
  });

  it('serverless offline keeps plain local secrets: no parameter names, no SSM permission', () => {
    const s = deploySettings({ DATABASE_WS_PROXY: 'ws://127.0.0.1:1', PUSHGATEWAY_AUTH: 'bearer' }, { stage: 'dev', local: true, serviceDir });
    expect(Object.keys(s.collect.environment).filter((k) => k.endsWith('_SSM_PARAMETER'))).toEqual([]);
    expect(Object.keys(s.metrics.environment).filter((k) => k.endsWith('_SSM_PARAMETER'))).toEqual([]);
    expect(s.collect.environment.DATABASE_WS_PROXY).toBe('ws://127.0.0.1:1');
    expect(s.iamStatements).toEqual([]);
  });

  it('a remote wss:// proxy and the plain-text opt-in reach both deployed functions', () => {
    const s = deploy({ DATABASE_WS_PROXY: 'wss://proxy.example/v1', DATABASE_ALLOW_PLAINTEXT: 'true' });
    for (const fn of [s.collect, s.metrics]) {
      expect(fn.environment.DATABASE_WS_PROXY).toBe('wss://proxy.example/v1');
      expect(fn.environment.DATABASE_ALLOW_PLAINTEXT).toBe('true');
    }
  });

  it('the collect timeout follows SAMPLES_PER_INVOCATION, or COLLECT_TIMEOUT_SECONDS', () => {
    expect(deploy({}).collect.timeout).toBe(30);
    expect(deploy({ SAMPLES_PER_INVOCATION: '4' }).collect.timeout).toBe(70);
    expect(deploy({ SAMPLES_PER_INVOCATION: '2', SCHEDULE_PERIOD_SECONDS: '300' }).collect.timeout).toBe(310);
    expect(deploy({ SAMPLES_PER_INVOCATION: '4', COLLECT_TIMEOUT_SECONDS: '45' }).collect.timeout).toBe(45);
    expect(() => deploy({ COLLECT_TIMEOUT_SECONDS: '901' })).toThrow(/COLLECT_TIMEOUT_SECONDS must be a whole number from 1 to 900/);
  });

  it('a CA bundle inside the project is carried by the collect package and named by its path there', () => {
    writeFileSync(path.join(serviceDir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    writeFileSync(path.join(serviceDir, 'not-a-cert.txt'), 'hello');
    const s = deploy({ PUSHGATEWAY_CA_FILE: './ca.pem' });
    expect(s.collect.environment.PUSHGATEWAY_CA_FILE).toBe('ca.pem');
    expect(s.collect.packagePatterns).toEqual(['ca.pem']);
    expect(deploy({}).collect.packagePatterns).toEqual([]);
    expect(() => deploy({ PUSHGATEWAY_CA_FILE: '/etc/ssl/certs/x.pem' })).toThrow(/inside the project/);
    expect(() => deploy({ PUSHGATEWAY_CA_FILE: 'missing.pem' })).toThrow(/does not exist: missing.pem/);
    expect(() => deploy({ PUSHGATEWAY_CA_FILE: 'not-a-cert.txt' })).toThrow(/holds no PEM certificate/);
  });

  it('DATABASE_CA_FILE (e.g. the RDS CA bundle) is carried by both packages, with no variable: sslrootcert in DATABASE_URL names it', () => {
    writeFileSync(path.join(serviceDir, 'rds.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    const s = deploy({ DATABASE_CA_FILE: 'rds.pem' });
    expect(s.collect.packagePatterns).toEqual(['rds.pem']);
    expect(s.metrics.packagePatterns).toEqual(['rds.pem']);
    expect(s.collect.environment).not.toHaveProperty('DATABASE_CA_FILE');
    expect(deploy({}).metrics.packagePatterns).toEqual([]);
    expect(() => deploy({ DATABASE_CA_FILE: '/etc/ssl/certs/rds.pem' })).toThrow(/DATABASE_CA_FILE must be a file inside the project/);
  });

  it('remote write: its settings and secrets go to collect only; SigV4 may write to the one AMP workspace', () => {
    const arn = 'arn:aws:aps:eu-central-1:123456789012:workspace/ws-0123abcd';
    const s = deploySettings(
      { REMOTE_WRITE_URL: 'https://rw.example/api/v1/write', REMOTE_WRITE_AUTH: 'bearer', REMOTE_WRITE_SIGV4: 'true', AMP_WORKSPACE_ARN: arn, METRICS_ENDPOINT: 'on' },
      { region: 'eu-central-1', stage: 'prod', local: false, serviceDir },
    );
    expect(s.collect.environment).toMatchObject({
      REMOTE_WRITE_URL: 'https://rw.example/api/v1/write',
      REMOTE_WRITE_SIGV4: 'true',
      REMOTE_WRITE_TOKEN_SSM_PARAMETER: '/xyn-metrics/prod/remote-write-token',
    });
    expect(s.collect.environment).not.toHaveProperty('PUSHGATEWAY_URL');
    expect(Object.keys(s.metrics.environment).filter((k) => k.startsWith('REMOTE_WRITE'))).toEqual([]);
    expect(s.iamStatements.at(-1)).toEqual({ Effect: 'Allow', Action: ['aps:RemoteWrite'], Resource: [arn] });
    expect(deploy({}).iamStatements.flatMap((st) => st.Action)).not.toContain('aps:RemoteWrite');
    expect(() => deploy({ REMOTE_WRITE_SIGV4: 'true' })).toThrow(/REMOTE_WRITE_SIGV4=true needs AMP_WORKSPACE_ARN/);
    expect(deploy({ REMOTE_WRITE_AUTH: 'basic', REMOTE_WRITE_USERNAME: 'w' }).collect.environment).toMatchObject({
      REMOTE_WRITE_USERNAME: 'w',
      REMOTE_WRITE_PASSWORD_SSM_PARAMETER: '/xyn-metrics/prod/remote-write-password',
    });
  });

  it('passes through only the settings each function reads, when set', () => {
    const s = deploy({ METRICS_ENDPOINT: 'on', RUNS_TABLE: 'xyn.runs', PUSH_RETRIES: '3', SAMPLES_PER_INVOCATION: '' });
    expect(s.collect.environment).toMatchObject({ RUNS_TABLE: 'xyn.runs', PUSH_RETRIES: '3' });
    expect(s.collect.environment).not.toHaveProperty('SAMPLES_PER_INVOCATION');
    expect(s.metrics.environment).toMatchObject({ RUNS_TABLE: 'xyn.runs' });
    expect(s.metrics.environment).not.toHaveProperty('PUSH_RETRIES');
  });
});
