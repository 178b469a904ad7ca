/**
 * The program's configuration, as parseConfig (lib/config/parse.ts) builds it
 * from the environment: one section per stage of the pipeline, each complete
 * (defaults applied), an opt-in feature present or absent in one place.
 */

/** libpq's sslmode values, with libpq's meaning (docs/security.md, "Databases"). */
export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** TLS to a non-Neon database over TCP, from DATABASE_URL's sslmode and sslrootcert. */
export interface DatabaseTls {
  /** As libpq would act: require with a root certificate is verify-ca. */
  mode: SslMode;
  /** CA certificates (PEM) from an sslrootcert file; undefined: Node's bundled public CAs. */
  ca: string | undefined;
}

/** libpq's channel_binding values (SCRAM-SHA-256-PLUS over TLS), with libpq's meaning. */
export const CHANNEL_BINDINGS = ['disable', 'prefer', 'require'] as const;
export type ChannelBinding = (typeof CHANNEL_BINDINGS)[number];

/**
 * RDS IAM database authentication (DATABASE_IAM_AUTH=true): a token, signed
 * with the function's role credentials for this host, port and user, is the
 * password of each connection (lib/source/iam-token.ts).
 */
export interface DatabaseIam {
  region: string;
  /** The host as the token names it: DATABASE_URL's, without IPv6 brackets. */
  host: string;
  port: number;
  user: string;
}

export interface TableName {
  schema: string | undefined;
  name: string;
  /** Quoted for SQL: "schema"."name" */
  sql: string;
  /** As written by the operator, for messages. */
  display: string;
}

export interface ColumnName {
  name: string;
  /** Quoted for SQL: "name" */
  sql: string;
}

export interface DatabaseConfig {
  /** DATABASE_URL as given (it holds the password: never logged). */
  url: string;
  /** The host for messages and the transport choice; a Unix socket's directory (local use) starts with "/". */
  host: string;
  /**
   * A Neon-compatible WebSocket proxy: host:port[/path] is a local plain-text
   * bridge (loopback only, for loopback databases); wss://… a remote one.
   */
  wsProxy: string | undefined;
  tls: DatabaseTls;
  /** channel_binding as libpq reads it; prefer (libpq's default) when unset. */
  channelBinding: ChannelBinding;
  /** Set when each connection authenticates with an RDS IAM token instead of a password. */
  iam: DatabaseIam | undefined;
  /** DATABASE_ALLOW_PLAINTEXT=true let a session to a non-loopback host go unencrypted (logged every tick). */
  plaintextToRemote: boolean;
  runsTable: TableName;
  statementTimeoutMs: number;
  lockTimeoutMs: number;
  /**
   * Terminal statuses whose planner estimate is above this are reported from the
   * statistics, not counted; undefined (STATUS_ESTIMATE_ABOVE=off) counts every status exactly.
   */
  statusEstimateAbove: number | undefined;
  /** Status labels kept by name besides QUEUED and RUNNING; the rest are summed under status="other". */
  statusTopK: number;
}

export type HttpAuth =
  | { kind: 'basic'; username: string; password: string }
  | { kind: 'bearer'; token: string };

export interface PushgatewayConfig {
  /** Base URL without userinfo, e.g. https://pushgateway.example:9091 */
  url: string;
  auth: HttpAuth | undefined;
  job: string;
  /** Static grouping labels besides job (e.g. env=prod). Never per-invocation. */
  grouping: Record<string, string>;
  /** CA certificates (PEM, read at parse) for a gateway behind a private CA. */
  ca: string | undefined;
}

export type RemoteWriteAuth =
  | HttpAuth
  /** AWS Signature V4 (Amazon Managed Service for Prometheus): the function's role credentials from the environment. */
  | { kind: 'sigv4'; region: string };

/** Prometheus remote write 1.0 (Mimir, Cortex, Thanos Receive, AMP, Prometheus's own receiver). */
export interface RemoteWriteConfig {
  /** The receiver's write endpoint without userinfo, e.g. https://mimir.example/api/v1/push */
  url: string;
  auth: RemoteWriteAuth | undefined;
  /** The explicit job label of every series (the Pushgateway path gets it from the group). */
  job: string;
  /** Static labels on every series besides job (e.g. env=prod). Never per-invocation. */
  labels: Record<string, string>;
  /** CA certificates (PEM, read at parse) for a receiver behind a private CA. */
  ca: string | undefined;
}

export interface SinksConfig {
  pushgateway: PushgatewayConfig | undefined;
  /** REMOTE_WRITE_URL: a second sink, alongside or instead of the Pushgateway. */
  remoteWrite: RemoteWriteConfig | undefined;
  /** PUSH_DRY_RUN=true: no sink; the tick logs its exposition text instead (local use). */
  dryRun: boolean;
  /** Wall-time bound of one attempt (PUSH_TIMEOUT_MS). */
  attemptTimeoutMs: number;
  retries: number;
}

export interface TickConfig {
  /** Upper bound for one tick; the Lambda's remaining time lowers it further. */
  timeoutMs: number;
  /** A scheduled event older than this is not pushed (0 disables the check). */
  maxEventAgeSeconds: number;
}

export interface SamplingConfig {
  /** Samples (ticks) per scheduled invocation, evenly spaced within the schedule period. */
  samplesPerInvocation: number;
  /** The schedule's period; must match the deployed rate (COLLECT_SCHEDULE). */
  schedulePeriodSeconds: number;
}

/** Opt-in worker liveness (HEARTBEAT_TABLE): one count, never a per-worker label. */
export interface HeartbeatConfig {
  table: TableName;
  workerColumn: ColumnName;
  atColumn: ColumnName;
  ttlSeconds: number;
}

/**
 * Opt-in flow figures (RUN_STARTED_COLUMN and/or RUN_FINISHED_COLUMN): runs
 * started and finished within the window, and the wait from due to start.
 * Each figure is present when its column is configured.
 */
export interface FlowConfig {
  startedColumn: ColumnName | undefined;
  finishedColumn: ColumnName | undefined;
  /** Runs started or finished within this many seconds of the database clock. */
  windowSeconds: number;
}

/** Opt-in per-blueprint metrics (BLUEPRINT_COLUMN with the start and finish columns). */
export interface BlueprintConfig {
  column: ColumnName;
  startedColumn: ColumnName;
  finishedColumn: ColumnName;
  /** Durations cover runs finished within this many seconds of the database clock. */
  windowSeconds: number;
  /** Blueprints beyond the top K by volume are summed under blueprint="other". */
  topK: number;
}

/** The opt-in extras (docs/extras.md): each present when configured, absent otherwise. */
export interface ExtrasConfig {
  heartbeat: HeartbeatConfig | undefined;
  blueprints: BlueprintConfig | undefined;
  flow: FlowConfig | undefined;
}

export interface Config {
  database: DatabaseConfig;
  sinks: SinksConfig;
  tick: TickConfig;
  sampling: SamplingConfig;
  extras: ExtrasConfig;
  /** Bearer token the /metrics HTTP function demands; unset means it refuses to serve. */
  metricsBearerToken: string | undefined;
  /** Every secret value held, for redaction of anything that leaves the process. */
  secrets: string[];
}
