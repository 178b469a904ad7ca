/**
 * The sinks section: the Pushgateway, remote write, or neither (a dry run, the
 * CLI), with the attempt bound and retries they share.
 */

import { AWS_REGION_PATTERN } from './aws';
import { ConfigError } from './errors';
import { isLoopbackHost } from './hosts';
import { LABEL_VALUE, parseLabels } from './identifiers';
import { readPemFile } from './pem';
import { flag, integer, required, text, textOrDefault, type Env } from './read';
import type { HttpAuth, PushgatewayConfig, RemoteWriteAuth, RemoteWriteConfig, SinksConfig } from './types';
import { checkPortText, checkSecretText, parseUrl, requireScheme } from './urls';

/** The CA bundle of a sink, read now: it must exist and hold a PEM certificate, not fail at the first push. */
function sinkCa(env: Env, variable: 'PUSHGATEWAY_CA_FILE' | 'REMOTE_WRITE_CA_FILE', url: URL, urlVariable: string): string | undefined {
  const path = text(env, variable);
  if (path === undefined) return undefined;
  if (url.protocol !== 'https:') throw new ConfigError(`${variable} is set but ${urlVariable} is not https://`);
  return readPemFile(variable, path);
}

function basicAuth(prefix: 'PUSHGATEWAY' | 'REMOTE_WRITE', username: string | undefined, password: string | undefined): HttpAuth | undefined {
  if (username === undefined && password === undefined) return undefined;
  if (username === undefined) throw new ConfigError(`${prefix}_PASSWORD is set but ${prefix}_USERNAME is not`);
  if (password === undefined) throw new ConfigError(`${prefix}_USERNAME is set but ${prefix}_PASSWORD is not`);
  if (username.includes(':')) throw new ConfigError(`${prefix}_USERNAME must not contain ":" (basic auth separates user and password with it)`);
  checkSecretText(`${prefix}_USERNAME`, username);
  checkSecretText(`${prefix}_PASSWORD`, password);
  return { kind: 'basic', username, password };
}

function bearerAuth(name: 'PUSHGATEWAY_TOKEN' | 'REMOTE_WRITE_TOKEN', token: string): HttpAuth {
  checkSecretText(name, token);
  return { kind: 'bearer', token };
}

/** Credentials in http:// to another machine would cross the network in clear text. */
function checkCleartext(name: string, url: URL, auth: unknown): void {
  if (auth !== undefined && url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    throw new ConfigError(`${name} is http:// but credentials are configured: they would cross the network in clear text; use https://`);
  }
}

function parsePushgateway(env: Env, isRequired: boolean): PushgatewayConfig | undefined {
  const raw = isRequired ? required(env, 'PUSHGATEWAY_URL', 'e.g. http://pushgateway:9091, unless REMOTE_WRITE_URL is set') : text(env, 'PUSHGATEWAY_URL');
  if (raw === undefined) return undefined;
  requireScheme('PUSHGATEWAY_URL', raw, 'https://pushgateway.example:9091');
  checkPortText('PUSHGATEWAY_URL', raw);
  const url = parseUrl('PUSHGATEWAY_URL', raw, ['http:', 'https:']);
  if (url.search || url.hash) throw new ConfigError('PUSHGATEWAY_URL must not have a query or fragment');
  if (/\/metrics(\/|$)/.test(url.pathname)) {
    throw new ConfigError('PUSHGATEWAY_URL is the base URL of the gateway; drop the /metrics… path (the push adds /metrics/job/<job>)');
  }

  const username = text(env, 'PUSHGATEWAY_USERNAME') ?? (url.username ? decodeURIComponent(url.username) : undefined);
  const password = text(env, 'PUSHGATEWAY_PASSWORD') ?? (url.password ? decodeURIComponent(url.password) : undefined);
  const token = text(env, 'PUSHGATEWAY_TOKEN');
  if (token !== undefined && (username !== undefined || password !== undefined)) {
    throw new ConfigError('PUSHGATEWAY_TOKEN cannot be combined with basic auth (PUSHGATEWAY_USERNAME/PASSWORD or URL userinfo)');
  }
  const auth = token !== undefined ? bearerAuth('PUSHGATEWAY_TOKEN', token) : basicAuth('PUSHGATEWAY', username, password);
  checkCleartext('PUSHGATEWAY_URL', url, auth);

  url.username = '';
  url.password = '';
  const job = textOrDefault(env, 'PUSHGATEWAY_JOB');
  if (!LABEL_VALUE.test(job)) throw new ConfigError('PUSHGATEWAY_JOB must be 1-128 of letters, digits, _ . : -');
  return {
    url: url.toString().replace(/\/+$/, ''),
    auth,
    job,
    grouping: parseLabels(text(env, 'PUSHGATEWAY_GROUPING'), 'PUSHGATEWAY_GROUPING'),
    ca: sinkCa(env, 'PUSHGATEWAY_CA_FILE', url, 'PUSHGATEWAY_URL'),
  };
}

