/**
 * What serverless.yml deploys, computed from the stage's settings and the
 * settings table (lib/config/settings.ts). serverless.yml reads it through
 * ${file(./scripts/deploy/settings.cjs)}, a shim that loads this file; the
 * rules are one pure function, deploySettings, unit-tested in
 * test/unit/deploy-settings.test.ts.
 *
 * - The plain settings of a stage live in stages/<stage>.env (committed);
 *   variables of the deploy environment override them. Secrets never live
 *   there: a deployed function gets X_SSM_PARAMETER (the name of a SecureString
 *   parameter) for each secret X it uses and reads the value at run time
 *   (lib/runtime/secrets.ts); secret values exported in the deploy environment
 *   are ignored.
 * - `deploy` and `package` validate: every run-time setting with the very
 *   parser the function runs (parseConfig, secrets stood in for), so a value a
 *   function would refuse is refused here with the same words; deploy-only
 *   settings by the table; and what only a deploy can know (a URL that would
 *   put credentials into the template, a tick that does not fit its function).
 *   Every other command (print, info, logs, remove, invoke) needs no deploy-only setting.
 * - Each function gets exactly the run-time settings it reads that are set.
 * - Under `serverless offline` (local) the handlers get plain X from the local
 *   environment, the metrics function is always there, nothing is validated.
 */

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../../lib/config/errors';
import { parseConfig } from '../../lib/config/parse';
import { withPlaceholders } from '../../lib/config/placeholders';
import { choice, flag, integer, integerOrWord, list, optionalInteger, text, type Env } from '../../lib/config/read';
import {
  SETTING_NAMES,
  SETTINGS,
  setting,
  settingsReadBy,
  SSM_PARAMETER_SUFFIX,
  type FunctionName,
  type SettingName,
} from '../../lib/config/settings';
import { EXIT_MARGIN_MS } from '../../lib/runtime/handler';

const SERVICE = 'xyn-metrics';

/** Lambda's hard stop for one tick (TICK_TIMEOUT_MS, 25 s by default, stays below it). */
const SINGLE_TICK_TIMEOUT_SECONDS = 30;
/** With SAMPLES_PER_INVOCATION > 1 an invocation runs until its schedule period ends; room to log and return. */
const SAMPLING_MARGIN_SECONDS = 10;
const LAMBDA_MAX_TIMEOUT_SECONDS = 900;
/** A scrape gives up after 10 s by default; the metrics function's timeout. */
export const METRICS_TIMEOUT_SECONDS = 10;

export class DeploySettingsError extends Error {
  override name = 'DeploySettingsError';
}

export type Command = 'deploy' | 'package' | 'local' | 'other';

export interface DeployAt {
  region?: string | undefined;
  stage: string;
  command: Command;
  serviceDir: string;
  /** The stage's committed settings (stages/<stage>.env), parsed; the environment overrides them. */
  stageSettings?: Env;
  /** Where those came from, for messages. */
  stageFile?: string;
}

export interface FunctionSettings {
  environment: Record<string, string>;
  packagePatterns: string[];
}

/** The framework's `vpc` of a function: both functions run in the same subnets with the same security groups. */
export interface Vpc {
  subnetIds: string[];
  securityGroupIds: string[];
}

/** An IAM policy statement as CloudFormation takes it. */
export interface Statement {
  Effect: 'Allow';
  Action: string[];
  Resource: unknown[];
  Condition?: Record<string, unknown>;
}

/** The CloudFormation logical ids of the roles (serverless.yml names them in `role:` and `roleArn:`). */
export const ROLES = { collect: 'CollectExecutionRole', metrics: 'MetricsExecutionRole', scheduler: 'CollectSchedulerRole' } as const;

export interface DeploySettings {
  region: string;
  /** COLLECT_SCHEDULE and COLLECT_SCHEDULE_METHOD, from the stage's settings like the rest. */
  schedule: string;
  scheduleMethod: string;
  metricsEndpoint: 'on' | 'off';
  collect: FunctionSettings & { timeout: number };
  metrics: FunctionSettings & { throttle: { rate: number; burst: number } };
  /** false (the framework's "no VPC" for a function) or the subnets and security groups of both functions. */
  vpc: false | Vpc;
  /**
   * Merged into `functions` (serverless.yml): reservedConcurrency per deployed
   * function that reserves any; a function with none is absent, so the
   * template has no ReservedConcurrentExecutions for it.
   */
  reservedConcurrency: Partial<Record<FunctionName, { reservedConcurrency: number }>>;
  /** The SSM parameters of every deployed function. */
  parameters: string[];
  /** CloudFormation resources: one execution role per deployed function, and the scheduler's invoke-only role. */
  roles: Record<string, unknown>;
}

// ---------------------------------------------------------------- stage files

