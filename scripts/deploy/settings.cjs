/**
 * What serverless.yml deploys, computed from the deploy environment (read by
 * serverless.yml through ${file(./scripts/deploy/settings.cjs):…}). One pure
 * function, deploySettings(env, { region, stage, local }), so the rules are in
 * one place and unit-tested (test/unit/deploy-settings.test.ts):
 *
 * - Secrets are never values here. A deployed function gets X_SSM_PARAMETER
 *   (the name of a SecureString parameter) for each secret X it uses, and the
 *   role may read exactly those parameters. Secret values exported in the deploy
 *   environment (DATABASE_URL, …) are ignored by a deploy. Under
 *   `serverless offline` (local) the handlers get plain X from the local
 *   environment as before, so no parameter names are set.
 * - Each function gets only the settings it uses; unset optional settings are
 *   left out (lib/config/parse.ts defaults apply).
 * - The region is one explicit setting (AWS_REGION or --region), no default: the
 *   parameters must be created in the same region (README, "Deploy").
 * - The metrics function and its public HTTP API exist only with METRICS_ENDPOINT=on.
 * - The collect timeout follows SAMPLES_PER_INVOCATION unless COLLECT_TIMEOUT_SECONDS says.
 * - A private CA bundle (PUSHGATEWAY_CA_FILE, REMOTE_WRITE_CA_FILE: a PEM file
 *   inside the project) is carried in the collect package and named by its path there.
 *   DATABASE_CA_FILE (say, the RDS CA bundle) is carried in both packages; DATABASE_URL's
 *   own sslrootcert names it, so the functions get no variable for it.
 * - Remote write (REMOTE_WRITE_*, docs/metrics.md) goes to collect only; with
 *   REMOTE_WRITE_SIGV4=true the role may aps:RemoteWrite to AMP_WORKSPACE_ARN alone.
 */

'use strict';

const { existsSync, readFileSync } = require('node:fs');
const path = require('node:path');

const SERVICE = 'xyn-metrics';

/** Secret variables (the contract of lib/runtime/secrets.ts) and their parameter names under /xyn-metrics/<stage>/. */
const SECRET_PARAMETERS = {
  DATABASE_URL: 'database-url',
  PUSHGATEWAY_PASSWORD: 'pushgateway-password',
  PUSHGATEWAY_TOKEN: 'pushgateway-token',
  METRICS_BEARER_TOKEN: 'metrics-bearer-token',
  REMOTE_WRITE_PASSWORD: 'remote-write-password',
  REMOTE_WRITE_TOKEN: 'remote-write-token',
};

/** Plain settings each function reads (lib/config/parse.ts), passed through when set in the deploy environment. */
const DATABASE_SETTINGS = [
  // A remote Neon-compatible proxy (wss:// only when deployed) and the explicit plain-text opt-in (docs/security.md).
  'DATABASE_WS_PROXY', 'DATABASE_ALLOW_PLAINTEXT',
  'RUNS_TABLE', 'DB_STATEMENT_TIMEOUT_MS', 'DB_LOCK_TIMEOUT_MS', 'STATUS_ESTIMATE_ABOVE',
  'HEARTBEAT_TABLE', 'HEARTBEAT_WORKER_COLUMN', 'HEARTBEAT_AT_COLUMN', 'HEARTBEAT_TTL_SECONDS',
  'BLUEPRINT_COLUMN', 'RUN_STARTED_COLUMN', 'RUN_FINISHED_COLUMN', 'BLUEPRINT_WINDOW_SECONDS', 'BLUEPRINT_TOP_K',
];
const DATABASE_SETTINGS_ALL = [...DATABASE_SETTINGS, 'SECRETS_CACHE_SECONDS'];
const COLLECT_SETTINGS = [
  ...DATABASE_SETTINGS_ALL,
  'PUSHGATEWAY_URL', 'PUSHGATEWAY_JOB', 'PUSHGATEWAY_GROUPING', 'PUSH_TIMEOUT_MS', 'PUSH_RETRIES',
  'MAX_EVENT_AGE_SECONDS', 'SAMPLES_PER_INVOCATION', 'SCHEDULE_PERIOD_SECONDS',
  // Remote write (docs/metrics.md), alongside or instead of the Pushgateway.
  'REMOTE_WRITE_URL', 'REMOTE_WRITE_JOB', 'REMOTE_WRITE_LABELS', 'REMOTE_WRITE_REGION', 'REMOTE_WRITE_SIGV4',
];

/** Lambda's hard stop for one tick (TICK_TIMEOUT_MS, 25 s by default, stays below it). */
const SINGLE_TICK_TIMEOUT_SECONDS = 30;
/** With SAMPLES_PER_INVOCATION > 1 an invocation runs until its schedule period ends; room to log and return. */
const SAMPLING_MARGIN_SECONDS = 10;
const LAMBDA_MAX_TIMEOUT_SECONDS = 900;

