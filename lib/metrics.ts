/**
 * The metric definitions (one table of names, help and labels) and the pure
 * step that turns a snapshot into a fresh prom-client registry.
 *
 * Every tick builds its own Registry and registers only there: prom-client's
 * global registry would throw "already registered" in a warm Lambda container.
 */

import { Gauge, Registry } from 'prom-client';
import type { QueueSnapshot } from './snapshot';

export interface MetricDefinition {
  name: string;
  help: string;
  labelNames: readonly string[];
}

function define<const L extends readonly string[]>(name: string, help: string, labelNames: L) {
  return { name, help, labelNames } satisfies MetricDefinition;
}

export const METRICS = {
  queueDepth: define(
    'xyn_queue_depth',
    'Runs per status in the runs table; every status of the enum is reported, 0 when no run has it.',
    ['status'] as const,
  ),
  readyDepth: define(
    'xyn_queue_ready_depth',
    'QUEUED runs whose run_at has come (run_at <= now() or no run_at): work that could start now.',
    [] as const,
  ),
  futureDepth: define(
    'xyn_queue_future_depth',
    'QUEUED runs scheduled for later (run_at > now()).',
    [] as const,
  ),
  oldestReadySeconds: define(
    'xyn_queue_oldest_ready_seconds',
    'Seconds since the oldest ready run was queued (now() - min(queued_at)), database clock; 0 when none is ready.',
    [] as const,
  ),
  expiredLeases: define(
    'xyn_running_with_expired_lease',
    'RUNNING runs whose lease_expires_at has passed: their worker likely died. Should be 0.',
    [] as const,
  ),
  activeLeases: define(
    'xyn_running_with_active_lease',
    'RUNNING runs holding a lease that has not expired: runs being worked on now.',
    [] as const,
  ),
  collectorUp: define(
    'xyn_collector_up',
    'Whether the last collector tick read the database: 1 when it did, 0 when it failed (queue gauges are then absent).',
    [] as const,
  ),
  collectorDuration: define(
    'xyn_collector_duration_seconds',
    'Seconds the last collector tick spent connecting to and reading the database.',
    [] as const,
  ),
} as const;

export interface CollectorHealth {
  up: boolean;
  durationSeconds: number;
}

function gauge(registry: Registry, def: MetricDefinition): Gauge<string> {
  return new Gauge({ name: def.name, help: def.help, labelNames: [...def.labelNames], registers: [registry] });
}

/**
 * The registry for one push. Without a snapshot (the database could not be
 * read) only the collector-health gauges are present, so a PUT of it removes
 * the previous tick's queue values instead of serving them as current.
 */
export function buildRegistry(snapshot: QueueSnapshot | undefined, health: CollectorHealth): Registry {
  const registry = new Registry();
  if (snapshot) {
    const depth = gauge(registry, METRICS.queueDepth);
    for (const s of snapshot.statuses) depth.set({ status: s.status }, s.count);
    gauge(registry, METRICS.readyDepth).set(snapshot.ready);
    gauge(registry, METRICS.futureDepth).set(snapshot.future);
    gauge(registry, METRICS.oldestReadySeconds).set(snapshot.oldestReadySeconds);
    gauge(registry, METRICS.expiredLeases).set(snapshot.expiredLeases);
    gauge(registry, METRICS.activeLeases).set(snapshot.activeLeases);
  }
  gauge(registry, METRICS.collectorUp).set(health.up ? 1 : 0);
  gauge(registry, METRICS.collectorDuration).set(health.durationSeconds);
  return registry;
}
