/**
 * Sub-minute sampling: with SAMPLES_PER_INVOCATION=k > 1, one scheduled
 * invocation takes k evenly spaced samples within its schedule period
 * (SCHEDULE_PERIOD_SECONDS), each a full tick (runTick: read, build, push) with
 * its own deadline. With k = 1 it is exactly one runTick, nothing else.
 *
 * The period is cut into k slots starting at the scheduled time. A sample must
 * finish inside its slot, so no sample runs into the next one and the last
 * ends by the period's end, when the next invocation starts: invocations never
 * overlap. A sample is not started when it could not finish in time (slot end,
 * period end or the Lambda's own deadline): "in time" means at least as long
 * as the previous sample took is left, and never less than MIN_SAMPLE_MS. The
 * previous sample, not the slowest: the first one carries the cold start and
 * must not condemn the rest; a sample that does overrun is cut at its slot end.
 * A slot skipped for an overrun is the only price of one slow sample: the next
 * slot asks for MIN_SAMPLE_MS again, and only a slot in which not even that
 * fits before the invocation's end stops the rest. A failed sample, whatever it
 * threw, does not stop the later ones either.
 *
 * The planning is pure (unit-tested); runSamples does the waiting and calling.
 */

import type { Config } from '../config/types';
import { setTimeout as sleep } from 'node:timers/promises';
import { deadlineIn, type Deadline } from '../core/deadline';
import { redactingSink, stdoutSink } from '../core/log';
import { runTick, TickError, type TickOptions, type TickResult } from './tick';

/** No sample starts with less time than this left: a tick needs a connect and a push. */
export const MIN_SAMPLE_MS = 250;

export interface SampleSlot {
  /** 0-based */
  index: number;
  startMs: number;
  endMs: number;
}

/**
 * Where this invocation's period starts: the scheduled time when it is recent
 * (cold start and delivery delay then count against the period, so the last
 * sample still ends before the next invocation), otherwise now.
 */
export function periodStartMs(eventTime: string | undefined, nowMs: number, periodMs: number): number {
  const scheduled = eventTime ? Date.parse(eventTime) : Number.NaN;
  if (Number.isNaN(scheduled) || scheduled > nowMs || nowMs - scheduled >= periodMs) return nowMs;
  return scheduled;
}

/** k slots of equal length covering [startMs, startMs + periodMs). */
export function sampleSlots(startMs: number, periodMs: number, k: number): SampleSlot[] {
  return Array.from({ length: k }, (_, index) => ({
    index,
    startMs: startMs + Math.round((index * periodMs) / k),
    endMs: startMs + Math.round(((index + 1) * periodMs) / k),
  }));
}

export type SampleDecision =
  | { action: 'run'; waitMs: number; deadlineAtMs: number }
  /** This slot is lost (the previous sample ran into it); a later one may still run. */
  | { action: 'skip'; reason: 'slot_overrun' }
  /** No later slot can run either. */
  | { action: 'stop'; reason: 'invocation_deadline' | 'period_end' };

export interface DecisionInput {
  slot: SampleSlot;
  nowMs: number;
  /** When the invocation must be over: the earlier of the period end and the Lambda deadline. */
  invocationEndMs: number;
  periodEndMs: number;
  /** How long the previous sample took (0 before the first). */
  previousSampleMs: number;
  tickTimeoutMs: number;
}

export function decideSample({ slot, nowMs, invocationEndMs, periodEndMs, previousSampleMs, tickTimeoutMs }: DecisionInput): SampleDecision {
  const need = Math.max(MIN_SAMPLE_MS, previousSampleMs);
  const begin = Math.max(nowMs, slot.startMs);
  // Stop only when no sample at all fits any more; a long previous one costs this slot, not the rest.
  if (begin + MIN_SAMPLE_MS > invocationEndMs) {
    return { action: 'stop', reason: invocationEndMs < periodEndMs ? 'invocation_deadline' : 'period_end' };
  }
  const end = Math.min(slot.endMs, invocationEndMs);
  if (begin + need > end) return { action: 'skip', reason: 'slot_overrun' };
  return { action: 'run', waitMs: begin - nowMs, deadlineAtMs: Math.min(end, begin + tickTimeoutMs) };
}

