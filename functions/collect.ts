/**
 * The scheduled Lambda: a thin adapter from (event, context) to runTick.
 * The deadline is the smaller of TICK_TIMEOUT_MS and the function's remaining
 * time less a margin, so the tick always ends (and logs) before Lambda kills it.
 *
 * Warm-container safe: nothing is kept between invocations. Every call parses
 * the environment, opens its own connection and builds its own registry; no
 * module-level state, no global prom-client metric.
 */

import type { Context, ScheduledEvent } from 'aws-lambda';
import { ConfigError, parseConfig } from '../lib/config';
import { deadlineIn, tickBudgetMs } from '../lib/deadline';
import { stdoutSink } from '../lib/log';
import { describeError } from '../lib/redact';
import { runSamples } from '../lib/sampling';
import { lateBySeconds, type TickResult } from '../lib/tick';

/** Room left after the deadline to log and return before Lambda's own timeout. */
export const EXIT_MARGIN_MS = 1_500;

export type CollectResponse = Pick<TickResult, 'outcome' | 'pushedTo' | 'durationMs'> | { outcome: 'skipped_late'; ageSeconds: number };

export async function collect(event: Partial<ScheduledEvent> | undefined, context: Partial<Context> | undefined): Promise<CollectResponse> {
  let config;
  try {
    config = parseConfig(process.env);
  } catch (error) {
    // Config errors never carry values of secrets; redact anyway in case of a bug.
    const message = error instanceof ConfigError ? error.message : describeError(error, []);
    stdoutSink({ level: 'error', msg: 'configuration error', error: message });
    throw new Error(`xyn-metrics configuration error: ${message}`);
  }

  let late: number | undefined;
  try {
    late = lateBySeconds(event?.time, Date.now(), config.maxEventAgeSeconds);
  } catch (error) {
    const message = describeError(error, config.secrets);
    stdoutSink({ level: 'error', msg: 'bad scheduled event', error: message });
    throw new Error(`xyn-metrics: ${message}`);
  }
  if (late !== undefined) {
    stdoutSink({
      level: 'warn',
      msg: 'late tick skipped',
      outcome: 'skipped_late',
      scheduled_at: event?.time,
      age_seconds: Math.round(late),
      max_event_age_seconds: config.maxEventAgeSeconds,
    });
    return { outcome: 'skipped_late', ageSeconds: Math.round(late) };
  }

  const remaining = context?.getRemainingTimeInMillis?.();
  const budget = tickBudgetMs(config.tickTimeoutMs, remaining, EXIT_MARGIN_MS);
  // One runTick, or SAMPLES_PER_INVOCATION ticks spread over the schedule period (lib/sampling.ts).
  const result = await runSamples(config, {
    deadline: deadlineIn(budget),
    context: { request_id: context?.awsRequestId, scheduled_at: event?.time },
    eventTime: event?.time,
    invocationDeadline: remaining === undefined ? undefined : deadlineIn(Math.max(0, remaining - EXIT_MARGIN_MS)),
  });
  return { outcome: result.outcome, pushedTo: result.pushedTo, durationMs: result.durationMs };
}
