/**
 * Every setting of xyn-metrics, in one declarative table: its kind, default
 * and bounds, whether it is a secret, which function reads it, and where it is
 * set. One source for everything that reads settings:
 *   - parseConfig (lib/config/parse.ts) reads each value through it (lib/config/read.ts),
 *     so a default or a bound is written here once;
 *   - the deploy (scripts/deploy/settings.ts) decides from it what each function
 *     gets and validates run-time values with the very parsers the function uses;
 *   - the docs tests check the README's configuration table against it.
 *
 * Where a setting is set (`scope`):
 *   run     read by a function at run time: locally from the environment;
 *           deployed from the stage settings (stages/<stage>.env, overridden by the
 *           deploy environment), or, for a secret, from SSM Parameter Store at run time;
 *   deploy  read by the deploy alone (serverless.yml, scripts/deploy/settings.ts);
 *   local   read by local tooling alone (npm start, npm run collect); a deploy refuses it.
 */

export type FunctionName = 'collect' | 'metrics';
export type Scope = 'run' | 'deploy' | 'local';
export type Kind = 'text' | 'integer' | 'flag' | 'choice' | 'url' | 'list' | 'labels' | 'identifier' | 'file';

export interface Setting {
  readonly kind: Kind;
  readonly scope: Scope;
  /** The functions that read it at run time (empty for deploy and local settings). */
  readonly readBy: readonly FunctionName[];
  /** A literal default; parseConfig applies it when the variable is unset or empty. */
  readonly default?: number | string | boolean;
  /** A default that depends on something else, as the docs state it (e.g. "PUSHGATEWAY_JOB"). */
  readonly defaultText?: string;
  /** integer bounds (inclusive); for a list, `max` is the most items it may hold */
  readonly min?: number;
  readonly max?: number;
  /** choice values */
  readonly values?: readonly string[];
  /** integer settings that also take a word (STATUS_ESTIMATE_ABOVE=off) */
  readonly words?: readonly string[];
  /** A secret: never logged; deployed, read from SSM at run time (X_SSM_PARAMETER names it). */
  readonly secret?: boolean;
  /** A secret's parameter name under /xyn-metrics/<stage>/ when deployed. */
  readonly parameter?: string;
  /** The one-line meaning the docs give. */
  readonly summary: string;
}

const both = ['collect', 'metrics'] as const;
const collect = ['collect'] as const;
const metrics = ['metrics'] as const;
const none = [] as const;

