/**
 * Per-blueprint figures (opt-in): the blueprint SELECT's row in, a validated
 * object out. The cap (top K + "other") is applied in SQL (lib/source/sql.ts),
 * where the pooled quantiles of "other" can be computed; this checks the
 * result holds no more than K + 1 labels, so a bug cannot explode cardinality.
 */

import { count, jsonArray, label, oneRow, seconds, SnapshotError } from './rows';

/** The quantiles reported, as label values. */
export const BLUEPRINT_QUANTILES = ['0.5', '0.9', '0.99'] as const;
export type BlueprintQuantile = (typeof BLUEPRINT_QUANTILES)[number];

export interface BlueprintCounts {
  blueprint: string;
  queued: number;
  running: number;
}

export interface BlueprintDurations {
  blueprint: string;
  /** Runs finished in the window (the sample size behind the quantiles). */
  finished: number;
  quantiles: Record<BlueprintQuantile, number>;
}

export interface BlueprintSnapshot {
  /** One entry per kept label (top K names, then "other" when anything was folded in). */
  counts: BlueprintCounts[];
  /** Only labels with at least one run finished in the window. */
  durations: BlueprintDurations[];
}

export function toBlueprintSnapshot(given: Record<string, unknown> | undefined, topK: number): BlueprintSnapshot {
  const row = oneRow(given, 'blueprint');
  const counts = jsonArray(row.blueprint_counts, 'blueprint_counts').map((entry) => {
    const e = entry as Record<string, unknown>;
    const blueprint = label(e.blueprint, 'blueprint');
    return {
      blueprint,
      queued: count(e.queued, `queued of ${blueprint}`),
      running: count(e.running, `running of ${blueprint}`),
    };
  });
  const durations = jsonArray(row.blueprint_durations, 'blueprint_durations').map((entry) => {
    const e = entry as Record<string, unknown>;
    const blueprint = label(e.blueprint, 'blueprint');
    const values = Array.isArray(e.quantiles) ? e.quantiles : [];
    if (values.length !== BLUEPRINT_QUANTILES.length) {
      throw new SnapshotError(`unexpected quantiles of ${blueprint}: ${JSON.stringify(e.quantiles)}`);
    }
    const quantiles = Object.fromEntries(
      BLUEPRINT_QUANTILES.map((q, i) => [q, Math.max(0, seconds(values[i], `p${q} of ${blueprint}`))]),
    ) as Record<BlueprintQuantile, number>;
    return { blueprint, finished: count(e.finished, `finished of ${blueprint}`), quantiles };
  });
  for (const [field, list] of [['blueprint_counts', counts], ['blueprint_durations', durations]] as const) {
    if (list.length > topK + 1) {
      throw new SnapshotError(`${field} has ${list.length} labels, more than BLUEPRINT_TOP_K + 1 = ${topK + 1}`);
    }
    if (new Set(list.map((e) => e.blueprint)).size !== list.length) {
      throw new SnapshotError(`${field} names a blueprint twice`);
    }
  }
  return { counts, durations };
}