export interface SampleOptions extends TickOptions {
  /** The scheduled event's time (EventBridge `time`), which anchors the period. */
  eventTime?: string | undefined;
  /** The whole invocation's deadline (Lambda's remaining time less a margin). */
  invocationDeadline?: Deadline | undefined;
}

export type Tick = (config: Config, options: TickOptions) => Promise<TickResult>;

/** Where runSamples reads the time and waits; tests drive the schedule with a simulated one. */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<unknown>;
}

const systemClock: Clock = { now: () => Date.now(), sleep: (ms) => sleep(ms) };

/**
 * One scheduled invocation: runTick once (k = 1), or k samples as planned above.
 * Returns the last sample's result; when any sample failed, throws a TickError
 * after the remaining samples ran, so Lambda's error metrics still see it.
 */
export async function runSamples(
  config: Config,
  options: SampleOptions = {},
  tick: Tick = runTick,
  clock: Clock = systemClock,
): Promise<TickResult> {
  const { eventTime, invocationDeadline, ...tickOptions } = options;
  const k = config.sampling.samplesPerInvocation;
  if (k <= 1) return tick(config, tickOptions);

  const log = redactingSink(options.log ?? stdoutSink, config.secrets);
  const periodMs = config.sampling.schedulePeriodSeconds * 1000;
  const startMs = periodStartMs(eventTime, clock.now(), periodMs);
  const periodEndMs = startMs + periodMs;
  const invocationEndMs = Math.min(periodEndMs, invocationDeadline?.at ?? Infinity);

  let previous = 0;
  let slowest = 0;
  let skipped = 0;
  let stopped: string | undefined;
  const results: TickResult[] = [];
  const failures: TickError[] = [];
  /** Something other than a failed tick (a bug): the remaining samples still run, then it is rethrown. */
  const unexpected: unknown[] = [];
  for (const slot of sampleSlots(startMs, periodMs, k)) {
    const decision = decideSample({
      slot,
      nowMs: clock.now(),
      invocationEndMs,
      periodEndMs,
      previousSampleMs: previous,
      tickTimeoutMs: config.tick.timeoutMs,
    });
    if (decision.action === 'stop') {
      stopped = decision.reason;
      break;
    }
    if (decision.action === 'skip') {
      skipped += 1;
      // The overrun has been paid for with this slot; the next one asks only for MIN_SAMPLE_MS.
      previous = 0;
      continue;
    }
    // A timer may fire a millisecond early by Date.now(); a sample never starts before its slot.
    const slotStart = clock.now() + decision.waitMs;
    while (clock.now() < slotStart) await clock.sleep(slotStart - clock.now());
    const began = clock.now();
    const context = { ...tickOptions.context, sample: slot.index + 1, samples: k, sample_offset_ms: began - startMs };
    try {
      results.push(await tick(config, { ...tickOptions, context, deadline: deadlineIn(decision.deadlineAtMs - began, clock.now) }));
    } catch (error) {
      if (error instanceof TickError) {
        results.push(error.result);
        failures.push(error);
      } else {
        unexpected.push(error);
      }
    }
    previous = clock.now() - began;
    slowest = Math.max(slowest, previous);
  }

  const early = stopped !== undefined;
  log({
    level: failures.length + unexpected.length > 0 || early || skipped > 0 ? 'warn' : 'info',
    msg: 'samples',
    ...tickOptions.context,
    samples_planned: k,
    samples_taken: results.length + unexpected.length,
    samples_failed: failures.length + unexpected.length,
    samples_skipped: skipped,
    ...(early ? { stopped_early: stopped } : {}),
    period_seconds: periodMs / 1000,
    slowest_sample_ms: slowest,
  });

  if (unexpected.length > 0) throw unexpected[0];
  const last = results[results.length - 1];
  if (!last) {
    throw new Error(`xyn-metrics: no sample could be taken (${stopped ?? 'no time'}); check the Lambda timeout against SCHEDULE_PERIOD_SECONDS`);
  }
  if (failures.length > 0) {
    throw new TickError(
      `xyn-metrics: ${failures.length} of ${results.length} samples failed; first: ${failures[0]!.result.error}`,
      failures[failures.length - 1]!.result,
    );
  }
  return last;
}
