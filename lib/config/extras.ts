/**
 * The opt-in extras (docs/extras.md) and the sampling of the scheduled
 * function: each extra present when configured, absent otherwise, and a
 * half-configured one is an error rather than a silent nothing.
 */

import { ConfigError } from './errors';
import { parseColumnName, parseTableName } from './identifiers';
import { integer, text, textOrDefault, type Env } from './read';
import type { BlueprintConfig, ColumnName, ExtrasConfig, FlowConfig, HeartbeatConfig, SamplingConfig } from './types';

/** A bearer token shorter than this is guessable; the /metrics function would be as good as open. */
export const MIN_BEARER_TOKEN_LENGTH = 16;

function parseHeartbeat(env: Env): HeartbeatConfig | undefined {
  const table = text(env, 'HEARTBEAT_TABLE');
  if (table === undefined) {
    // A half-configured feature is a typo, not a wish: say so instead of silently doing nothing.
    const stray = (['HEARTBEAT_WORKER_COLUMN', 'HEARTBEAT_AT_COLUMN', 'HEARTBEAT_TTL_SECONDS'] as const).find((v) => text(env, v) !== undefined);
    if (stray) throw new ConfigError(`${stray} is set but HEARTBEAT_TABLE is not; set HEARTBEAT_TABLE to enable worker liveness`);
    return undefined;
  }
  return {
    table: parseTableName(table, 'HEARTBEAT_TABLE'),
    workerColumn: parseColumnName(textOrDefault(env, 'HEARTBEAT_WORKER_COLUMN'), 'HEARTBEAT_WORKER_COLUMN'),
    atColumn: parseColumnName(textOrDefault(env, 'HEARTBEAT_AT_COLUMN'), 'HEARTBEAT_AT_COLUMN'),
    ttlSeconds: integer(env, 'HEARTBEAT_TTL_SECONDS'),
  };
}

/** The time columns the flow figures and the per-blueprint durations read, each optional on its own. */
function timeColumn(env: Env, name: 'RUN_STARTED_COLUMN' | 'RUN_FINISHED_COLUMN'): ColumnName | undefined {
  const raw = text(env, name);
  return raw === undefined ? undefined : parseColumnName(raw, name);
}

function parseFlow(env: Env): FlowConfig | undefined {
  const startedColumn = timeColumn(env, 'RUN_STARTED_COLUMN');
  const finishedColumn = timeColumn(env, 'RUN_FINISHED_COLUMN');
  if (startedColumn === undefined && finishedColumn === undefined) {
    if (text(env, 'FLOW_WINDOW_SECONDS') !== undefined) {
      throw new ConfigError('FLOW_WINDOW_SECONDS is set but neither RUN_STARTED_COLUMN nor RUN_FINISHED_COLUMN is; set one or both to enable the flow figures');
    }
    return undefined;
  }
  return { startedColumn, finishedColumn, windowSeconds: integer(env, 'FLOW_WINDOW_SECONDS') };
}

function parseBlueprints(env: Env): BlueprintConfig | undefined {
  const columns = ['BLUEPRINT_COLUMN', 'RUN_STARTED_COLUMN', 'RUN_FINISHED_COLUMN'] as const;
  const blueprint = text(env, 'BLUEPRINT_COLUMN');
  if (blueprint === undefined) {
    // The time columns alone are the flow figures; only the blueprint settings are stray here.
    const stray = (['BLUEPRINT_WINDOW_SECONDS', 'BLUEPRINT_TOP_K'] as const).find((v) => text(env, v) !== undefined);
    if (stray) throw new ConfigError(`${stray} is set but BLUEPRINT_COLUMN is not; set ${columns.join(', ')} to enable per-blueprint metrics`);
    return undefined;
  }
  const set = columns.filter((v) => text(env, v) !== undefined);
  const missing = columns.find((v) => text(env, v) === undefined);
  if (missing) {
    throw new ConfigError(`${missing} is not set; per-blueprint metrics need all of ${columns.join(', ')} (${set.join(', ')} ${set.length === 1 ? 'is' : 'are'} set)`);
  }
  return {
    column: parseColumnName(blueprint, 'BLUEPRINT_COLUMN'),
    startedColumn: timeColumn(env, 'RUN_STARTED_COLUMN')!,
    finishedColumn: timeColumn(env, 'RUN_FINISHED_COLUMN')!,
    windowSeconds: integer(env, 'BLUEPRINT_WINDOW_SECONDS'),
    topK: integer(env, 'BLUEPRINT_TOP_K'),
  };
}

export function parseExtras(env: Env): ExtrasConfig {
  return { heartbeat: parseHeartbeat(env), blueprints: parseBlueprints(env), flow: parseFlow(env) };
}

export function parseSampling(env: Env): SamplingConfig {
  const schedulePeriodSeconds = integer(env, 'SCHEDULE_PERIOD_SECONDS');
  const samplesPerInvocation = integer(env, 'SAMPLES_PER_INVOCATION');
  if (samplesPerInvocation > schedulePeriodSeconds) {
    throw new ConfigError(
      `SAMPLES_PER_INVOCATION must leave at least 1 second per sample: ${samplesPerInvocation} samples in SCHEDULE_PERIOD_SECONDS=${schedulePeriodSeconds}`,
    );
  }
  return { samplesPerInvocation, schedulePeriodSeconds };
}

export function parseBearerToken(env: Env): string | undefined {
  const token = text(env, 'METRICS_BEARER_TOKEN');
  if (token === undefined) return undefined;
  // The length is safe to name; the value never is.
  if (token.length < MIN_BEARER_TOKEN_LENGTH) {
    throw new ConfigError(`METRICS_BEARER_TOKEN must be at least ${MIN_BEARER_TOKEN_LENGTH} characters (e.g. openssl rand -hex 32)`);
  }
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new ConfigError('METRICS_BEARER_TOKEN must be printable ASCII without spaces');
  }
  return token;
}
