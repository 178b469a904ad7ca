/**
 * Worker liveness (opt-in): the heartbeat SELECT's row in, one count out.
 * Pure, so the shape checks are unit-tested without a database.
 */

import { count, oneRow } from './rows';

export function toWorkersAlive(row: Record<string, unknown> | undefined): number {
  return count(oneRow(row, 'heartbeat').workers_alive, 'workers_alive');
}