class DeploySettingsError extends Error {}

function set(env, name) {
  const value = env[name];
  return value !== undefined && value !== '';
}

function pick(env, names) {
  return Object.fromEntries(names.filter((name) => set(env, name)).map((name) => [name, env[name]]));
}

function positiveInteger(env, name, fallback, max) {
  if (!set(env, name)) return fallback;
  const value = Number(env[name]);
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new DeploySettingsError(`${name} must be a whole number from 1 to ${max}, got ${JSON.stringify(env[name])}`);
  }
  return value;
}

function oneOf(env, name, allowed, fallback) {
  const value = set(env, name) ? env[name] : fallback;
  if (!allowed.includes(value)) throw new DeploySettingsError(`${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  return value;
}

/** The SSM parameter name for secret X: X_SSM_PARAMETER from the deploy environment, or /xyn-metrics/<stage>/<name>. */
function parameterName(env, variable, stage) {
  const override = env[`${variable}_SSM_PARAMETER`];
  const name = set(env, `${variable}_SSM_PARAMETER`) ? override : `/${SERVICE}/${stage}/${SECRET_PARAMETERS[variable]}`;
  if (!/^\/[A-Za-z0-9_.\-/]+$/.test(name)) {
    throw new DeploySettingsError(`${variable}_SSM_PARAMETER must be a full parameter name starting with "/", got ${JSON.stringify(name)}`);
  }
  return name;
}

/**
 * Secrets a sink (PUSHGATEWAY or REMOTE_WRITE) needs: <sink>_AUTH=basic (username
 * here, password in SSM), bearer (token in SSM) or none.
 */
function sinkAuth(env, sink) {
  const auth = oneOf(env, `${sink}_AUTH`, ['none', 'basic', 'bearer'], 'none');
  if (auth === 'basic' && !set(env, `${sink}_USERNAME`)) {
    throw new DeploySettingsError(`${sink}_AUTH=basic needs ${sink}_USERNAME (the password is read from SSM)`);
  }
  return {
    settings: auth === 'basic' ? { [`${sink}_USERNAME`]: env[`${sink}_USERNAME`] } : {},
    secrets: auth === 'basic' ? [`${sink}_PASSWORD`] : auth === 'bearer' ? [`${sink}_TOKEN`] : [],
  };
}

/**
 * A CA bundle variable (PUSHGATEWAY_CA_FILE, REMOTE_WRITE_CA_FILE): a PEM file
 * inside the project (the package can only carry files from here). Returned as
 * the relative path the package holds it at, which is also where the function
 * reads it (Lambda runs in the package root).
 */
function caBundle(env, name, serviceDir) {
  if (!set(env, name)) return undefined;
  const file = env[name];
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

function caBundles(env, serviceDir) {
  return Object.fromEntries(
    ['PUSHGATEWAY_CA_FILE', 'REMOTE_WRITE_CA_FILE'].map((name) => [name, caBundle(env, name, serviceDir)]).filter(([, file]) => file),
  );
}

/** With REMOTE_WRITE_SIGV4=true (Amazon Managed Service for Prometheus) the role may aps:RemoteWrite to the one workspace. */
function remoteWriteWorkspace(env) {
  if (!['true', '1'].includes(String(env.REMOTE_WRITE_SIGV4 ?? '').toLowerCase())) return undefined;
  const arn = env.AMP_WORKSPACE_ARN ?? '';
  if (!/^arn:aws[a-z-]*:aps:[a-z0-9-]+:\d{12}:workspace\/[\w-]+$/.test(arn)) {
    throw new DeploySettingsError(`REMOTE_WRITE_SIGV4=true needs AMP_WORKSPACE_ARN, the workspace's ARN (arn:aws:aps:<region>:<account>:workspace/<id>), got ${JSON.stringify(arn)}`);
  }
  return arn;
}

/** Seconds Lambda lets collect run: one tick, or a whole schedule period when it samples several times. */
function collectTimeoutSeconds(env) {
  const samples = positiveInteger(env, 'SAMPLES_PER_INVOCATION', 1, 60);
  const period = positiveInteger(env, 'SCHEDULE_PERIOD_SECONDS', 60, 3_600);
  const derived = samples > 1 ? Math.min(period + SAMPLING_MARGIN_SECONDS, LAMBDA_MAX_TIMEOUT_SECONDS) : SINGLE_TICK_TIMEOUT_SECONDS;
  return positiveInteger(env, 'COLLECT_TIMEOUT_SECONDS', derived, LAMBDA_MAX_TIMEOUT_SECONDS);
}

function secretEnvironment(env, secrets, stage, local) {
  if (local) return {};
  return Object.fromEntries(secrets.map((variable) => [`${variable}_SSM_PARAMETER`, parameterName(env, variable, stage)]));
}

/**
 * Everything serverless.yml takes from here. `local` is serverless offline:
 * plain secrets from the local environment, the metrics function always there.
 */
