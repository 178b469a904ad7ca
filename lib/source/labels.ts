/**
 * Label values taken from the data (a text status, a blueprint name) stay
 * bounded: each is cut to MAX_LABEL_VALUE_CHARS, and a set of them is capped
 * at its top K by count plus "other" (capLabels). Pure, so the rules are
 * unit-tested without a database.
 *
 * Why 128: a label is for grouping, not for storing data, and 128 characters
 * (at most 512 bytes of UTF-8) stay far inside what receivers accept (Mimir's
 * default -validation.max-length-label-value is 2048); a value over a
 * receiver's limit makes it refuse the whole write with a 400, which is not
 * retried.
 */

export const MAX_LABEL_VALUE_CHARS = 128;

/** The bucket every label outside the top K is summed under. */
export const OTHER_LABEL = 'other';

/** The first MAX_LABEL_VALUE_CHARS characters (code points, as PostgreSQL's left() counts them). */
export function cutLabel(value: string): string {
  const chars = [...value];
  return chars.length <= MAX_LABEL_VALUE_CHARS ? value : chars.slice(0, MAX_LABEL_VALUE_CHARS).join('');
}

export interface LabelCount {
  label: string;
  count: number;
  /** True when the count is (or includes) a planner estimate. */
  estimated: boolean;
}

export interface CapOptions {
  /** Kept by name whatever their count, and not counted against topK. */
  alwaysNamed: readonly string[];
  topK: number;
}

/**
 * Cut every label, merge those the cut made equal, keep `alwaysNamed` and the
 * top K others by count (ties by label) by name, and sum the rest under
 * "other" (present only when something was folded into it). A label that is
 * literally "other" goes to "other" and never takes a named place. Sorted by label.
 */
export function capLabels(entries: readonly LabelCount[], { alwaysNamed, topK }: CapOptions): LabelCount[] {
  const merged = new Map<string, LabelCount>();
  for (const entry of entries) {
    const label = cutLabel(entry.label);
    const seen = merged.get(label);
    merged.set(label, seen ? { label, count: seen.count + entry.count, estimated: seen.estimated || entry.estimated } : { ...entry, label });
  }
  const named = [...merged.values()].filter((e) => alwaysNamed.includes(e.label));
  const ranked = [...merged.values()]
    .filter((e) => !alwaysNamed.includes(e.label) && e.label !== OTHER_LABEL)
    .sort((a, b) => b.count - a.count || compare(a.label, b.label));
  const folded = [...ranked.slice(topK), ...(merged.has(OTHER_LABEL) && !alwaysNamed.includes(OTHER_LABEL) ? [merged.get(OTHER_LABEL)!] : [])];
  const other = folded.length === 0
    ? []
    : [{ label: OTHER_LABEL, count: folded.reduce((n, e) => n + e.count, 0), estimated: folded.some((e) => e.estimated) }];
  return [...named, ...ranked.slice(0, topK), ...other].sort((a, b) => compare(a.label, b.label));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
