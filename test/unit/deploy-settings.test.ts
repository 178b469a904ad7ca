import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { deploySettings as computeSettings, isLocal, ROLES, type DeployAt, type DeploySettings, type Statement } from '../../scripts/deploy/settings';

/** The old call shape: `local` is serverless offline, anything else a deploy (validated). */
const deploySettings = (env: Record<string, string | undefined>, at: Omit<DeployAt, 'command'> & { local: boolean }) =>
  computeSettings(env, { ...at, command: at.local ? 'local' : 'deploy' });

type Role = { Type: string; Properties: { AssumeRolePolicyDocument: { Statement: any[] }; Policies: { PolicyName: string; PolicyDocument: { Statement: Statement[] } }[] } };
const role = (s: DeploySettings, which: keyof typeof ROLES) => s.roles[ROLES[which]] as Role | undefined;
/** Every statement of a role's policies. */
const statementsOf = (s: DeploySettings, which: keyof typeof ROLES) => role(s, which)!.Properties.Policies.flatMap((p) => p.PolicyDocument.Statement);
const actionsOf = (s: DeploySettings, which: keyof typeof ROLES) => statementsOf(s, which).flatMap((st) => st.Action);
/** The parameter names a role's ssm statement names, from its ARNs. */
const parametersOf = (s: DeploySettings, which: keyof typeof ROLES) =>
  statementsOf(s, which)
    .filter((st) => st.Action.includes('ssm:GetParameters'))
    .flatMap((st) => st.Resource.map((r) => (r as { 'Fn::Sub': string })['Fn::Sub'].replace(/^.*:parameter/, '')));

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
    const bearer = deploy({ PUSHGATEWAY_AUTH: 'bearer', METRICS_ENDPOINT: 'on' });
    expect(bearer.collect.environment).toMatchObject({ PUSHGATEWAY_TOKEN_SSM_PARAMETER: '/xyn-metrics/prod/pushgateway-token' });
    expect(bearer.collect.environment).not.toHaveProperty('PUSHGATEWAY_USERNAME');
    expect(Object.keys(bearer.metrics.environment).filter((k) => k.startsWith('PUSH'))).toEqual([]);
    expect(() => deploy({ PUSHGATEWAY_AUTH: 'basic' })).toThrow(/PUSHGATEWAY_AUTH=basic needs PUSHGATEWAY_USERNAME/);
    expect(() => deploy({ PUSHGATEWAY_AUTH: 'token' })).toThrow(/PUSHGATEWAY_AUTH must be one of none, basic, bearer/);
    // Alone, the username would be dropped and every push refused (issue 19).
    expect(() => deploy({ PUSHGATEWAY_AUTH: 'bearer', PUSHGATEWAY_USERNAME: 'pusher' })).toThrow(/PUSHGATEWAY_USERNAME is set but PUSHGATEWAY_AUTH is bearer/);
    expect(() => deploy({ PUSHGATEWAY_USERNAME: 'pusher' })).toThrow(/PUSHGATEWAY_USERNAME is set but PUSHGATEWAY_AUTH is none; set PUSHGATEWAY_AUTH=basic/);
  });

  it('the role reads exactly the parameters the functions name, in the one region, and decrypts only via SSM', () => {
    const s = deploy({ PUSHGATEWAY_AUTH: 'bearer', DATABASE_URL_SSM_PARAMETER: '/team/db-url' });
    expect(s.parameters).toEqual(['/team/db-url', '/xyn-metrics/prod/pushgateway-token']);
    expect(s.collect.environment.DATABASE_URL_SSM_PARAMETER).toBe('/team/db-url');
    const [ssm, kms] = statementsOf(s, 'collect').filter((st) => !st.Action.some((a) => a.startsWith('logs:')));
    // The one call the functions make (lib/runtime/secrets.ts: one GetParameters for every name).
    expect(ssm!.Action).toEqual(['ssm:GetParameters']);
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
    expect(s.roles).toEqual({});
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
    expect(() => deploy({ COLLECT_TIMEOUT_SECONDS: '901' })).toThrow(/COLLECT_TIMEOUT_SECONDS must be between 1 and 900/);
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

  it('RDS IAM authentication: both functions get it, the role may rds-db:connect as exactly that user of exactly that database', () => {
    const s = deploy({ DATABASE_IAM_AUTH: 'true', DATABASE_IAM_RESOURCE_ID: 'db-ABCDEFGHIJKLMNOPQRSTUVWXY0', DATABASE_IAM_USER: 'xyn_metrics', METRICS_ENDPOINT: 'on' });
    for (const fn of [s.collect, s.metrics]) {
      expect(fn.environment.DATABASE_IAM_AUTH).toBe('true');
      expect(fn.environment).not.toHaveProperty('DATABASE_IAM_RESOURCE_ID');
      expect(fn.environment).not.toHaveProperty('DATABASE_IAM_USER');
    }
    const statement = { Effect: 'Allow', Action: ['rds-db:connect'], Resource: [{ 'Fn::Sub': 'arn:${AWS::Partition}:rds-db:eu-central-1:${AWS::AccountId}:dbuser:db-ABCDEFGHIJKLMNOPQRSTUVWXY0/xyn_metrics' }] };
    // Each function's own role: both connect to the database.
    for (const which of ['collect', 'metrics'] as const) {
      expect(statementsOf(s, which).filter((st) => st.Action.includes('rds-db:connect')), which).toEqual([statement]);
    }
    // A database in another region than the stack: the token and the ARN name its region.
    const other = deploy({ DATABASE_IAM_AUTH: 'true', DATABASE_IAM_REGION: 'us-east-1', DATABASE_IAM_RESOURCE_ID: 'cluster-ABC123', DATABASE_IAM_USER: 'xyn' });
    expect(JSON.stringify(statementsOf(other, 'collect'))).toContain('rds-db:us-east-1:${AWS::AccountId}:dbuser:cluster-ABC123/xyn');
    expect(actionsOf(deploy({}), 'collect')).not.toContain('rds-db:connect');
    expect(() => deploy({ DATABASE_IAM_AUTH: 'true', DATABASE_IAM_USER: 'xyn' })).toThrow(/DATABASE_IAM_AUTH=true needs DATABASE_IAM_RESOURCE_ID, the database's resource id/);
    expect(() => deploy({ DATABASE_IAM_AUTH: 'true', DATABASE_IAM_RESOURCE_ID: 'mydb', DATABASE_IAM_USER: 'xyn' })).toThrow(/DATABASE_IAM_RESOURCE_ID/);
    expect(() => deploy({ DATABASE_IAM_AUTH: 'true', DATABASE_IAM_RESOURCE_ID: 'db-ABC' })).toThrow(/DATABASE_IAM_AUTH=true needs DATABASE_IAM_USER/);
    expect(() => deploy({ DATABASE_IAM_AUTH: 'true', DATABASE_IAM_RESOURCE_ID: 'db-ABC', DATABASE_IAM_USER: '*' })).toThrow(/DATABASE_IAM_USER/);
    expect(() => deploy({ DATABASE_IAM_RESOURCE_ID: 'db-ABC' })).toThrow(/DATABASE_IAM_RESOURCE_ID is set but DATABASE_IAM_AUTH is not true/);
    // What the function refuses, the deploy refuses: IAM tokens go over TCP with verify-full only.
    expect(() => deploy({ DATABASE_IAM_AUTH: 'true', DATABASE_IAM_RESOURCE_ID: 'db-ABC', DATABASE_IAM_USER: 'xyn', DATABASE_WS_PROXY: 'wss://proxy.example/v1' })).toThrow(
      /DATABASE_IAM_AUTH=true is for RDS and Aurora over TCP.*\(the collect function would refuse it/,
    );
  });

  it('remote write: its settings and secrets go to collect only; SigV4 may write to the one AMP workspace', () => {
    const arn = 'arn:aws:aps:eu-central-1:123456789012:workspace/ws-0123abcd';
    const s = deploySettings(
      { REMOTE_WRITE_URL: 'https://rw.example/api/v1/write', REMOTE_WRITE_SIGV4: 'true', AMP_WORKSPACE_ARN: arn, METRICS_ENDPOINT: 'on' },
      { region: 'eu-central-1', stage: 'prod', local: false, serviceDir },
    );
    expect(s.collect.environment).toMatchObject({
      REMOTE_WRITE_URL: 'https://rw.example/api/v1/write',
      REMOTE_WRITE_SIGV4: 'true',
    });
    expect(deploy({ REMOTE_WRITE_URL: 'https://rw.example/api/v1/write', REMOTE_WRITE_AUTH: 'bearer' }).collect.environment).toMatchObject({
      REMOTE_WRITE_TOKEN_SSM_PARAMETER: '/xyn-metrics/prod/remote-write-token',
    });
    // What the function refuses, the deploy refuses, in the function's words.
    expect(() => deploy({ REMOTE_WRITE_URL: 'https://rw.example/api/v1/write', REMOTE_WRITE_AUTH: 'bearer', REMOTE_WRITE_SIGV4: 'true', AMP_WORKSPACE_ARN: arn })).toThrow(
      /remote write takes one kind of auth; REMOTE_WRITE_TOKEN and REMOTE_WRITE_SIGV4 are both set/,
    );
    expect(s.collect.environment).not.toHaveProperty('PUSHGATEWAY_URL');
    expect(Object.keys(s.metrics.environment).filter((k) => k.startsWith('REMOTE_WRITE'))).toEqual([]);
    expect(statementsOf(s, 'collect').at(-1)).toEqual({ Effect: 'Allow', Action: ['aps:RemoteWrite'], Resource: [arn] });
    expect(actionsOf(s, 'metrics')).not.toContain('aps:RemoteWrite');
    expect(actionsOf(deploy({}), 'collect')).not.toContain('aps:RemoteWrite');
    expect(() => deploy({ REMOTE_WRITE_SIGV4: 'true' })).toThrow(/REMOTE_WRITE_SIGV4=true needs AMP_WORKSPACE_ARN/);
    expect(deploy({ REMOTE_WRITE_URL: 'https://rw.example/api/v1/write', REMOTE_WRITE_AUTH: 'basic', REMOTE_WRITE_USERNAME: 'w' }).collect.environment).toMatchObject({
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

describe('deploy settings from the settings table (issue 19)', () => {
  /** A valid value for every plain run-time setting a function reads; the test below fails when a new one has none. */
  const SAMPLE: Record<string, string> = {
    DATABASE_WS_PROXY: 'wss://proxy.example/v1',
    DATABASE_ALLOW_PLAINTEXT: 'true',
    // Off here: IAM authentication refuses DATABASE_WS_PROXY; its own test is above.
    DATABASE_IAM_AUTH: 'false',
    DATABASE_IAM_REGION: 'eu-west-1',
    RUNS_TABLE: 'xyn.runs',
    DB_STATEMENT_TIMEOUT_MS: '4000',
    DB_LOCK_TIMEOUT_MS: '1500',
    STATUS_ESTIMATE_ABOVE: 'off',
    STATUS_TOP_K: '12',
    PUSHGATEWAY_URL: 'https://gw.example:9091',
    PUSHGATEWAY_USERNAME: 'pusher',
    PUSHGATEWAY_CA_FILE: 'gw-ca.pem',
    PUSHGATEWAY_JOB: 'xyn_prod',
    PUSHGATEWAY_GROUPING: 'env=prod',
    REMOTE_WRITE_URL: 'https://rw.example/api/v1/push',
    REMOTE_WRITE_USERNAME: 'tenant',
    REMOTE_WRITE_SIGV4: 'false',
    REMOTE_WRITE_REGION: 'eu-west-1',
    REMOTE_WRITE_CA_FILE: 'rw-ca.pem',
    REMOTE_WRITE_JOB: 'xyn_rw',
    REMOTE_WRITE_LABELS: 'env=prod',
    TICK_TIMEOUT_MS: '20000',
    PUSH_TIMEOUT_MS: '4000',
    PUSH_RETRIES: '1',
    MAX_EVENT_AGE_SECONDS: '120',
    SECRETS_CACHE_SECONDS: '120',
    SECRETS_STALE_SECONDS: '1800',
    SAMPLES_PER_INVOCATION: '1',
    SCHEDULE_PERIOD_SECONDS: '60',
    HEARTBEAT_TABLE: 'xyn.heartbeats',
    HEARTBEAT_WORKER_COLUMN: 'worker',
    HEARTBEAT_AT_COLUMN: 'seen_at',
    HEARTBEAT_TTL_SECONDS: '90',
    BLUEPRINT_COLUMN: 'blueprint',
    RUN_STARTED_COLUMN: 'started_at',
    RUN_FINISHED_COLUMN: 'finished_at',
    FLOW_WINDOW_SECONDS: '600',
    BLUEPRINT_WINDOW_SECONDS: '1800',
    BLUEPRINT_TOP_K: '10',
  };

  it('every run-time setting can be deployed, and reaches exactly the functions that read it', async () => {
    const { SETTING_NAMES, setting } = await import('../../lib/config/settings');
    const plain = SETTING_NAMES.filter((n) => setting(n).scope === 'run' && !setting(n).secret);
    expect(plain.filter((n) => !(n in SAMPLE)), 'a plain run-time setting without a sample value here').toEqual([]);
    for (const file of ['gw-ca.pem', 'rw-ca.pem']) writeFileSync(path.join(serviceDir, file), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    const s = deploy({ ...SAMPLE, PUSHGATEWAY_AUTH: 'basic', REMOTE_WRITE_AUTH: 'basic', METRICS_ENDPOINT: 'on' });
    for (const name of plain) {
      const readBy = setting(name).readBy as readonly string[];
      expect(s.collect.environment[name], `${name} in collect`).toBe(readBy.includes('collect') ? SAMPLE[name] : undefined);
      // The metrics function's tick budget is METRICS_TICK_TIMEOUT_MS (a scrape gives up after 10 s).
      if (name !== 'TICK_TIMEOUT_MS') expect(s.metrics.environment[name], `${name} in metrics`).toBe(readBy.includes('metrics') ? SAMPLE[name] : undefined);
    }
    expect(s.metrics.environment.TICK_TIMEOUT_MS).toBe('8000');
  });

  it('refuses what the function would refuse, in the function\'s words', () => {
    expect(() => deploy({ SAMPLES_PER_INVOCATION: '0x2' })).toThrow(/^SAMPLES_PER_INVOCATION must be a whole number, got "0x2"/);
    expect(() => deploy({ RUNS_TABLE: 'runs; drop' })).toThrow(/^RUNS_TABLE must be a table name/);
    expect(() => deploy({ METRICS_ENDPOINT: 'on', HEARTBEAT_TTL_SECONDS: '5' })).toThrow(/^HEARTBEAT_TTL_SECONDS is set but HEARTBEAT_TABLE is not/);
    expect(() => deploy({ PUSHGATEWAY_GROUPING: 'status=prod' })).toThrow(/PUSHGATEWAY_GROUPING label "status" is a label the metrics carry themselves/);
    expect(() => deploy({ PUSH_DRY_RUN: 'true' })).toThrow(/PUSH_DRY_RUN is for local runs only/);
  });

  it('TICK_TIMEOUT_MS reaches collect and must fit under its timeout', () => {
    expect(deploy({ TICK_TIMEOUT_MS: '28000' }).collect.environment.TICK_TIMEOUT_MS).toBe('28000');
    expect(() => deploy({ TICK_TIMEOUT_MS: '29000' })).toThrow(/TICK_TIMEOUT_MS=29000 does not fit the collect function's timeout of 30 s/);
    expect(deploy({ TICK_TIMEOUT_MS: '50000', COLLECT_TIMEOUT_SECONDS: '60' }).collect.timeout).toBe(60);
    expect(() => deploy({ METRICS_ENDPOINT: 'on', METRICS_TICK_TIMEOUT_MS: '9000' })).toThrow(/METRICS_TICK_TIMEOUT_MS=9000 does not fit the metrics function's timeout of 10 s/);
    expect(() => deploy({ METRICS_TICK_TIMEOUT_MS: '5000' })).toThrow(/METRICS_TICK_TIMEOUT_MS is set but METRICS_ENDPOINT is not on/);
  });

  it('refuses credentials or a query string in a URL setting, naming the setting and the right way (issue 20)', () => {
    const message = (env: Record<string, string>) => {
      try {
        deploy(env);
      } catch (error) {
        return (error as Error).message;
      }
      throw new Error('no error');
    };
    const userinfo = message({ PUSHGATEWAY_URL: 'https://pusher:s3cret-in-url@gw.example:9091' });
    expect(userinfo).toMatch(/^PUSHGATEWAY_URL must not carry credentials .*use PUSHGATEWAY_AUTH=basic with PUSHGATEWAY_USERNAME/);
    expect(userinfo).not.toContain('s3cret-in-url');
    expect(message({ REMOTE_WRITE_URL: 'https://t:k@rw.example/api/v1/push' })).toMatch(/^REMOTE_WRITE_URL must not carry credentials/);
    expect(message({ REMOTE_WRITE_URL: 'https://rw.example/api/v1/push?token=abc' })).toMatch(/^REMOTE_WRITE_URL must not carry a query string/);
    expect(message({ DATABASE_WS_PROXY: 'wss://u:p@proxy.example/v1' })).toMatch(/^DATABASE_WS_PROXY must not carry credentials/);
    expect(message({ DATABASE_WS_PROXY: '127.0.0.1:8089/v1' })).toMatch(/^DATABASE_WS_PROXY of a deployed function must be a wss:\/\/ proxy/);
  });
});

describe('stage settings (stages/<stage>.env)', () => {
  const at = (stageSettings: Record<string, string>, command: DeployAt['command'] = 'deploy', region?: string) =>
    ({ region, stage: 'prod', command, serviceDir, stageSettings, stageFile: 'stages/prod.env' }) as DeployAt;

  it('reads KEY=value lines, refuses unknown names and secrets, and names the line', async () => {
    const { parseStageFile } = await import('../../scripts/deploy/settings');
    expect(parseStageFile('# prod\nAWS_REGION=eu-west-1\n\nPUSHGATEWAY_URL="https://gw.example:9091"\nDATABASE_URL_SSM_PARAMETER=/team/db\n', 'stages/prod.env')).toEqual({
      AWS_REGION: 'eu-west-1',
      PUSHGATEWAY_URL: 'https://gw.example:9091',
      DATABASE_URL_SSM_PARAMETER: '/team/db',
    });
    expect(() => parseStageFile('PUSHGATEWAY_ULR=https://x', 'stages/prod.env')).toThrow(/^stages\/prod.env:1: PUSHGATEWAY_ULR is not a setting of xyn-metrics/);
    expect(() => parseStageFile('AWS_REGION=eu-west-1\nPUSHGATEWAY_PASSWORD=hunter2', 'stages/prod.env')).toThrow(/^stages\/prod.env:2: PUSHGATEWAY_PASSWORD is a secret; it lives in SSM/);
    expect(() => parseStageFile('export FOO', 'stages/prod.env')).toThrow(/:1: expected NAME=value/);
  });

  it('takes the stage file, with the environment over it; a different ambient AWS_REGION is an error, --region chooses', () => {
    const file = { AWS_REGION: 'eu-west-1', PUSHGATEWAY_URL: 'https://gw.example:9091', METRICS_ENDPOINT: 'on', PUSHGATEWAY_AUTH: 'bearer' };
    const s = computeSettings({ PUSHGATEWAY_URL: 'https://other.example:9091' }, at(file));
    expect(s.region).toBe('eu-west-1');
    expect(s.metricsEndpoint).toBe('on');
    expect(s.collect.environment).toMatchObject({ PUSHGATEWAY_URL: 'https://other.example:9091', PUSHGATEWAY_TOKEN_SSM_PARAMETER: '/xyn-metrics/prod/pushgateway-token' });
    expect(() => computeSettings({ AWS_REGION: 'us-east-1' }, at(file, 'deploy', 'us-east-1'))).toThrow(/AWS_REGION is eu-west-1 in stages\/prod.env but us-east-1 in the environment/);
    expect(computeSettings({}, at(file, 'deploy', 'eu-central-1')).region).toBe('eu-central-1');
  });

  it('every other command works without deploy-only settings', () => {
    const s = computeSettings({}, at({ AWS_REGION: 'eu-west-1' }, 'other'));
    expect(s.region).toBe('eu-west-1');
    expect(s.collect.environment).toEqual({ DATABASE_URL_SSM_PARAMETER: '/xyn-metrics/prod/database-url' });
    expect(() => computeSettings({}, at({ AWS_REGION: 'eu-west-1' }, 'package'))).toThrow(/PUSHGATEWAY_URL \(or REMOTE_WRITE_URL\) must be set, in stages\/prod.env/);
  });
});

describe('one role per function (issue 20)', () => {
  const logGroup = (fn: string) => `arn:\${AWS::Partition}:logs:\${AWS::Region}:\${AWS::AccountId}:log-group:/aws/lambda/xyn-metrics-prod-${fn}`;

  it('collect\'s role: its own log group, its own secrets, decrypt via SSM; nothing of the metrics function', () => {
    const s = deploy({ PUSHGATEWAY_AUTH: 'bearer', METRICS_ENDPOINT: 'on' });
    expect(statementsOf(s, 'collect')).toEqual([
      { Effect: 'Allow', Action: ['logs:CreateLogGroup', 'logs:CreateLogStream'], Resource: [{ 'Fn::Sub': `${logGroup('collect')}:*` }] },
      { Effect: 'Allow', Action: ['logs:PutLogEvents'], Resource: [{ 'Fn::Sub': `${logGroup('collect')}:*:*` }] },
      {
        Effect: 'Allow',
        Action: ['ssm:GetParameters'],
        Resource: ['database-url', 'pushgateway-token'].map((name) => ({ 'Fn::Sub': `arn:\${AWS::Partition}:ssm:eu-central-1:\${AWS::AccountId}:parameter/xyn-metrics/prod/${name}` })),
      },
      {
        Effect: 'Allow',
        Action: ['kms:Decrypt'],
        Resource: [{ 'Fn::Sub': 'arn:${AWS::Partition}:kms:eu-central-1:${AWS::AccountId}:key/*' }],
        Condition: { StringEquals: { 'kms:ViaService': 'ssm.eu-central-1.amazonaws.com' } },
      },
    ]);
    const trust = role(s, 'collect')!.Properties.AssumeRolePolicyDocument.Statement;
    expect(trust).toEqual([{ Effect: 'Allow', Principal: { Service: ['lambda.amazonaws.com'] }, Action: ['sts:AssumeRole'] }]);
  });

  it('the metrics function\'s role: the database URL and its token, its own log group; never a sink\'s secret or remote write', () => {
    const arn = 'arn:aws:aps:eu-central-1:123456789012:workspace/ws-0123abcd';
    const s = deploy({
      PUSHGATEWAY_AUTH: 'basic', PUSHGATEWAY_USERNAME: 'p', METRICS_ENDPOINT: 'on',
      REMOTE_WRITE_URL: 'https://aps-workspaces.eu-central-1.amazonaws.com/workspaces/ws-0123abcd/api/v1/remote_write', REMOTE_WRITE_SIGV4: 'true', AMP_WORKSPACE_ARN: arn,
    });
    expect(parametersOf(s, 'metrics')).toEqual(['/xyn-metrics/prod/database-url', '/xyn-metrics/prod/metrics-bearer-token']);
    expect(parametersOf(s, 'collect')).toEqual(['/xyn-metrics/prod/database-url', '/xyn-metrics/prod/pushgateway-password']);
    expect(actionsOf(s, 'collect')).toContain('aps:RemoteWrite');
    expect(actionsOf(s, 'metrics').sort()).toEqual(['kms:Decrypt', 'logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents', 'ssm:GetParameters']);
    const resources = JSON.stringify(statementsOf(s, 'metrics'));
    expect(resources).toContain('/aws/lambda/xyn-metrics-prod-metrics:');
    expect(resources).not.toContain('-collect');
    expect(JSON.stringify(statementsOf(s, 'collect'))).not.toContain('-metrics:');
  });

  it('no metrics role without the metrics function; the scheduler\'s role only with COLLECT_SCHEDULE_METHOD=scheduler', () => {
    expect(Object.keys(deploy({}).roles)).toEqual([ROLES.collect]);
    expect(Object.keys(deploy({ METRICS_ENDPOINT: 'on' }).roles).sort()).toEqual([ROLES.collect, ROLES.metrics].sort());
    const s = deploy({ COLLECT_SCHEDULE_METHOD: 'scheduler' });
    expect(Object.keys(s.roles).sort()).toEqual([ROLES.collect, ROLES.scheduler].sort());
  });

  it('EventBridge Scheduler\'s role may only invoke collect, and only Scheduler in this account may assume it', () => {
    const s = deploy({ COLLECT_SCHEDULE_METHOD: 'scheduler' });
    expect(statementsOf(s, 'scheduler')).toEqual([{ Effect: 'Allow', Action: ['lambda:InvokeFunction'], Resource: [{ 'Fn::GetAtt': ['CollectLambdaFunction', 'Arn'] }] }]);
    expect(role(s, 'scheduler')!.Properties.AssumeRolePolicyDocument.Statement).toEqual([
      {
        Effect: 'Allow',
        Principal: { Service: ['scheduler.amazonaws.com'] },
        Action: ['sts:AssumeRole'],
        Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
      },
    ]);
    // The functions' roles stay Lambda's alone.
    expect(JSON.stringify(role(s, 'collect')!.Properties.AssumeRolePolicyDocument)).not.toContain('scheduler');
    expect(actionsOf(s, 'collect')).not.toContain('lambda:InvokeFunction');
  });

  it('every other command computes the same roles without refusing what only a deploy needs', () => {
    const s = computeSettings({}, { region: 'eu-west-1', stage: 'prod', command: 'other', serviceDir });
    expect(parametersOf(s, 'collect')).toEqual(['/xyn-metrics/prod/database-url']);
  });
});

describe('VPC (issue 20)', () => {
  const SUBNETS = 'subnet-0a1b2c3d4e5f60718, subnet-12345678';
  const GROUPS = 'sg-0123456789abcdef0';

  it('both settings put both functions in those subnets with those security groups; neither is no VPC', () => {
    const s = deploy({ VPC_SUBNET_IDS: SUBNETS, VPC_SECURITY_GROUP_IDS: GROUPS, METRICS_ENDPOINT: 'on' });
    expect(s.vpc).toEqual({ subnetIds: ['subnet-0a1b2c3d4e5f60718', 'subnet-12345678'], securityGroupIds: ['sg-0123456789abcdef0'] });
    expect(deploy({}).vpc).toBe(false);
    expect(deploy({ VPC_SUBNET_IDS: '', VPC_SECURITY_GROUP_IDS: ' ' }).vpc).toBe(false);
  });

  it('in a VPC each function\'s role may manage its network interfaces (the EC2 actions Lambda needs), outside one it may not', () => {
    const eni = ['ec2:CreateNetworkInterface', 'ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets', 'ec2:DeleteNetworkInterface', 'ec2:AssignPrivateIpAddresses', 'ec2:UnassignPrivateIpAddresses'];
    const s = deploy({ VPC_SUBNET_IDS: SUBNETS, VPC_SECURITY_GROUP_IDS: GROUPS, METRICS_ENDPOINT: 'on', COLLECT_SCHEDULE_METHOD: 'scheduler' });
    for (const fn of ['collect', 'metrics'] as const) {
      expect(statementsOf(s, fn).filter((st) => st.Action.some((a) => a.startsWith('ec2:')))).toEqual([{ Effect: 'Allow', Action: eni, Resource: ['*'] }]);
      // No logs:* on every group, as AWSLambdaVPCAccessExecutionRole would give.
      expect(statementsOf(s, fn).filter((st) => st.Resource.includes('*')).flatMap((st) => st.Action)).toEqual(eni);
    }
    expect(actionsOf(s, 'scheduler')).toEqual(['lambda:InvokeFunction']);
    const plain = deploy({ METRICS_ENDPOINT: 'on' });
    for (const fn of ['collect', 'metrics'] as const) expect(actionsOf(plain, fn).filter((a) => a.startsWith('ec2:'))).toEqual([]);
  });

  it('refuses one without the other, ids of the wrong shape, too many, and one twice, naming the setting', () => {
    expect(() => deploy({ VPC_SUBNET_IDS: SUBNETS })).toThrow(/^VPC_SUBNET_IDS is set but VPC_SECURITY_GROUP_IDS is not/);
    expect(() => deploy({ VPC_SECURITY_GROUP_IDS: GROUPS })).toThrow(/^VPC_SECURITY_GROUP_IDS is set but VPC_SUBNET_IDS is not/);
    expect(() => deploy({ VPC_SUBNET_IDS: 'subnet-0a1b2c3d4e5f60718,sg-12345678', VPC_SECURITY_GROUP_IDS: GROUPS })).toThrow(/^VPC_SUBNET_IDS: "sg-12345678" is not a subnet id/);
    expect(() => deploy({ VPC_SUBNET_IDS: SUBNETS, VPC_SECURITY_GROUP_IDS: 'sg-xyz' })).toThrow(/^VPC_SECURITY_GROUP_IDS: "sg-xyz" is not a security group id/);
    expect(() => deploy({ VPC_SUBNET_IDS: 'subnet-12345678 subnet-87654321', VPC_SECURITY_GROUP_IDS: GROUPS })).toThrow(/is not a subnet id/);
    const six = Array.from({ length: 6 }, (_, i) => `sg-0000000${i}`).join(',');
    expect(() => deploy({ VPC_SUBNET_IDS: SUBNETS, VPC_SECURITY_GROUP_IDS: six })).toThrow(/^VPC_SECURITY_GROUP_IDS takes at most 5 items, got 6/);
    expect(() => deploy({ VPC_SUBNET_IDS: 'subnet-12345678,subnet-12345678', VPC_SECURITY_GROUP_IDS: GROUPS })).toThrow(/^VPC_SUBNET_IDS names subnet-12345678 twice/);
  });

  it('outside deploy and package a half-set pair is no VPC, not an error', () => {
    const s = computeSettings({ VPC_SUBNET_IDS: SUBNETS }, { region: 'eu-west-1', stage: 'prod', command: 'other', serviceDir });
    expect(s.vpc).toBe(false);
  });
});

describe('reserved concurrency and the scrape throttle (issue 20, issue 25)', () => {
  it('collect reserves 1 and the metrics function 2 by default; none reserves nothing', () => {
    expect(deploy({}).reservedConcurrency).toEqual({ collect: { reservedConcurrency: 1 } });
    expect(deploy({ METRICS_ENDPOINT: 'on' }).reservedConcurrency).toEqual({ collect: { reservedConcurrency: 1 }, metrics: { reservedConcurrency: 2 } });
    expect(deploy({ COLLECT_RESERVED_CONCURRENCY: 'none', METRICS_ENDPOINT: 'on', METRICS_RESERVED_CONCURRENCY: 'NONE' }).reservedConcurrency).toEqual({});
    expect(deploy({ COLLECT_RESERVED_CONCURRENCY: '3', METRICS_ENDPOINT: 'on', METRICS_RESERVED_CONCURRENCY: 'none' }).reservedConcurrency).toEqual({ collect: { reservedConcurrency: 3 } });
  });

  it('0 is refused (to Lambda it means run nothing), and so is anything but a number or none', () => {
    expect(() => deploy({ COLLECT_RESERVED_CONCURRENCY: '0' })).toThrow(/^COLLECT_RESERVED_CONCURRENCY=0 would stop every invocation .*set COLLECT_RESERVED_CONCURRENCY=none/);
    expect(() => deploy({ METRICS_ENDPOINT: 'on', METRICS_RESERVED_CONCURRENCY: '0' })).toThrow(/^METRICS_RESERVED_CONCURRENCY=0 would stop every invocation/);
    expect(() => deploy({ COLLECT_RESERVED_CONCURRENCY: 'off' })).toThrow(/^COLLECT_RESERVED_CONCURRENCY must be a whole number or "none", got "off"/);
    expect(() => deploy({ COLLECT_RESERVED_CONCURRENCY: '1001' })).toThrow(/^COLLECT_RESERVED_CONCURRENCY must be between 1 and 1000/);
  });

  it('the HTTP API throttle has defaults and bounds, and belongs to the metrics function', () => {
    expect(deploy({ METRICS_ENDPOINT: 'on' }).metrics.throttle).toEqual({ rate: 1, burst: 5 });
    expect(deploy({ METRICS_ENDPOINT: 'on', METRICS_THROTTLE_RATE: '20', METRICS_THROTTLE_BURST: '40' }).metrics.throttle).toEqual({ rate: 20, burst: 40 });
    expect(() => deploy({ METRICS_ENDPOINT: 'on', METRICS_THROTTLE_RATE: '0' })).toThrow(/^METRICS_THROTTLE_RATE must be between 1 and 10000, got 0/);
    expect(() => deploy({ METRICS_ENDPOINT: 'on', METRICS_THROTTLE_BURST: '5001' })).toThrow(/^METRICS_THROTTLE_BURST must be between 1 and 5000/);
    for (const name of ['METRICS_RESERVED_CONCURRENCY', 'METRICS_THROTTLE_RATE', 'METRICS_THROTTLE_BURST']) {
      expect(() => deploy({ [name]: '3' })).toThrow(new RegExp(`^${name} is set but METRICS_ENDPOINT is not on`));
    }
  });
});

describe('the committed example of a prod stage (stages/prod.example.env)', () => {
  const root = path.resolve(import.meta.dirname, '../..');

  it('parses, deploys as it is (with the environment empty), and holds no secret', async () => {
    const { parseStageFile } = await import('../../scripts/deploy/settings');
    const file = 'stages/prod.example.env';
    const example = parseStageFile(readFileSync(path.join(root, file), 'utf8'), file);
    expect(example).toMatchObject({ AWS_REGION: 'eu-west-1', PUSHGATEWAY_URL: 'https://pushgateway.example.com', PUSHGATEWAY_AUTH: 'bearer' });
    const s = computeSettings({}, { stage: 'prod', command: 'deploy', serviceDir: root, stageSettings: example, stageFile: file });
    expect(s.collect.environment).toMatchObject({ PUSHGATEWAY_TOKEN_SSM_PARAMETER: '/xyn-metrics/prod/pushgateway-token' });
    expect(s.reservedConcurrency).toEqual({ collect: { reservedConcurrency: 1 } });
  });

  it('its commented-out lines are valid settings too, once uncommented', async () => {
    const { parseStageFile } = await import('../../scripts/deploy/settings');
    const source = readFileSync(path.join(root, 'stages/prod.example.env'), 'utf8');
    const uncommented = source
      .split('\n')
      .map((line) => line.replace(/^# ?(?=[A-Z][A-Z0-9_]*=)/, ''))
      // The CA bundles are the user's files, not in the repository.
      .filter((line) => !/^(PUSHGATEWAY|DATABASE)_CA_FILE=/.test(line))
      .join('\n');
    const settings = parseStageFile(uncommented, 'stages/prod.example.env');
    expect(Object.keys(settings)).toEqual(expect.arrayContaining(['VPC_SUBNET_IDS', 'VPC_SECURITY_GROUP_IDS', 'DATABASE_URL_SSM_PARAMETER', 'METRICS_THROTTLE_RATE']));
    const s = computeSettings({}, { stage: 'prod', command: 'deploy', serviceDir: root, stageSettings: { ...settings, METRICS_ENDPOINT: 'on' }, stageFile: 'x' });
    expect(s.vpc).not.toBe(false);
  });
});