/** stages/<stage>.env: KEY=value lines, # comments; every key a setting of the table (or X_SSM_PARAMETER). */
export function parseStageFile(source: string, file: string): Env {
  const out: Env = {};
  source.split(/\r?\n/).forEach((line, index) => {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const match = /^([A-Z][A-Z0-9_]*)\s*=\s*(.*)$/.exec(trimmed);
    if (!match) throw new DeploySettingsError(`${file}:${index + 1}: expected NAME=value, got "${trimmed.slice(0, 60)}"`);
    const [, name, rawValue] = match as unknown as [string, string, string];
    const value = /^(['"])(.*)\1$/.exec(rawValue)?.[2] ?? rawValue;
    const base = name.endsWith(SSM_PARAMETER_SUFFIX) ? name.slice(0, -SSM_PARAMETER_SUFFIX.length) : undefined;
    if (base !== undefined ? setting(base as SettingName)?.secret !== true : !(name in SETTINGS)) {
      throw new DeploySettingsError(`${file}:${index + 1}: ${name} is not a setting of xyn-metrics (README, "Configuration")`);
    }
    if (base === undefined && setting(name as SettingName).secret) {
      throw new DeploySettingsError(`${file}:${index + 1}: ${name} is a secret; it lives in SSM Parameter Store, never in a committed file (README, "Deploy")`);
    }
    if (name in out) throw new DeploySettingsError(`${file}:${index + 1}: ${name} is set twice`);
    out[name] = value;
  });
  return out;
}

export function readStageFile(serviceDir: string, stage: string): { settings: Env; file: string } | undefined {
  if (!/^[A-Za-z0-9-]+$/.test(stage)) throw new DeploySettingsError(`the stage must be letters, digits and dashes, got "${stage.slice(0, 40)}"`);
  const file = path.join('stages', `${stage}.env`);
  const absolute = path.join(serviceDir, file);
  if (!existsSync(absolute)) return undefined;
  return { settings: parseStageFile(readFileSync(absolute, 'utf8'), file), file };
}

// ---------------------------------------------------------------- rules

function fail(error: unknown): never {
  if (error instanceof ConfigError) throw new DeploySettingsError(error.message);
  throw error;
}

/** Read a deploy-time setting through the table's readers; a bad value is the same ConfigError wording. */
function read<T>(reader: () => T): T {
  try {
    return reader();
  } catch (error) {
    fail(error);
  }
}

/** The SSM parameter name for secret X: X_SSM_PARAMETER from the settings, or /xyn-metrics/<stage>/<name>. */
function parameterName(settings: Env, variable: SettingName, stage: string): string {
  const name = text(settings, `${variable}${SSM_PARAMETER_SUFFIX}`) ?? `/${SERVICE}/${stage}/${setting(variable).parameter}`;
  if (!/^\/[A-Za-z0-9_.\-/]+$/.test(name)) {
    throw new DeploySettingsError(`${variable}${SSM_PARAMETER_SUFFIX} must be a full parameter name starting with "/", got ${JSON.stringify(name)}`);
  }
  return name;
}

type Sink = 'PUSHGATEWAY' | 'REMOTE_WRITE';

/**
 * The secrets a sink needs: <sink>_AUTH=basic (username a plain setting,
 * password in SSM), bearer (token in SSM) or none. A username without
 * AUTH=basic would be dropped and every push refused: an error.
 */
function sinkSecrets(settings: Env, sink: Sink): SettingName[] {
  const auth = read(() => choice(settings, `${sink}_AUTH`));
  const username = text(settings, `${sink}_USERNAME`);
  if (auth === 'basic' && username === undefined) {
    throw new DeploySettingsError(`${sink}_AUTH=basic needs ${sink}_USERNAME (the password is read from SSM)`);
  }
  if (auth !== 'basic' && username !== undefined) {
    throw new DeploySettingsError(`${sink}_USERNAME is set but ${sink}_AUTH is ${auth}; set ${sink}_AUTH=basic (the password is then read from SSM) or unset ${sink}_USERNAME`);
  }
  if (auth === 'basic') return [`${sink}_PASSWORD`];
  if (auth === 'bearer') return [`${sink}_TOKEN`];
  return [];
}

/**
 * Deployed, a URL setting is written into the function's configuration and the
 * CloudFormation template, where anybody who may read the stack reads it:
 * credentials (userinfo, a query string) must come from an auth setting and SSM.
 */
function checkUrlSettings(settings: Env): void {
  const how: Record<string, string> = {
    PUSHGATEWAY_URL: 'PUSHGATEWAY_AUTH=basic with PUSHGATEWAY_USERNAME (the password in SSM …/pushgateway-password), or PUSHGATEWAY_AUTH=bearer (the token in SSM …/pushgateway-token)',
    REMOTE_WRITE_URL: 'REMOTE_WRITE_AUTH=basic with REMOTE_WRITE_USERNAME (the password in SSM …/remote-write-password), REMOTE_WRITE_AUTH=bearer, or REMOTE_WRITE_SIGV4=true',
    DATABASE_WS_PROXY: 'the database credentials in DATABASE_URL, which is read from SSM',
  };
  for (const name of ['PUSHGATEWAY_URL', 'REMOTE_WRITE_URL', 'DATABASE_WS_PROXY'] as const) {
    const raw = text(settings, name);
    if (raw === undefined) continue;
    if (name === 'DATABASE_WS_PROXY' && !/^wss:\/\//i.test(raw)) {
      throw new DeploySettingsError('DATABASE_WS_PROXY of a deployed function must be a wss:// proxy: the plain-text bridge (host:port) serves a loopback database on your own machine only');
    }
    // Never echo the value: it may hold a password.
    const userinfo = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(raw);
    const query = /^[^#]*\?/.test(raw);
    if (userinfo || query) {
      throw new DeploySettingsError(
        `${name} must not carry ${userinfo ? 'credentials (user:password@)' : 'a query string'}: a deploy writes it into the function's configuration and the CloudFormation template; use ${how[name]}`,
      );
    }
  }
}

/** A CA bundle setting: a PEM file inside the project (the package can only carry files from here), as its path there. */
function caBundle(settings: Env, name: 'PUSHGATEWAY_CA_FILE' | 'REMOTE_WRITE_CA_FILE' | 'DATABASE_CA_FILE', serviceDir: string): string | undefined {
  const file = text(settings, name);
  if (file === undefined) return undefined;
  const relative = path.relative(serviceDir, path.resolve(serviceDir, file));
  if (relative.startsWith('..') || path.isAbsolute(relative)) {
    throw new DeploySettingsError(`${name} must be a file inside the project so the package can carry it, got ${file}`);
  }
  const absolute = path.join(serviceDir, relative);
  if (!existsSync(absolute)) throw new DeploySettingsError(`${name} does not exist: ${file}`);
  if (!readFileSync(absolute, 'utf8').includes('-----BEGIN CERTIFICATE-----')) {
    throw new DeploySettingsError(`${name} holds no PEM certificate (-----BEGIN CERTIFICATE-----): ${file}`);
  }
  return relative.split(path.sep).join('/');
}

/** With REMOTE_WRITE_SIGV4=true (Amazon Managed Service for Prometheus) the role may aps:RemoteWrite to the one workspace. */
function remoteWriteWorkspace(settings: Env): string | undefined {
  const sigv4 = ['true', '1'].includes(String(text(settings, 'REMOTE_WRITE_SIGV4') ?? '').toLowerCase());
  const arn = text(settings, 'AMP_WORKSPACE_ARN');
  if (!sigv4) {
    if (arn !== undefined) throw new DeploySettingsError('AMP_WORKSPACE_ARN is set but REMOTE_WRITE_SIGV4 is not true');
    return undefined;
  }
  if (arn === undefined || !/^arn:aws[a-z-]*:aps:[a-z0-9-]+:\d{12}:workspace\/[\w-]+$/.test(arn)) {
    throw new DeploySettingsError(`REMOTE_WRITE_SIGV4=true needs AMP_WORKSPACE_ARN, the workspace's ARN (arn:aws:aps:<region>:<account>:workspace/<id>), got ${JSON.stringify(arn ?? '')}`);
  }
  return arn;
}

/**
 * With DATABASE_IAM_AUTH=true (RDS IAM database authentication) the role may
 * rds-db:connect as exactly one database user of exactly one database:
 * arn:aws:rds-db:<region>:<account>:dbuser:<resource id>/<user>. The resource
 * id is the instance's DbiResourceId (db-…), an Aurora cluster's resource id
 * (cluster-…) or an RDS Proxy's (prx-…), never its name. Both functions read
 * the database, so both need it. DATABASE_URL's user must be DATABASE_IAM_USER:
 * the deploy cannot check that (DATABASE_URL is in SSM); RDS refuses any other.
 */
export function databaseIamStatement(settings: Env, region: string, validate = true): Statement | undefined {
  const iam = read(() => flag(settings, 'DATABASE_IAM_AUTH'));
  const resourceId = text(settings, 'DATABASE_IAM_RESOURCE_ID');
  const user = text(settings, 'DATABASE_IAM_USER');
  if (!iam) {
    const stray = resourceId !== undefined ? 'DATABASE_IAM_RESOURCE_ID' : user !== undefined ? 'DATABASE_IAM_USER' : undefined;
    if (stray && validate) throw new DeploySettingsError(`${stray} is set but DATABASE_IAM_AUTH is not true`);
    return undefined;
  }
  if (resourceId === undefined || !/^(db|cluster|prx)-[A-Za-z0-9]+$/.test(resourceId)) {
    if (!validate) return undefined;
    throw new DeploySettingsError(
      `DATABASE_IAM_AUTH=true needs DATABASE_IAM_RESOURCE_ID, the database's resource id (aws rds describe-db-instances: DbiResourceId, db-…; an Aurora cluster's DbClusterResourceId, cluster-…; an RDS Proxy's prx-…), got ${JSON.stringify(resourceId ?? '')}`,
    );
  }
  if (user === undefined || !/^[A-Za-z_][A-Za-z0-9_$]{0,62}$/.test(user)) {
    if (!validate) return undefined;
    throw new DeploySettingsError(`DATABASE_IAM_AUTH=true needs DATABASE_IAM_USER, the database user DATABASE_URL names (a plain PostgreSQL role name), got ${JSON.stringify(user ?? '')}`);
  }
  // The database may live in another region than the functions (DATABASE_IAM_REGION), as the token says.
  const databaseRegion = text(settings, 'DATABASE_IAM_REGION') ?? region;
  return {
    Effect: 'Allow',
    Action: ['rds-db:connect'],
    Resource: [{ 'Fn::Sub': `arn:\${AWS::Partition}:rds-db:${databaseRegion}:\${AWS::AccountId}:dbuser:${resourceId}/${user}` }],
  };
}

/** Seconds Lambda lets collect run: one tick, or a whole schedule period when it samples several times. */
function collectTimeoutSeconds(settings: Env): number {
  const samples = read(() => integer(settings, 'SAMPLES_PER_INVOCATION'));
  const period = read(() => integer(settings, 'SCHEDULE_PERIOD_SECONDS'));
  const derived = samples > 1 ? Math.min(period + SAMPLING_MARGIN_SECONDS, LAMBDA_MAX_TIMEOUT_SECONDS) : SINGLE_TICK_TIMEOUT_SECONDS;
  return read(() => optionalInteger(settings, 'COLLECT_TIMEOUT_SECONDS')) ?? derived;
}

/** The tick must end (and log) before Lambda stops the function: TICK_TIMEOUT_MS plus the exit margin fits its timeout. */
function checkTickFits(variable: string, tickMs: number, functionName: string, timeoutSeconds: number): void {
  if (tickMs + EXIT_MARGIN_MS > timeoutSeconds * 1000) {
    throw new DeploySettingsError(
      `${variable}=${tickMs} does not fit the ${functionName} function's timeout of ${timeoutSeconds} s (the tick needs ${EXIT_MARGIN_MS} ms after its deadline to log and return): lower ${variable}${functionName === 'collect' ? ' or raise COLLECT_TIMEOUT_SECONDS' : ''}`,
    );
  }
}

/** The plain settings `fn` reads, as they are set. */
function plainSettingsOf(settings: Env, fn: FunctionName): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of settingsReadBy(fn)) {
    const value = text(settings, name);
    if (value !== undefined && !setting(name).secret && setting(name).scope === 'run') out[name] = value;
  }
  return out;
}

/**
 * Run the function's own parser on the environment it will get (secrets stood
 * in for, CA bundles resolved in the project): what it would refuse, the deploy refuses.
 */
function validateAsFunction(environment: Record<string, string>, secrets: SettingName[], fn: FunctionName, serviceDir: string, region: string): void {
  const env: Env = read(() => withPlaceholders(environment, secrets));
  for (const name of ['PUSHGATEWAY_CA_FILE', 'REMOTE_WRITE_CA_FILE'] as const) if (env[name]) env[name] = path.join(serviceDir, env[name]!);
  // A deployed collect signs with its role's credentials; they exist only at run time.
  // Lambda sets AWS_REGION to the function's region.
  env.AWS_REGION = region;
  try {
    parseConfig(env, { requireSink: fn === 'collect' });
  } catch (error) {
    if (error instanceof ConfigError) throw new DeploySettingsError(`${error.message} (the ${fn} function would refuse it at every invocation)`);
    throw error;
  }
}

/** The stage's settings: the committed file, then the environment's values of table settings (and X_SSM_PARAMETER). */
export function mergedSettings(env: Env, stageSettings: Env = {}): Env {
  const out: Env = { ...stageSettings };
  for (const name of SETTING_NAMES) {
    if (text(env, name) !== undefined) out[name] = env[name];
    const pointer = `${name}${SSM_PARAMETER_SUFFIX}`;
    if (setting(name).secret && text(env, pointer) !== undefined) out[pointer] = env[pointer];
  }
  return out;
}

function secretEnvironment(settings: Env, secrets: SettingName[], stage: string): Record<string, string> {
  return Object.fromEntries(secrets.map((variable) => [`${variable}${SSM_PARAMETER_SUFFIX}`, parameterName(settings, variable, stage)]));
}

function schedule(settings: Env): { schedule: string; scheduleMethod: string } {
  return {
    schedule: text(settings, 'COLLECT_SCHEDULE') ?? String(SETTINGS.COLLECT_SCHEDULE.default),
    scheduleMethod: read(() => choice(settings, 'COLLECT_SCHEDULE_METHOD')),
  };
}

/** Under serverless offline: the local environment as it is, plain secrets included (docs/local.md). */
function localSettings(env: Env): DeploySettings {
  // Plain settings only: the handler reads the secrets from the local environment itself (localEnvironment: true).
  const pick = (fn: FunctionName) =>
    Object.fromEntries(settingsReadBy(fn).filter((name) => !setting(name).secret && text(env, name) !== undefined).map((name) => [name, env[name]!]));
  return {
    region: text(env, 'AWS_REGION') ?? 'us-east-1',
    ...schedule(env),
    metricsEndpoint: 'on',
    collect: { timeout: SINGLE_TICK_TIMEOUT_SECONDS, environment: pick('collect'), packagePatterns: [] },
    metrics: {
      environment: { ...pick('metrics'), TICK_TIMEOUT_MS: text(env, 'METRICS_TICK_TIMEOUT_MS') ?? String(SETTINGS.METRICS_TICK_TIMEOUT_MS.default) },
      packagePatterns: [],
      throttle: { rate: SETTINGS.METRICS_THROTTLE_RATE.default, burst: SETTINGS.METRICS_THROTTLE_BURST.default },
    },
    vpc: false,
    reservedConcurrency: {},
    parameters: [],
    roles: {},
  };
}

/**
 * Everything serverless.yml takes from here. `command` "local" is serverless
 * offline; "deploy" and "package" validate every setting; any other command
 * (info, logs, remove, print, invoke) computes the same stack without
 * refusing what only a deploy needs.
 */
export function deploySettings(env: Env, at: DeployAt): DeploySettings {
  if (at.command === 'local') return localSettings(env);
  const settings = mergedSettings(env, at.stageSettings);
  const validate = at.command === 'deploy' || at.command === 'package';
  const committedRegion = text(at.stageSettings ?? {}, 'AWS_REGION');
  if (committedRegion !== undefined && at.region && at.region !== committedRegion && at.region === text(env, 'AWS_REGION')) {
    // An ambient AWS_REGION (a profile's default) must not move a stage that names its region.
    throw new DeploySettingsError(`AWS_REGION is ${committedRegion} in ${at.stageFile} but ${at.region} in the environment; unset one of them, or pass --region to choose`);
  }
  const region = at.region || committedRegion;
  if (!region) {
    throw new DeploySettingsError(
      `set the region explicitly: AWS_REGION in ${at.stageFile ?? `stages/${at.stage}.env`} (or export AWS_REGION=<region>, or --region); the SSM parameters must be created in that region too`,
    );
  }
  if (validate) {
    if (text(settings, 'PUSH_DRY_RUN') !== undefined) throw new DeploySettingsError('PUSH_DRY_RUN is for local runs only; unset it for a deploy');
    if (text(settings, 'PUSHGATEWAY_URL') === undefined && text(settings, 'REMOTE_WRITE_URL') === undefined) {
      throw new DeploySettingsError(`PUSHGATEWAY_URL (or REMOTE_WRITE_URL) must be set, in ${at.stageFile ?? `stages/${at.stage}.env`} or the deploy environment`);
    }
    checkUrlSettings(settings);
  }
  const metricsEndpoint = read(() => choice(settings, 'METRICS_ENDPOINT')) === 'on';
  const collectSecrets: SettingName[] = ['DATABASE_URL', ...(validate ? [...sinkSecrets(settings, 'PUSHGATEWAY'), ...sinkSecrets(settings, 'REMOTE_WRITE')] : lenientSinkSecrets(settings))];
  const metricsSecrets: SettingName[] = metricsEndpoint ? ['DATABASE_URL', 'METRICS_BEARER_TOKEN'] : [];
  const caFiles = Object.fromEntries(
    (['PUSHGATEWAY_CA_FILE', 'REMOTE_WRITE_CA_FILE'] as const).map((name) => [name, caBundle(settings, name, at.serviceDir)] as const).filter(([, file]) => file),
  ) as Record<string, string>;
  // The database's CA travels with both functions; DATABASE_URL (from SSM) points at it with sslrootcert.
  const databaseCa = caBundle(settings, 'DATABASE_CA_FILE', at.serviceDir);
  const databaseCaPatterns = databaseCa ? [databaseCa] : [];
  const workspace = remoteWriteWorkspace(settings);
  const databaseIam = databaseIamStatement(settings, region, validate);

  const collectTimeout = collectTimeoutSeconds(settings);
  const collectPlain = { ...plainSettingsOf(settings, 'collect'), ...caFiles };
  const metricsTickMs = read(() => integer(settings, 'METRICS_TICK_TIMEOUT_MS'));
  const metricsPlain = { ...plainSettingsOf(settings, 'metrics'), TICK_TIMEOUT_MS: String(metricsTickMs) };
  if (validate) {
    validateAsFunction(collectPlain, collectSecrets, 'collect', at.serviceDir, region);
    if (read(() => integer(settings, 'SAMPLES_PER_INVOCATION')) <= 1) {
      checkTickFits('TICK_TIMEOUT_MS', read(() => integer(settings, 'TICK_TIMEOUT_MS')), 'collect', collectTimeout);
    }
    if (metricsEndpoint) {
      validateAsFunction(metricsPlain, metricsSecrets, 'metrics', at.serviceDir, region);
      checkTickFits('METRICS_TICK_TIMEOUT_MS', metricsTickMs, 'metrics', METRICS_TIMEOUT_SECONDS);
    } else if (text(settings, 'METRICS_TICK_TIMEOUT_MS') !== undefined) {
      throw new DeploySettingsError('METRICS_TICK_TIMEOUT_MS is set but METRICS_ENDPOINT is not on');
    }
  }

  const metricsOnly = ['METRICS_RESERVED_CONCURRENCY', 'METRICS_THROTTLE_RATE', 'METRICS_THROTTLE_BURST'] as const;
  const strayMetricsSetting = metricsOnly.find((name) => text(settings, name) !== undefined);
  if (validate && !metricsEndpoint && strayMetricsSetting) throw new DeploySettingsError(`${strayMetricsSetting} is set but METRICS_ENDPOINT is not on`);
  const vpc = vpcOf(settings, validate);
  const reserved = {
    collect: reservation(settings, 'COLLECT_RESERVED_CONCURRENCY'),
    ...(metricsEndpoint ? { metrics: reservation(settings, 'METRICS_RESERVED_CONCURRENCY') } : {}),
  };
  const throttle = { rate: read(() => optionalInteger(settings, 'METRICS_THROTTLE_RATE'))!, burst: read(() => optionalInteger(settings, 'METRICS_THROTTLE_BURST'))! };

  const parametersOf = (secrets: SettingName[]) => secrets.map((variable) => parameterName(settings, variable, at.stage));
  const grants = { region, stage: at.stage, vpc: vpc !== false, databaseIam };
  const parameters = [...new Set([...parametersOf(collectSecrets), ...parametersOf(metricsSecrets)])];
  return {
    region,
    ...schedule(settings),
    metricsEndpoint: metricsEndpoint ? 'on' : 'off',
    collect: {
      timeout: collectTimeout,
      environment: { ...collectPlain, ...secretEnvironment(settings, collectSecrets, at.stage) },
      packagePatterns: [...Object.values(caFiles), ...databaseCaPatterns],
    },
    metrics: {
      environment: { ...metricsPlain, ...secretEnvironment(settings, metricsSecrets, at.stage) },
      packagePatterns: databaseCaPatterns,
      throttle,
    },
    vpc,
    reservedConcurrency: Object.fromEntries(
      Object.entries(reserved).filter((entry): entry is [FunctionName, number] => entry[1] !== undefined).map(([fn, n]) => [fn, { reservedConcurrency: n }]),
    ),
    parameters,
    roles: {
      [ROLES.collect]: executionRole(at.stage, 'collect', collectStatements({ ...grants, parameters: parametersOf(collectSecrets), workspace })),
      ...(metricsEndpoint ? { [ROLES.metrics]: executionRole(at.stage, 'metrics', metricsStatements({ ...grants, parameters: parametersOf(metricsSecrets) })) } : {}),
      ...(schedule(settings).scheduleMethod === 'scheduler' ? { [ROLES.scheduler]: schedulerRole(at.stage) } : {}),
    },
  };
}

/** Outside deploy and package: the secrets the auth settings name, without refusing what is half-set. */
function lenientSinkSecrets(settings: Env): SettingName[] {
  return (['PUSHGATEWAY', 'REMOTE_WRITE'] as const).flatMap((sink) => {
    const auth = text(settings, `${sink}_AUTH`);
    return auth === 'basic' ? [`${sink}_PASSWORD` as const] : auth === 'bearer' ? [`${sink}_TOKEN` as const] : [];
  });
}

// ---------------------------------------------------------------- VPC

const VPC_ID_SHAPES = {
  VPC_SUBNET_IDS: { pattern: /^subnet-(?:[0-9a-f]{8}|[0-9a-f]{17})$/, what: 'a subnet id (subnet- and 8 or 17 hex digits)' },
  VPC_SECURITY_GROUP_IDS: { pattern: /^sg-(?:[0-9a-f]{8}|[0-9a-f]{17})$/, what: 'a security group id (sg- and 8 or 17 hex digits)' },
} as const;

/**
 * VPC_SUBNET_IDS and VPC_SECURITY_GROUP_IDS: both or neither, each id of the
 * shape EC2 gives it (a typo fails here, not halfway through a stack update).
 * Outside deploy and package a half-set pair is no VPC.
 */
function vpcOf(settings: Env, validate: boolean): false | Vpc {
  const subnetIds = read(() => list(settings, 'VPC_SUBNET_IDS'));
  const securityGroupIds = read(() => list(settings, 'VPC_SECURITY_GROUP_IDS'));
  if (subnetIds.length === 0 && securityGroupIds.length === 0) return false;
  if (!validate) return subnetIds.length > 0 && securityGroupIds.length > 0 ? { subnetIds, securityGroupIds } : false;
  const [missing, set] = subnetIds.length === 0 ? ['VPC_SUBNET_IDS', 'VPC_SECURITY_GROUP_IDS'] : ['VPC_SECURITY_GROUP_IDS', 'VPC_SUBNET_IDS'];
  if (subnetIds.length === 0 || securityGroupIds.length === 0) {
    throw new DeploySettingsError(`${set} is set but ${missing} is not: a function in a VPC needs both its subnets and its security groups (or set neither)`);
  }
  for (const [name, ids] of [['VPC_SUBNET_IDS', subnetIds], ['VPC_SECURITY_GROUP_IDS', securityGroupIds]] as const) {
    const bad = ids.find((id) => !VPC_ID_SHAPES[name].pattern.test(id));
    if (bad !== undefined) throw new DeploySettingsError(`${name}: "${bad.slice(0, 40)}" is not ${VPC_ID_SHAPES[name].what}`);
  }
  return { subnetIds, securityGroupIds };
}

// ---------------------------------------------------------------- reserved concurrency

/** A function's reserved concurrency, or undefined for none ("none"; never 0, which to Lambda means "run nothing"). */
function reservation(settings: Env, name: 'COLLECT_RESERVED_CONCURRENCY' | 'METRICS_RESERVED_CONCURRENCY'): number | undefined {
  if (text(settings, name) === '0') {
    throw new DeploySettingsError(`${name}=0 would stop every invocation (Lambda throttles all of them at 0); for no reservation set ${name}=none`);
  }
  const value = read(() => integerOrWord(settings, name));
  return value === 'none' ? undefined : (value as number);
}

// ---------------------------------------------------------------- roles

interface Grants {
  region: string;
  stage: string;
  /** The SSM parameters the function reads. */
  parameters: string[];
  /** The function runs in a VPC: Lambda manages its network interfaces with the function's role. */
  vpc: boolean;
  /** With DATABASE_IAM_AUTH: rds-db:connect as the one database user (both functions connect). */
  databaseIam: Statement | undefined;
}

const sub = (arn: string) => ({ 'Fn::Sub': arn });
const functionName = (stage: string, fn: FunctionName) => `${SERVICE}-${stage}-${fn}`;

/** Its own log group (the framework creates /aws/lambda/<function name>): the streams in it, the events in those. */
function logStatements(stage: string, fn: FunctionName): Statement[] {
  const group = `arn:\${AWS::Partition}:logs:\${AWS::Region}:\${AWS::AccountId}:log-group:/aws/lambda/${functionName(stage, fn)}`;
  return [
    { Effect: 'Allow', Action: ['logs:CreateLogGroup', 'logs:CreateLogStream'], Resource: [sub(`${group}:*`)] },
    { Effect: 'Allow', Action: ['logs:PutLogEvents'], Resource: [sub(`${group}:*:*`)] },
  ];
}

/**
 * Read exactly these parameters (one GetParameters call, lib/runtime/secrets.ts);
 * decrypt only through SSM (the aws/ssm key or a customer key), in the one region.
 */
function parameterStatements(parameters: string[], region: string): Statement[] {
  if (parameters.length === 0) return [];
  return [
    {
      Effect: 'Allow',
      Action: ['ssm:GetParameters'],
      Resource: parameters.map((name) => sub(`arn:\${AWS::Partition}:ssm:${region}:\${AWS::AccountId}:parameter${name}`)),
    },
    {
      Effect: 'Allow',
      Action: ['kms:Decrypt'],
      Resource: [sub(`arn:\${AWS::Partition}:kms:${region}:\${AWS::AccountId}:key/*`)],
      Condition: { StringEquals: { 'kms:ViaService': `ssm.${region}.amazonaws.com` } },
    },
  ];
}

/**
 * In a VPC, Lambda creates and deletes the function's network interfaces with
 * its role: the EC2 actions of AWS's AWSLambdaVPCAccessExecutionRole, without
 * that policy's logs:* on every log group. EC2 allows the Describe actions only
 * on "*", and Lambda's own guide gives the rest on "*" too.
 */
const NETWORK_INTERFACE_STATEMENT: Statement = {
  Effect: 'Allow',
  Action: [
    'ec2:CreateNetworkInterface',
    'ec2:DescribeNetworkInterfaces',
    'ec2:DescribeSubnets',
    'ec2:DeleteNetworkInterface',
    'ec2:AssignPrivateIpAddresses',
    'ec2:UnassignPrivateIpAddresses',
  ],
  Resource: ['*'],
};

/** What every function's role may do: its logs, its parameters, its network interfaces in a VPC. */
function commonStatements(fn: FunctionName, grants: Grants): Statement[] {
  return [
    ...logStatements(grants.stage, fn),
    ...parameterStatements(grants.parameters, grants.region),
    ...(grants.vpc ? [NETWORK_INTERFACE_STATEMENT] : []),
    ...(grants.databaseIam ? [grants.databaseIam] : []),
  ];
}

/** collect: its secrets (database, sink credentials) and, with SigV4, remote write to the one AMP workspace. */
function collectStatements(grants: Grants & { workspace: string | undefined }): Statement[] {
  return [
    ...commonStatements('collect', grants),
    ...(grants.workspace ? [{ Effect: 'Allow', Action: ['aps:RemoteWrite'], Resource: [grants.workspace] } satisfies Statement] : []),
  ];
}

/** metrics: the database URL and its bearer token; no sink, no remote write. */
function metricsStatements(grants: Grants): Statement[] {
  return commonStatements('metrics', grants);
}

const POLICY_VERSION = '2012-10-17';

/** An execution role that only Lambda may assume, with the function's statements as its one inline policy. */
function executionRole(stage: string, fn: FunctionName, statements: Statement[]): Record<string, unknown> {
  return {
    Type: 'AWS::IAM::Role',
    Properties: {
      Description: `xyn-metrics ${stage}: the ${fn} function's execution role`,
      AssumeRolePolicyDocument: {
        Version: POLICY_VERSION,
        Statement: [{ Effect: 'Allow', Principal: { Service: ['lambda.amazonaws.com'] }, Action: ['sts:AssumeRole'] }],
      },
      Policies: [{ PolicyName: functionName(stage, fn), PolicyDocument: { Version: POLICY_VERSION, Statement: statements } }],
    },
  };
}

/**
 * EventBridge Scheduler's role: assumable by Scheduler for schedules of this
 * account only, and allowed to invoke collect, nothing else.
 */
function schedulerRole(stage: string): Record<string, unknown> {
  return {
    Type: 'AWS::IAM::Role',
    Properties: {
      Description: `xyn-metrics ${stage}: EventBridge Scheduler may invoke collect`,
      AssumeRolePolicyDocument: {
        Version: POLICY_VERSION,
        Statement: [
          {
            Effect: 'Allow',
            Principal: { Service: ['scheduler.amazonaws.com'] },
            Action: ['sts:AssumeRole'],
            Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
          },
        ],
      },
      Policies: [
        {
          PolicyName: `${functionName(stage, 'collect')}-scheduler`,
          PolicyDocument: {
            Version: POLICY_VERSION,
            Statement: [{ Effect: 'Allow', Action: ['lambda:InvokeFunction'], Resource: [{ 'Fn::GetAtt': ['CollectLambdaFunction', 'Arn'] }] }],
          },
        },
      ],
    },
  };
}

/** The settings the deploy environment sets over the stage file's (names only: a deploy says which). */
export function overriddenByEnvironment(env: Env, stageSettings: Env): string[] {
  return Object.keys(stageSettings).filter((name) => text(env, name) !== undefined && env[name] !== stageSettings[name]);
}

/** Which command the framework runs, from its argv: a local run, a deploy or package (validated), or another. */
export function commandOf(argv: string[]): Command {
  // Option values (--stage prod) stay among the words; the command's words are found among them.
  const words = argv.slice(2).filter((arg) => !arg.startsWith('-'));
  const invoke = words.indexOf('invoke');
  if (words.includes('offline') || (invoke >= 0 && words[invoke + 1] === 'local')) return 'local';
  const deploy = words.indexOf('deploy');
  if (deploy >= 0 && words[deploy + 1] !== 'list') return 'deploy';
  if (words.includes('package')) return 'package';
  return 'other';
}

/** Kept for the tests and callers that only ask "is this a local run?". */
export function isLocal(argv: string[]): boolean {
  return commandOf(argv) === 'local';
}