function parseRemoteWriteAuth(env: Env): RemoteWriteAuth | undefined {
  const username = text(env, 'REMOTE_WRITE_USERNAME');
  const password = text(env, 'REMOTE_WRITE_PASSWORD');
  const token = text(env, 'REMOTE_WRITE_TOKEN');
  const sigv4 = flag(env, 'REMOTE_WRITE_SIGV4');
  const chosen = [
    ...(username !== undefined || password !== undefined ? ['REMOTE_WRITE_USERNAME/PASSWORD'] : []),
    ...(token !== undefined ? ['REMOTE_WRITE_TOKEN'] : []),
    ...(sigv4 ? ['REMOTE_WRITE_SIGV4'] : []),
  ];
  if (chosen.length > 1) throw new ConfigError(`remote write takes one kind of auth; ${chosen.join(' and ')} are both set`);
  if (token !== undefined) return bearerAuth('REMOTE_WRITE_TOKEN', token);
  if (sigv4) {
    // Lambda sets AWS_REGION; REMOTE_WRITE_REGION names the workspace's region when it differs.
    const region = text(env, 'REMOTE_WRITE_REGION') ?? text(env, 'AWS_REGION');
    if (region === undefined) throw new ConfigError('REMOTE_WRITE_SIGV4=true needs REMOTE_WRITE_REGION (or AWS_REGION), the AMP workspace\'s region');
    if (!AWS_REGION_PATTERN.test(region)) throw new ConfigError(`REMOTE_WRITE_REGION must be an AWS region such as eu-west-1, got "${region.slice(0, 40)}"`);
    return { kind: 'sigv4', region };
  }
  return basicAuth('REMOTE_WRITE', username, password);
}

/** REMOTE_WRITE_*: undefined unless REMOTE_WRITE_URL is set. */
function parseRemoteWrite(env: Env): RemoteWriteConfig | undefined {
  const raw = text(env, 'REMOTE_WRITE_URL');
  if (raw === undefined) {
    const stray = [
      ...(['REMOTE_WRITE_USERNAME', 'REMOTE_WRITE_PASSWORD', 'REMOTE_WRITE_TOKEN', 'REMOTE_WRITE_CA_FILE'] as const).filter((name) => text(env, name) !== undefined),
      // The deploy template writes REMOTE_WRITE_SIGV4=false when remote write is off.
      ...(flag(env, 'REMOTE_WRITE_SIGV4') ? ['REMOTE_WRITE_SIGV4'] : []),
    ][0];
    if (stray) throw new ConfigError(`${stray} is set but REMOTE_WRITE_URL is not`);
    return undefined;
  }
  requireScheme('REMOTE_WRITE_URL', raw, 'https://mimir.example/api/v1/push');
  checkPortText('REMOTE_WRITE_URL', raw);
  const url = parseUrl('REMOTE_WRITE_URL', raw, ['http:', 'https:']);
  if (url.username || url.password) {
    throw new ConfigError('REMOTE_WRITE_URL must not carry credentials; use REMOTE_WRITE_USERNAME and REMOTE_WRITE_PASSWORD');
  }
  if (url.hash) throw new ConfigError('REMOTE_WRITE_URL must not have a fragment');
  if (url.pathname === '/' || url.pathname === '') {
    throw new ConfigError('REMOTE_WRITE_URL is the write endpoint, not a base URL (e.g. …/api/v1/push for Mimir, …/api/v1/write for Prometheus)');
  }
  const auth = parseRemoteWriteAuth(env);
  if (auth !== undefined && url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    throw new ConfigError('REMOTE_WRITE_URL is http:// but auth is configured: it would cross the network in clear text; use https://');
  }
  const job = text(env, 'REMOTE_WRITE_JOB') ?? textOrDefault(env, 'PUSHGATEWAY_JOB');
  if (!LABEL_VALUE.test(job)) throw new ConfigError('REMOTE_WRITE_JOB must be 1-128 of letters, digits, _ . : -');
  // One set of static labels for both sinks unless remote write names its own.
  const own = text(env, 'REMOTE_WRITE_LABELS');
  const labels = own !== undefined ? parseLabels(own, 'REMOTE_WRITE_LABELS') : parseLabels(text(env, 'PUSHGATEWAY_GROUPING'), 'PUSHGATEWAY_GROUPING');
  return { url: url.toString(), auth, job, labels, ca: sinkCa(env, 'REMOTE_WRITE_CA_FILE', url, 'REMOTE_WRITE_URL') };
}

/** Every secret value a sink's auth holds, in each form it may take on the wire. */
function authSecrets(auth: RemoteWriteAuth | undefined): string[] {
  // The Authorization header carries base64("user:password"), which holds no base64 of the password alone.
  if (auth?.kind === 'basic') return [auth.password, Buffer.from(`${auth.username}:${auth.password}`).toString('base64')];
  if (auth?.kind === 'bearer') return [auth.token];
  return [];
}

export interface SinksSection {
  sinks: SinksConfig;
  secrets: string[];
}

/** `requireSink`: the scheduled function must push somewhere (a Pushgateway or remote write); the CLI may not. */
export function parseSinks(env: Env, requireSink: boolean): SinksSection {
  const dryRun = flag(env, 'PUSH_DRY_RUN');
  if (dryRun && text(env, 'PUSHGATEWAY_URL') !== undefined) {
    throw new ConfigError('PUSH_DRY_RUN=true and PUSHGATEWAY_URL are both set; choose one');
  }
  if (dryRun && text(env, 'REMOTE_WRITE_URL') !== undefined) {
    throw new ConfigError('PUSH_DRY_RUN=true and REMOTE_WRITE_URL are both set; choose one');
  }
  const remoteWrite = parseRemoteWrite(env);
  // Remote write alone is a complete sink: no Pushgateway needed then.
  const pushgateway = parsePushgateway(env, requireSink && !dryRun && !remoteWrite);
  return {
    sinks: {
      pushgateway,
      remoteWrite,
      dryRun,
      attemptTimeoutMs: integer(env, 'PUSH_TIMEOUT_MS'),
      retries: integer(env, 'PUSH_RETRIES'),
    },
    secrets: [...authSecrets(pushgateway?.auth), ...authSecrets(remoteWrite?.auth)],
  };
}
