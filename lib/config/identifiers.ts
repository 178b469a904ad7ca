/**
 * Names spliced into SQL (tables, columns) and label sets spliced into the
 * push URL and the written series: validated here, so nothing else is ever
 * spliced in (lib/source/sql.ts double-quotes identifiers).
 */

import { METRIC_LABEL_NAMES } from '../metrics/definitions';
import { ConfigError } from './errors';
import type { ColumnName, TableName } from './types';

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const LABEL_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
/**
 * With __name__, job and a metric's own labels (two at most) every series
 * stays within 30 labels, Mimir's default -validation.max-label-names-per-series.
 */
export const MAX_STATIC_LABELS = 20;
// Values travel in a URL path; keep them plain so no encoding games are needed.
export const LABEL_VALUE = /^[A-Za-z0-9_.:-]{1,128}$/;

export function parseTableName(raw: string, variable = 'RUNS_TABLE'): TableName {
  const parts = raw.split('.');
  if (parts.length > 2 || !parts.every((p) => IDENTIFIER.test(p))) {
    throw new ConfigError(
      `${variable} must be a table name or schema.table made of letters, digits and underscores, got "${raw}"`,
    );
  }
  const [first, second] = parts as [string, string | undefined];
  const schema = second === undefined ? undefined : first;
  const name = second === undefined ? first : second;
  const sql = [schema, name]
    .filter((p): p is string => p !== undefined)
    .map((p) => `"${p}"`)
    .join('.');
  return { schema, name, sql, display: raw };
}

export function parseColumnName(raw: string, variable: string): ColumnName {
  if (!IDENTIFIER.test(raw)) {
    throw new ConfigError(`${variable} must be a column name made of letters, digits and underscores, got "${raw}"`);
  }
  return { name: raw, sql: `"${raw}"` };
}

/**
 * Static labels ("env=prod,region=eu") for the Pushgateway group or every
 * written series. Never job, instance or __*, and never a label a metric
 * carries itself (status, quantile, …): the gateway would rewrite the metric's
 * own label and refuse every push; remote write would silently lose one.
 */
export function parseLabels(raw: string | undefined, variable: string): Record<string, string> {
  const labels: Record<string, string> = {};
  if (raw === undefined) return labels;
  for (const pair of raw.split(',')) {
    const [key, value, ...rest] = pair.split('=').map((s) => s.trim());
    if (!key || value === undefined || rest.length > 0) {
      throw new ConfigError(`${variable} must look like "env=prod,region=eu", got "${raw}"`);
    }
    if (!LABEL_NAME.test(key) || key.startsWith('__') || key === 'job' || key === 'instance') {
      throw new ConfigError(`${variable} label "${key.slice(0, 40)}" is not allowed (a Prometheus label name of at most 128 characters, not job, instance or __*)`);
    }
    if (METRIC_LABEL_NAMES.includes(key)) {
      throw new ConfigError(
        `${variable} label "${key}" is a label the metrics carry themselves (${METRIC_LABEL_NAMES.join(', ')}); choose another name, e.g. env or region`,
      );
    }
    if (!LABEL_VALUE.test(value)) {
      throw new ConfigError(`${variable} value for "${key}" must be 1-128 of letters, digits, _ . : -`);
    }
    if (key in labels) throw new ConfigError(`${variable} names "${key}" twice`);
    labels[key] = value;
  }
  if (Object.keys(labels).length > MAX_STATIC_LABELS) {
    throw new ConfigError(`${variable} has ${Object.keys(labels).length} labels; at most ${MAX_STATIC_LABELS}, so every series stays within a receiver's label limit (Mimir: 30)`);
  }
  return labels;
}
