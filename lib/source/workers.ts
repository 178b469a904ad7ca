/**
 * Worker liveness (opt-in): the heartbeat SELECT's row in, one count out.
 * Pure, so the shape checks are unit-tested without a database.
 */

import { count } from './snapshot';

export function toWorkersAlive(row: Record<string, unknown> | undefined): number {
  if (!row) throw new Error('the heartbeat query returned no row');
  return count(row.workers_alive, 'workers_alive');
}
