/**
 * The shape checks of database rows: a value that is not what the SQL
 * promises is a SnapshotError naming the field, never a wrong number pushed.
 */

export class SnapshotError extends Error {
  override name = 'SnapshotError';
}

/** Counts arrive as bigint text from the driver; numbers from json. */
export function count(value: unknown, field: string): number {
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0 || !Number.isInteger(n)) {
    throw new SnapshotError(`unexpected value for ${field}: ${JSON.stringify(value)}`);
  }
  return n;
}

export function seconds(value: unknown, field: string): number {
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n)) {
    throw new SnapshotError(`unexpected value for ${field}: ${JSON.stringify(value)}`);
  }
  return n;
}

export function jsonArray(value: unknown, field: string): unknown[] {
  const parsed = typeof value === 'string' ? (JSON.parse(value) as unknown) : value;
  if (!Array.isArray(parsed)) throw new SnapshotError(`unexpected value for ${field}: not a list`);
  return parsed;
}

export function label(value: unknown, field: string): string {
  if (typeof value !== 'string') throw new SnapshotError(`unexpected value for ${field}: ${JSON.stringify(value)}`);
  return value;
}

/** The one row a SELECT of the batch must return. */
export function oneRow(row: Record<string, unknown> | undefined, query: string): Record<string, unknown> {
  if (!row) throw new SnapshotError(`the ${query} query returned no row`);
  return row;
}
