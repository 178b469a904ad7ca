/**
 * The pure step that turns a snapshot into a fresh prom-client registry, from
 * the metric table (lib/metrics/definitions.ts).
 *
 * Every tick builds its own Registry and registers only there: prom-client's
 * global registry would throw "already registered" in a warm Lambda container.
 */

// Straight from prom-client's files, not its index: the index also loads every
// other metric type, the default process metrics, tdigest and @opentelemetry/api,
// which the tick never uses and every cold start would parse.
import Gauge from 'prom-client/lib/gauge.js';
import Registry from 'prom-client/lib/registry.js';
import { BLUEPRINT_QUANTILES, type BlueprintSnapshot } from '../source/blueprints';
import { WAIT_QUANTILES, type FlowSnapshot } from '../source/flow';
import type { QueueSnapshot } from '../source/snapshot';
import { METRICS, type MetricDefinition } from './definitions';

export interface CollectorHealth {
  up: boolean;
  durationSeconds: number;
}

function gauge(registry: Registry, def: MetricDefinition): Gauge<string> {
  return new Gauge({ name: def.name, help: def.help, labelNames: [...def.labelNames], registers: [registry] });
}

function addBlueprints(registry: Registry, blueprints: BlueprintSnapshot): void {
  const runs = gauge(registry, METRICS.blueprintRunCount);
  for (const c of blueprints.counts) {
    runs.set({ blueprint: c.blueprint, status: 'QUEUED' }, c.queued);
    runs.set({ blueprint: c.blueprint, status: 'RUNNING' }, c.running);
  }
  // A blueprint with no run finished in the window has no quantiles: absent, not NaN.
  const duration = gauge(registry, METRICS.blueprintDuration);
  for (const d of blueprints.durations) {
    for (const q of BLUEPRINT_QUANTILES) duration.set({ blueprint: d.blueprint, quantile: q }, d.quantiles[q]);
  }
}

/** Each flow figure whose column is configured; the wait quantiles only when a run started in the window. */
function addFlow(registry: Registry, flow: FlowSnapshot): void {
  gauge(registry, METRICS.flowWindow).set(flow.windowSeconds);
  if (flow.finished) {
    const finished = gauge(registry, METRICS.runsFinishedInWindow);
    for (const f of flow.finished) finished.set({ status: f.status }, f.count);
  }
  if (flow.started !== undefined) gauge(registry, METRICS.runsStartedInWindow).set(flow.started);
  if (flow.waitSeconds) {
    const wait = gauge(registry, METRICS.queueWait);
    for (const q of WAIT_QUANTILES) wait.set({ quantile: q }, flow.waitSeconds[q]);
  }
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
    const estimated = gauge(registry, METRICS.queueDepthEstimated);
    for (const s of snapshot.statuses) {
      depth.set({ status: s.status }, s.count);
      estimated.set({ status: s.status }, s.estimated ? 1 : 0);
    }
    gauge(registry, METRICS.readyDepth).set(snapshot.ready);
    gauge(registry, METRICS.futureDepth).set(snapshot.future);
    gauge(registry, METRICS.oldestReadySeconds).set(snapshot.oldestReadySeconds);
    gauge(registry, METRICS.oldestDueSeconds).set(snapshot.oldestDueSeconds);
    gauge(registry, METRICS.expiredLeases).set(snapshot.expiredLeases);
    gauge(registry, METRICS.activeLeases).set(snapshot.activeLeases);
    gauge(registry, METRICS.withoutLease).set(snapshot.runningWithoutLease);
    if (snapshot.workersAlive !== undefined) gauge(registry, METRICS.workersAlive).set(snapshot.workersAlive);
    if (snapshot.blueprints) addBlueprints(registry, snapshot.blueprints);
    if (snapshot.flow) addFlow(registry, snapshot.flow);
  }
  gauge(registry, METRICS.collectorUp).set(health.up ? 1 : 0);
  if (snapshot) gauge(registry, METRICS.collectorDegraded).set(snapshot.missing?.length ? 1 : 0);
  gauge(registry, METRICS.collectorDuration).set(health.durationSeconds);
  return registry;
}