export const SETTINGS = {
  // ---------------------------------------------------------------- database
  DATABASE_URL: {
    kind: 'url', scope: 'run', readBy: both, secret: true, parameter: 'database-url', defaultText: '(required)',
    summary: '`postgresql://user:password@host:5432/db[?sslmode=…&sslrootcert=…]`, the password percent-encoded; Neon hosts use their secure WebSocket, every other host TCP with TLS (`sslmode=verify-full` by default; see Databases below)',
  },
  DATABASE_WS_PROXY: {
    kind: 'text', scope: 'run', readBy: both,
    summary: 'a Neon-compatible WebSocket proxy: `wss://host[:port]/v1` (remote), or `host:port/v1` of the local plain-text bridge (loopback, for a loopback database only)',
  },
  DATABASE_ALLOW_PLAINTEXT: {
    kind: 'flag', scope: 'run', readBy: both, default: false,
    summary: '`true`: explicit opt-in to reach a non-loopback database without TLS (`sslmode=disable`/`allow`/`prefer`); every tick then logs it',
  },
  DATABASE_IAM_AUTH: {
    kind: 'flag', scope: 'run', readBy: both, default: false,
    summary: 'true: RDS IAM database authentication, a token signed with the function\'s role credentials for each connection instead of a password (DATABASE_URL without one, sslmode=verify-full)',
  },
  DATABASE_IAM_REGION: {
    kind: 'text', scope: 'run', readBy: both, defaultText: 'AWS_REGION',
    summary: 'the database\'s region, for its IAM token',
  },
  RUNS_TABLE: {
    kind: 'identifier', scope: 'run', readBy: both, default: 'runs',
    summary: 'table or `schema.table`; validated and quoted as an identifier',
  },
  DB_STATEMENT_TIMEOUT_MS: {
    kind: 'integer', scope: 'run', readBy: both, default: 5_000, min: 10, max: 600_000,
    summary: 'statement budget of the snapshot transaction: the batch gets 75% of it, shared out among its SELECTs (each may use what the ones before it left), the rest is kept for a degraded tick\'s re-read',
  },
  DB_LOCK_TIMEOUT_MS: {
    kind: 'integer', scope: 'run', readBy: both, default: 2_000, min: 10, max: 600_000,
    summary: '`lock_timeout`: give up rather than queue behind a lock',
  },
  STATUS_TOP_K: {
    kind: 'integer', scope: 'run', readBy: both, default: 20, min: 1, max: 200,
    summary: 'status labels kept by name besides QUEUED and RUNNING (the top K by count, in xyn_queue_depth and xyn_runs_finished_in_window); the rest are summed under status="other", so a text status column cannot explode cardinality',
  },
  STATUS_ESTIMATE_ABOVE: {
    kind: 'integer', scope: 'run', readBy: both, default: 100_000, min: 1, max: Number.MAX_SAFE_INTEGER, words: ['off'],
    summary: 'terminal statuses whose planner estimate is above this are reported from the statistics, not counted (QUEUED, RUNNING and every alerting gauge stay exact); `off` counts every status exactly',
  },

  // ---------------------------------------------------------------- Pushgateway
  PUSHGATEWAY_URL: {
    kind: 'url', scope: 'run', readBy: collect, defaultText: '(required unless REMOTE_WRITE_URL is set)',
    summary: '`http(s)://host:9091`, the gateway\'s base URL (no credentials in it when deployed)',
  },
  PUSHGATEWAY_USERNAME: {
    kind: 'text', scope: 'run', readBy: collect,
    summary: 'basic-auth user for the gateway (deployed: with PUSHGATEWAY_AUTH=basic)',
  },
  PUSHGATEWAY_PASSWORD: {
    kind: 'text', scope: 'run', readBy: collect, secret: true, parameter: 'pushgateway-password',
    summary: 'basic-auth password for the gateway',
  },
  PUSHGATEWAY_TOKEN: {
    kind: 'text', scope: 'run', readBy: collect, secret: true, parameter: 'pushgateway-token',
    summary: 'bearer token for the gateway (not with basic auth)',
  },
  PUSHGATEWAY_CA_FILE: {
    kind: 'file', scope: 'run', readBy: collect,
    summary: 'PEM bundle for a gateway behind a private CA (certificates are always checked); deployed: a file inside the project, shipped in the zip',
  },
  PUSHGATEWAY_JOB: {
    kind: 'text', scope: 'run', readBy: collect, default: 'xyn_metrics',
    summary: 'the job of the one group the tick replaces',
  },
  PUSHGATEWAY_GROUPING: {
    kind: 'labels', scope: 'run', readBy: collect,
    summary: 'static grouping labels, e.g. `env=prod,region=eu` (never per-invocation; never a label the metrics carry)',
  },
  PUSHGATEWAY_AUTH: {
    kind: 'choice', scope: 'deploy', readBy: none, default: 'none', values: ['none', 'basic', 'bearer'],
    summary: 'how the deployed collect authenticates to the gateway: basic (PUSHGATEWAY_USERNAME, password from SSM) or bearer (token from SSM)',
  },

  // ---------------------------------------------------------------- remote write
  REMOTE_WRITE_URL: {
    kind: 'url', scope: 'run', readBy: collect,
    summary: 'a Prometheus remote write 1.0 endpoint (Mimir `…/api/v1/push`, AMP `…/api/v1/remote_write`, Prometheus `…/api/v1/write`): a second sink, alongside or instead of the Pushgateway (docs/metrics.md)',
  },
  REMOTE_WRITE_USERNAME: {
    kind: 'text', scope: 'run', readBy: collect,
    summary: 'basic-auth user for the receiver (e.g. the Mimir tenant; deployed: with REMOTE_WRITE_AUTH=basic)',
  },
  REMOTE_WRITE_PASSWORD: {
    kind: 'text', scope: 'run', readBy: collect, secret: true, parameter: 'remote-write-password',
    summary: 'basic-auth password for the receiver',
  },
  REMOTE_WRITE_TOKEN: {
    kind: 'text', scope: 'run', readBy: collect, secret: true, parameter: 'remote-write-token',
    summary: 'bearer token for the receiver (not with basic auth or SigV4)',
  },
  REMOTE_WRITE_SIGV4: {
    kind: 'flag', scope: 'run', readBy: collect, default: false,
    summary: '`true`: sign with AWS SigV4 for service `aps` (AMP) with the function\'s role credentials',
  },
  REMOTE_WRITE_REGION: {
    kind: 'text', scope: 'run', readBy: collect, defaultText: 'AWS_REGION',
    summary: 'the AMP workspace\'s region, for SigV4',
  },
  REMOTE_WRITE_CA_FILE: {
    kind: 'file', scope: 'run', readBy: collect,
    summary: 'PEM bundle for a receiver behind a private CA; deployed: a file inside the project, shipped in the zip',
  },
  REMOTE_WRITE_JOB: {
    kind: 'text', scope: 'run', readBy: collect, defaultText: 'PUSHGATEWAY_JOB',
    summary: 'the explicit job label of every written series',
  },
  REMOTE_WRITE_LABELS: {
    kind: 'labels', scope: 'run', readBy: collect, defaultText: 'PUSHGATEWAY_GROUPING',
    summary: 'static labels of every written series, e.g. `env=prod` (never per-invocation; never a label the metrics carry)',
  },
  REMOTE_WRITE_AUTH: {
    kind: 'choice', scope: 'deploy', readBy: none, default: 'none', values: ['none', 'basic', 'bearer'],
    summary: 'how the deployed collect authenticates to the receiver: basic (REMOTE_WRITE_USERNAME, password from SSM) or bearer (token from SSM); SigV4 is REMOTE_WRITE_SIGV4',
  },
  AMP_WORKSPACE_ARN: {
    kind: 'text', scope: 'deploy', readBy: none,
    summary: 'with REMOTE_WRITE_SIGV4=true: the AMP workspace the role may aps:RemoteWrite to (arn:aws:aps:<region>:<account>:workspace/<id>)',
  },

  // ---------------------------------------------------------------- the tick
  TICK_TIMEOUT_MS: {
    kind: 'integer', scope: 'run', readBy: both, default: 25_000, min: 100, max: 900_000,
    summary: 'deadline for the whole tick (secrets, connect, query, close, every push attempt); the Lambda\'s remaining time lowers it',
  },
  PUSH_TIMEOUT_MS: {
    kind: 'integer', scope: 'run', readBy: collect, default: 5_000, min: 10, max: 600_000,
    summary: 'deadline of one push (or remote write) attempt',
  },
  PUSH_RETRIES: {
    kind: 'integer', scope: 'run', readBy: collect, default: 2, min: 0, max: 10,
    summary: 'retries on network errors, 429 and 5xx (never on another 4xx or a certificate error), within the tick deadline; per sink',
  },
  MAX_EVENT_AGE_SECONDS: {
    kind: 'integer', scope: 'run', readBy: collect, default: 90, min: 0, max: 86_400,
    summary: 'a scheduled event older than this is skipped, not pushed (0 disables)',
  },
  PUSH_DRY_RUN: {
    kind: 'flag', scope: 'local', readBy: collect, default: false,
    summary: '`true`: no gateway; the tick logs its exposition text',
  },

  // ---------------------------------------------------------------- secrets
  SECRETS_CACHE_SECONDS: {
    kind: 'integer', scope: 'run', readBy: both, default: 300, min: 0, max: 3_600,
    summary: 'how long a warm container reuses values read from SSM (0: every invocation); a refused credential rereads at once',
  },
  SECRETS_STALE_SECONDS: {
    kind: 'integer', scope: 'run', readBy: both, default: 3_600, min: 0, max: 86_400,
    summary: 'when SSM cannot be read, a warm container keeps using a value it read this long ago at most, and logs a warning (0: never)',
  },

  // ---------------------------------------------------------------- extras (docs/extras.md)
  METRICS_BEARER_TOKEN: {
    kind: 'text', scope: 'run', readBy: metrics, secret: true, parameter: 'metrics-bearer-token',
    summary: 'the bearer token `GET /metrics` demands (at least 16 characters); unset, the endpoint answers 503',
  },
  SAMPLES_PER_INVOCATION: {
    kind: 'integer', scope: 'run', readBy: collect, default: 1, min: 1, max: 60,
    summary: 'samples (ticks) per scheduled invocation, evenly spaced within SCHEDULE_PERIOD_SECONDS',
  },
  SCHEDULE_PERIOD_SECONDS: {
    kind: 'integer', scope: 'run', readBy: collect, default: 60, min: 1, max: 3_600,
    summary: 'the schedule\'s period; must match COLLECT_SCHEDULE',
  },
  HEARTBEAT_TABLE: {
    kind: 'identifier', scope: 'run', readBy: both,
    summary: 'worker liveness: the heartbeat table (`xyn_workers_alive`)',
  },
  HEARTBEAT_WORKER_COLUMN: {
    kind: 'identifier', scope: 'run', readBy: both, default: 'worker_id',
    summary: 'the heartbeat table\'s worker column',
  },
  HEARTBEAT_AT_COLUMN: {
    kind: 'identifier', scope: 'run', readBy: both, default: 'heartbeat_at',
    summary: 'the heartbeat table\'s timestamp column',
  },
  HEARTBEAT_TTL_SECONDS: {
    kind: 'integer', scope: 'run', readBy: both, default: 60, min: 1, max: 86_400,
    summary: 'a worker whose last heartbeat is older than this is not alive',
  },
  RUN_STARTED_COLUMN: {
    kind: 'identifier', scope: 'run', readBy: both,
    summary: 'flow: the runs table\'s start-time column (xyn_runs_started_in_window, xyn_queue_wait_seconds); index it',
  },
  RUN_FINISHED_COLUMN: {
    kind: 'identifier', scope: 'run', readBy: both,
    summary: 'flow: the runs table\'s finish-time column (xyn_runs_finished_in_window{status}); index it',
  },
  FLOW_WINDOW_SECONDS: {
    kind: 'integer', scope: 'run', readBy: both, default: 300, min: 10, max: 86_400,
    summary: 'the flow figures count runs started or finished within this many seconds of the database clock; keep it at least the schedule period',
  },
  BLUEPRINT_COLUMN: {
    kind: 'identifier', scope: 'run', readBy: both,
    summary: 'per-blueprint metrics: the runs table\'s blueprint column (needs RUN_STARTED_COLUMN and RUN_FINISHED_COLUMN)',
  },
  BLUEPRINT_WINDOW_SECONDS: {
    kind: 'integer', scope: 'run', readBy: both, default: 3_600, min: 60, max: 604_800,
    summary: 'durations cover runs finished within this many seconds',
  },
  BLUEPRINT_TOP_K: {
    kind: 'integer', scope: 'run', readBy: both, default: 20, min: 1, max: 200,
    summary: 'blueprints beyond the top K by volume are summed under `blueprint="other"`',
  },

  // ---------------------------------------------------------------- deploy (serverless.yml, scripts/deploy/)
  AWS_REGION: {
    kind: 'text', scope: 'deploy', readBy: none, defaultText: '(required: no default)',
    summary: 'the stack\'s region (or --region); the SSM parameters live there and the role\'s ARNs name it',
  },
  METRICS_ENDPOINT: {
    kind: 'choice', scope: 'deploy', readBy: none, default: 'off', values: ['on', 'off'],
    summary: '`on` deploys the metrics function and its public HTTP API (`GET /metrics`, docs/extras.md)',
  },
  METRICS_TICK_TIMEOUT_MS: {
    kind: 'integer', scope: 'deploy', readBy: none, default: 8_000, min: 100, max: 9_000,
    summary: 'the metrics function\'s TICK_TIMEOUT_MS (a scrape gives up after 10 s)',
  },
  COLLECT_SCHEDULE: {
    kind: 'text', scope: 'deploy', readBy: none, default: 'rate(1 minute)',
    summary: 'the schedule expression of `collect`',
  },
  COLLECT_SCHEDULE_METHOD: {
    kind: 'choice', scope: 'deploy', readBy: none, default: 'eventBus', values: ['eventBus', 'scheduler'],
    summary: 'what triggers `collect`: `eventBus`, a scheduled EventBridge rule, or `scheduler`, EventBridge Scheduler; both with no retries and a 60 s maximum event age',
  },
  COLLECT_TIMEOUT_SECONDS: {
    kind: 'integer', scope: 'deploy', readBy: none, min: 1, max: 900, defaultText: '30, or SCHEDULE_PERIOD_SECONDS + 10 when sampling',
    summary: 'the `collect` Lambda timeout',
  },
  DATABASE_CA_FILE: {
    kind: 'file', scope: 'deploy', readBy: none,
    summary: 'a PEM bundle inside the project for the database\'s CA (e.g. RDS\'s), shipped in both zips, for `sslrootcert=/var/task/<path>` in DATABASE_URL',
  },

  DATABASE_IAM_RESOURCE_ID: {
    kind: 'text', scope: 'deploy', readBy: none,
    summary: 'with DATABASE_IAM_AUTH=true: the database\'s resource id (DbiResourceId db-…, an Aurora cluster\'s cluster-…, or an RDS Proxy\'s prx-…) in the rds-db:connect ARN',
  },
  DATABASE_IAM_USER: {
    kind: 'text', scope: 'deploy', readBy: none,
    summary: 'with DATABASE_IAM_AUTH=true: the database user the role may connect as (rds-db:connect on exactly that user); DATABASE_URL\'s user must be the same',
  },
  VPC_SUBNET_IDS: {
    kind: 'list', scope: 'deploy', readBy: none, max: 16,
    summary: 'subnet-… ids, comma-separated (with VPC_SECURITY_GROUP_IDS): both functions run in these subnets, e.g. the database\'s private ones (README, "Deploy")',
  },
  VPC_SECURITY_GROUP_IDS: {
    kind: 'list', scope: 'deploy', readBy: none, max: 5,
    summary: 'sg-… ids, comma-separated (with VPC_SUBNET_IDS): the functions\' security groups, which the database\'s security group must admit',
  },
  COLLECT_RESERVED_CONCURRENCY: {
    kind: 'integer', scope: 'deploy', readBy: none, default: 1, min: 1, max: 1_000, words: ['none'],
    summary: 'concurrent executions reserved for collect (1: one tick at a time); none reserves nothing (0 is refused: to Lambda it means run nothing)',
  },
  METRICS_RESERVED_CONCURRENCY: {
    kind: 'integer', scope: 'deploy', readBy: none, default: 2, min: 1, max: 1_000, words: ['none'],
    summary: 'concurrent executions reserved for the metrics function, which bounds the database sessions scrapes open; none reserves nothing',
  },
  METRICS_THROTTLE_RATE: {
    kind: 'integer', scope: 'deploy', readBy: none, default: 1, min: 1, max: 10_000,
    summary: 'GET /metrics: requests per second the HTTP API lets through (steady rate); beyond it API Gateway answers 429 without invoking the function',
  },
  METRICS_THROTTLE_BURST: {
    kind: 'integer', scope: 'deploy', readBy: none, default: 5, min: 1, max: 5_000,
    summary: 'GET /metrics: requests the HTTP API lets through at once above the rate',
  },

  // ---------------------------------------------------------------- local tooling (npm start)
  DEV_TICK_SECONDS: {
    kind: 'integer', scope: 'local', readBy: none, default: 0, min: 0, max: 86_400,
    summary: 'npm start: an extra tick every N seconds besides the schedule (0: off)',
  },
  OFFLINE_LAMBDA_PORT: {
    kind: 'integer', scope: 'local', readBy: none, min: 1, max: 65_535, defaultText: 'a free port',
    summary: 'npm start: serverless offline\'s Lambda endpoint port',
  },
  OFFLINE_HTTP_PORT: {
    kind: 'integer', scope: 'local', readBy: none, min: 1, max: 65_535, defaultText: 'a free port',
    summary: 'npm start: serverless offline\'s HTTP port (GET /metrics)',
  },
  VERBOSE: {
    kind: 'flag', scope: 'local', readBy: none, default: false,
    summary: 'npm start: show serverless offline\'s own output',
  },
} as const satisfies Record<string, Setting>;

