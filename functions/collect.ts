/**
 * The scheduled Lambda: a thin adapter from (event, context) to runSamples
 * (one runTick, or SAMPLES_PER_INVOCATION of them). The deadline is the
 * smaller of TICK_TIMEOUT_MS and the function's remaining time less the exit
 * margin, so the tick always ends (and logs) before Lambda kills it.
 *
 * Warm-container safe: nothing is kept between invocations but the secrets
 * read from SSM (lib/runtime/secrets.ts, for SECRETS_CACHE_SECONDS). Every call parses
 * the environment, opens its own connection and builds its own registry; no
 * global prom-client metric.
 *
 * Setup (lib/runtime/handler.ts): budgets, then secrets (X from X_SSM_PARAMETER
 * when deployed), then configuration. A tick whose credentials are refused
 * after a rotation refetches them once and, when any changed, runs once more.
 */

import type { Context, ScheduledEvent } from 'aws-lambda';
import { deadlineIn } from '../lib/core/deadline';
import { redactingSink, stdoutSink } from '../lib/core/log';
import { describeError } from '../lib/core/redact';
import { parseTick } from '../lib/config/parse';
import { environmentSecrets, EXIT_MARGIN_MS, invocationDeadline as freshDeadline, refetchSecrets, setUp, type SetupOptions } from '../lib/runtime/handler';
import { pushCollectorDown } from '../lib/runtime/unavailable';
import { lateBySeconds } from '../lib/runtime/late';
import { runSamples } from '../lib/runtime/sampling';
import { TickError, type TickResult } from '../lib/runtime/tick';

export { EXIT_MARGIN_MS } from '../lib/runtime/handler';

export type CollectResponse = Pick<TickResult, 'outcome' | 'pushedTo' | 'durationMs'> | { outcome: 'skipped_late'; ageSeconds: number };

export async function collect(event: Partial<ScheduledEvent> | undefined, context: Partial<Context> | undefined): Promise<CollectResponse> {
  const OPTIONS: SetupOptions = {
    requireSink: true,
    // No secret to be had: say so at the sinks that need none (xyn_collector_up 0), on a deadline of its own.
    onSecretsUnavailable: (error, env) =>
      pushCollectorDown(env, error, freshDeadline(parseTick(env), context), environmentSecrets(env)),
  };
  const setup = await setUp(process.env, context, OPTIONS);
  const { config, deadline } = setup;
  const log = redactingSink(stdoutSink, config.secrets);

  let late: number | undefined;
  try {
    late = lateBySeconds(event?.time, Date.now(), config.tick.maxEventAgeSeconds);
  } catch (error) {
    const message = describeError(error, config.secrets);
    log({ level: 'error', msg: 'bad scheduled event', error: message });
    throw new Error(`xyn-metrics: ${message}`);
  }
  if (late !== undefined) {
    log({
      level: 'warn',
      msg: 'late tick skipped',
      outcome: 'skipped_late',
      scheduled_at: event?.time,
      age_seconds: Math.round(late),
      max_event_age_seconds: config.tick.maxEventAgeSeconds,
    });
    return { outcome: 'skipped_late', ageSeconds: Math.round(late) };
  }

  const remaining = context?.getRemainingTimeInMillis?.();
  const invocationDeadline = remaining === undefined ? undefined : deadlineIn(Math.max(0, remaining - EXIT_MARGIN_MS));
  const tickContext = { request_id: context?.awsRequestId, scheduled_at: event?.time };
  const run = (current: typeof config, tickDeadline = deadline) =>
    runSamples(current, { deadline: tickDeadline, context: tickContext, eventTime: event?.time, invocationDeadline });
  let result: TickResult;
  try {
    result = await run(config);
  } catch (error) {
    // A refused credential may have been rotated since it was cached.
    const refused = error instanceof TickError ? error.result.authFailures : [];
    let rotated;
    try {
      rotated = await refetchSecrets(setup, context, OPTIONS, { refused, wording: { refused: 'credentials refused', again: 'tick runs again' }, log, context: tickContext });
    } catch (refetchError) {
      // The refused credential is what went wrong; the failed refetch is why it could not be mended.
      if (error instanceof TickError) throw new TickError(error.message, error.result, { cause: refetchError });
      throw error;
    }
    if (rotated === undefined) throw error;
    result = await run(rotated, freshDeadline(rotated.tick, context));
  }
  return { outcome: result.outcome, pushedTo: result.pushedTo, durationMs: result.durationMs };
}
