/**
 * The one table of metric names, help and labels. A leaf: the registry builds
 * from it, the configuration refuses static labels named like its labels, and
 * the docs tests check the docs against it.
 */

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
    'Runs per status in the runs table; every status of the enum is reported, 0 when no run has it. QUEUED, RUNNING and the top STATUS_TOP_K other statuses by count keep their name (cut to 128 characters), the rest are summed under status="other". A terminal status above STATUS_ESTIMATE_ABOVE is the planner\'s estimate (see xyn_queue_depth_estimated).',
    ['status'] as const,
  ),
  queueDepthEstimated: define(
    'xyn_queue_depth_estimated',
    '1 when xyn_queue_depth for this status is the planner\'s estimate (a terminal status above STATUS_ESTIMATE_ABOVE), 0 when it is an exact count. QUEUED and RUNNING are always exact.',
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
  oldestDueSeconds: define(
    'xyn_queue_oldest_due_seconds',
    'Seconds since the oldest ready run came due (now() - min(greatest(queued_at, run_at))), database clock; 0 when none is ready. A run scheduled ahead counts from its run_at, not from when it was queued.',
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
  withoutLease: define(
    'xyn_running_without_lease',
    'RUNNING runs with no lease_expires_at at all; expired + active + without = xyn_queue_depth{status="RUNNING"}.',
    [] as const,
  ),
  // Extras (docs/extras.md), present only when configured.
  workersAlive: define(
    'xyn_workers_alive',
    'Distinct workers whose last heartbeat is within HEARTBEAT_TTL_SECONDS of the database clock. Present only when HEARTBEAT_TABLE is set.',
    [] as const,
  ),
  blueprintRunCount: define(
    'xyn_blueprint_run_count',
    'QUEUED and RUNNING runs per blueprint; the top BLUEPRINT_TOP_K blueprints by volume keep their name, the rest are summed under blueprint="other".',
    ['blueprint', 'status'] as const,
  ),
  blueprintDuration: define(
    'xyn_blueprint_duration_seconds',
    'Run duration quantiles (finished - started) per blueprint over runs finished in the last BLUEPRINT_WINDOW_SECONDS; blueprint="other" pools the rest.',
    ['blueprint', 'quantile'] as const,
  ),
  runsFinishedInWindow: define(
    'xyn_runs_finished_in_window',
    'Runs whose finish time lies within the last FLOW_WINDOW_SECONDS of the database clock, per terminal status; every terminal status is reported, 0 when none finished. Present only when RUN_FINISHED_COLUMN is set.',
    ['status'] as const,
  ),
  runsStartedInWindow: define(
    'xyn_runs_started_in_window',
    'Runs whose start time lies within the last FLOW_WINDOW_SECONDS of the database clock. Present only when RUN_STARTED_COLUMN is set.',
    [] as const,
  ),
  queueWait: define(
    'xyn_queue_wait_seconds',
    'Quantiles of the wait from due (greatest(queued_at, run_at)) to start over the runs started in the last FLOW_WINDOW_SECONDS; absent when none started. Present only when RUN_STARTED_COLUMN is set.',
    ['quantile'] as const,
  ),
  flowWindow: define(
    'xyn_flow_window_seconds',
    'The window of the flow figures (FLOW_WINDOW_SECONDS): divide xyn_runs_finished_in_window or xyn_runs_started_in_window by it for runs per second.',
    [] as const,
  ),
  collectorUp: define(
    'xyn_collector_up',
    'Whether the last collector tick read the database: 1 when it did, 0 when it failed (queue gauges are then absent).',
    [] as const,
  ),
  collectorDegraded: define(
    'xyn_collector_degraded',
    '1 when part of the last tick\'s read failed (the terminal counts, or an extra: flow, heartbeat, blueprints): the queue\'s alerting gauges are exact and present, the missing part\'s series are absent (the log line names it). 0 when the read was whole.',
    [] as const,
  ),
  collectorDuration: define(
    'xyn_collector_duration_seconds',
    'Seconds the last collector tick spent connecting to and reading the database.',
    [] as const,
  ),
} as const;

/** Every label name a metric of the table carries: a static label of the same name would clash with it. */
export const METRIC_LABEL_NAMES: readonly string[] = [...new Set(Object.values(METRICS).flatMap((m) => m.labelNames))].sort();