function deploySettings(env, { region, stage, local, serviceDir }) {
  if (!local && !region) {
    throw new DeploySettingsError(
      'set the region explicitly: export AWS_REGION=<region> (or --region); the SSM parameters must be created in that region too',
    );
  }
  if (!local && !set(env, 'PUSHGATEWAY_URL') && !set(env, 'REMOTE_WRITE_URL')) {
    throw new DeploySettingsError('PUSHGATEWAY_URL (or REMOTE_WRITE_URL) must be set in the deploy environment');
  }
  const metricsEndpoint = local || oneOf(env, 'METRICS_ENDPOINT', ['on', 'off'], 'off') === 'on';
  const pushAuth = sinkAuth(env, 'PUSHGATEWAY');
  const writeAuth = sinkAuth(env, 'REMOTE_WRITE');
  const caFiles = caBundles(env, serviceDir);
  // The database's CA travels with both functions; DATABASE_URL (from SSM) points at it with sslrootcert.
  const databaseCa = caBundle(env, 'DATABASE_CA_FILE', serviceDir);
  const databaseCaPatterns = databaseCa ? [databaseCa] : [];
  const workspace = remoteWriteWorkspace(env);

  const collectSecrets = ['DATABASE_URL', ...pushAuth.secrets, ...writeAuth.secrets];
  const metricsSecrets = metricsEndpoint ? ['DATABASE_URL', 'METRICS_BEARER_TOKEN'] : [];
  const collect = {
    timeout: collectTimeoutSeconds(env),
    environment: {
      ...pick(env, COLLECT_SETTINGS),
      ...pushAuth.settings,
      ...writeAuth.settings,
      ...caFiles,
      ...secretEnvironment(env, collectSecrets, stage, local),
    },
    packagePatterns: [...Object.values(caFiles), ...databaseCaPatterns],
  };
  const metrics = {
    environment: {
      ...pick(env, DATABASE_SETTINGS_ALL),
      // A scrape gives up after 10 s by default; the read has to fit in the function's 10 s.
      TICK_TIMEOUT_MS: set(env, 'METRICS_TICK_TIMEOUT_MS') ? env.METRICS_TICK_TIMEOUT_MS : '8000',
      ...secretEnvironment(env, metricsSecrets, stage, local),
    },
    packagePatterns: databaseCaPatterns,
  };
  const parameters = [...new Set([...collectSecrets, ...metricsSecrets])].map((variable) => parameterName(env, variable, stage));
  return {
    region: region || 'us-east-1',
    metricsEndpoint: metricsEndpoint ? 'on' : 'off',
    collect,
    metrics,
    parameters,
    iamStatements: local ? [] : iamStatements(parameters, region, workspace),
  };
}

/**
 * Read exactly these parameters; decrypt only through SSM (the aws/ssm key or a
 * customer key), in the one region; remote-write to the one AMP workspace if any.
 */
function iamStatements(parameters, region, workspace) {
  return [
    {
      Effect: 'Allow',
      Action: ['ssm:GetParameter', 'ssm:GetParameters'],
      Resource: parameters.map((name) => ({ 'Fn::Sub': `arn:\${AWS::Partition}:ssm:${region}:\${AWS::AccountId}:parameter${name}` })),
    },
    {
      Effect: 'Allow',
      Action: ['kms:Decrypt'],
      Resource: [{ 'Fn::Sub': `arn:\${AWS::Partition}:kms:${region}:\${AWS::AccountId}:key/*` }],
      Condition: { StringEquals: { 'kms:ViaService': `ssm.${region}.amazonaws.com` } },
    },
    ...(workspace ? [{ Effect: 'Allow', Action: ['aps:RemoteWrite'], Resource: [workspace] }] : []),
  ];
}

/** `serverless offline` and `serverless invoke local` run the handlers here, with the local environment (docs/local.md). */
function isLocal(argv) {
  const words = argv.slice(2).filter((arg) => !arg.startsWith('-'));
  const invoke = words.indexOf('invoke');
  return words.includes('offline') || (invoke >= 0 && words[invoke + 1] === 'local');
}

/** Called by the framework's ${file(…)} resolver. */
module.exports = async ({ options }) => {
  try {
    return deploySettings(process.env, {
      region: options.region || process.env.AWS_REGION,
      stage: options.stage || 'dev',
      local: isLocal(process.argv),
      serviceDir: path.resolve(__dirname, '..', '..'),
    });
  } catch (error) {
    if (error instanceof DeploySettingsError) throw new Error(`xyn-metrics deploy settings: ${error.message}`);
    throw error;
  }
};
module.exports.deploySettings = deploySettings;
module.exports.isLocal = isLocal;
module.exports.DeploySettingsError = DeploySettingsError;
module.exports.SECRET_PARAMETERS = SECRET_PARAMETERS;