export type SettingName = keyof typeof SETTINGS;

/** The names of settings of one kind, so a reader can only be asked for a setting of its kind. */
export type SettingOfKind<K extends Kind> = {
  [N in SettingName]: (typeof SETTINGS)[N]['kind'] extends K ? N : never;
}[SettingName];

export const SETTING_NAMES = Object.keys(SETTINGS) as SettingName[];

export function setting(name: SettingName): Setting {
  return SETTINGS[name];
}

/** The secret variables (the contract of lib/runtime/secrets.ts), in table order. */
export const SECRET_SETTINGS = SETTING_NAMES.filter((name) => setting(name).secret === true);

/** Deployed, a function reads secret X from the SSM parameter that X_SSM_PARAMETER names. */
export const SSM_PARAMETER_SUFFIX = '_SSM_PARAMETER';

/** The settings `fn` reads at run time. */
export function settingsReadBy(fn: FunctionName): SettingName[] {
  return SETTING_NAMES.filter((name) => (setting(name).readBy as readonly FunctionName[]).includes(fn));
}

/** The literal default of a setting (throws for one without: a bug, not a configuration error). */
export function defaultOf<N extends SettingName>(name: N): (typeof SETTINGS)[N] extends { default: infer D } ? D : never {
  const value = setting(name).default;
  if (value === undefined) throw new Error(`setting ${name} has no literal default`);
  return value as never;
}
