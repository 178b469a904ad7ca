import { describe, expect, it } from 'vitest';
import type { Config } from '../../lib/config';
import { deadlineIn } from '../../lib/deadline';
import type { LogRecord } from '../../lib/log';
import { decideSample, MIN_SAMPLE_MS, periodStartMs, runSamples, sampleSlots } from '../../lib/sampling';
import { TickError, type TickOptions, type TickResult } from '../../lib/tick';

describe('sampleSlots', () => {
  it('cuts the period into k equal slots that cover it exactly', () => {
    expect(sampleSlots(1_000, 60_000, 4)).toEqual([
      { index: 0, startMs: 1_000, endMs: 16_000 },
      { index: 1, startMs: 16_000, endMs: 31_000 },
      { index: 2, startMs: 31_000, endMs: 46_000 },
      { index: 3, startMs: 46_000, endMs: 61_000 },
    ]);
    const twelve = sampleSlots(0, 60_000, 12);
    expect(twelve).toHaveLength(12);
    expect(twelve[11]!.endMs).toBe(60_000);
    expect(twelve.map((s) => s.startMs)).toEqual(twelve.map((_, i) => i * 5_000));
  });
});

describe('periodStartMs', () => {
  const now = Date.parse('2026-01-01T00:00:01.400Z');
  it('anchors on the scheduled time when it is within the period', () => {
    expect(periodStartMs('2026-01-01T00:00:00Z', now, 60_000)).toBe(Date.parse('2026-01-01T00:00:00Z'));
  });
  it('falls back to now for a missing, future, unparsable or older-than-a-period time', () => {
    expect(periodStartMs(undefined, now, 60_000)).toBe(now);
    expect(periodStartMs('2026-01-01T00:00:05Z', now, 60_000)).toBe(now);
    expect(periodStartMs('yesterday', now, 60_000)).toBe(now);
    expect(periodStartMs('2025-12-31T23:58:00Z', now, 60_000)).toBe(now);
  });
});

describe('decideSample', () => {
  const slot = { index: 1, startMs: 20_000, endMs: 40_000 };
  const base = { slot, invocationEndMs: 60_000, periodEndMs: 60_000, previousSampleMs: 100, tickTimeoutMs: 25_000 };

  it('waits for the slot and bounds the sample by the slot end', () => {
    expect(decideSample({ ...base, nowMs: 5_000 })).toEqual({ action: 'run', waitMs: 15_000, deadlineAtMs: 40_000 });
  });
  it('bounds the sample by TICK_TIMEOUT_MS when that is sooner', () => {
    expect(decideSample({ ...base, nowMs: 20_000, tickTimeoutMs: 3_000 })).toEqual({ action: 'run', waitMs: 0, deadlineAtMs: 23_000 });
  });
  it('skips a slot the previous sample overran, when another as long would not fit', () => {
    expect(decideSample({ ...base, nowMs: 39_000, previousSampleMs: 1_200 })).toEqual({ action: 'skip', reason: 'slot_overrun' });
    expect(decideSample({ ...base, nowMs: 39_000, previousSampleMs: 1_000 }).action).toBe('run');
  });
  it('never starts with less than MIN_SAMPLE_MS left', () => {
    expect(decideSample({ ...base, nowMs: 40_000 - MIN_SAMPLE_MS + 1, previousSampleMs: 0 }).action).toBe('skip');
  });
  it('stops at the Lambda deadline and at the period end (the next invocation)', () => {
    expect(decideSample({ ...base, nowMs: 20_000, invocationEndMs: 20_100 })).toEqual({ action: 'stop', reason: 'invocation_deadline' });
    const last = { index: 2, startMs: 40_000, endMs: 60_000 };
    expect(decideSample({ ...base, slot: last, nowMs: 59_900 })).toEqual({ action: 'stop', reason: 'period_end' });
  });
});

function fakeConfig(k: number, periodSeconds: number): Config {
  return { samplesPerInvocation: k, schedulePeriodSeconds: periodSeconds, tickTimeoutMs: 25_000, secrets: [] } as unknown as Config;
}

function fakeResult(outcome: TickResult['outcome'] = 'ok'): TickResult {
  return { outcome, snapshot: undefined, exposition: '', pushedTo: undefined, durationMs: 1, dbMs: 1, error: outcome === 'ok' ? undefined : 'database down' };
}

describe('runSamples', () => {
  it('with k = 1 is exactly one runTick with the caller\'s options', async () => {
    const calls: TickOptions[] = [];
    const deadline = deadlineIn(1_000);
    const options = { deadline, context: { request_id: 'r' } };
    await runSamples(fakeConfig(1, 60), { ...options, eventTime: new Date().toISOString() }, async (_c, o) => {
      calls.push(o);
      return fakeResult();
    });
    expect(calls).toEqual([options]);
  });

  it('takes k samples, each with its own deadline inside its slot, and logs a summary', async () => {
    const starts: number[] = [];
    const deadlines: number[] = [];
    const logs: LogRecord[] = [];
    const t0 = Date.now();
    await runSamples(fakeConfig(3, 3), { eventTime: undefined, log: (r) => logs.push(r) }, async (_c, o) => {
      starts.push(Date.now() - t0);
      deadlines.push(o.deadline!.at - t0);
      expect(o.context).toMatchObject({ samples: 3 });
      return fakeResult();
    });
    expect(starts).toHaveLength(3);
    starts.forEach((s, i) => expect(s).toBeGreaterThanOrEqual(i * 1000 - 5));
    deadlines.forEach((d, i) => expect(d).toBeLessThanOrEqual((i + 1) * 1000 + 5));
    expect(logs.at(-1)).toMatchObject({ msg: 'samples', samples_planned: 3, samples_taken: 3, samples_failed: 0 });
  });

  it('runs the remaining samples after a failed one, then fails the invocation', async () => {
    let n = 0;
    const run = runSamples(fakeConfig(2, 1), { log: () => {} }, async () => {
      n += 1;
      if (n === 1) throw new TickError('tick failed', fakeResult('db_failed'));
      return fakeResult();
    });
    await expect(run).rejects.toThrow(/1 of 2 samples failed; first: database down/);
    expect(n).toBe(2);
  });
});
