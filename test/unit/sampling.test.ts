import { describe, expect, it } from 'vitest';
import type { Config } from '../../lib/config/types';
import { deadlineIn } from '../../lib/core/deadline';
import type { LogRecord } from '../../lib/core/log';
import { decideSample, MIN_SAMPLE_MS, periodStartMs, runSamples, sampleSlots } from '../../lib/runtime/sampling';
import { TickError, type TickOptions, type TickResult } from '../../lib/runtime/tick';

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
  return { sampling: { samplesPerInvocation: k, schedulePeriodSeconds: periodSeconds }, tick: { timeoutMs: 25_000, maxEventAgeSeconds: 90 }, secrets: [] } as unknown as Config;
}

function fakeResult(outcome: TickResult['outcome'] = 'ok'): TickResult {
  return { outcome, snapshot: undefined, exposition: '', pushedTo: undefined, durationMs: 1, dbMs: 1, error: outcome === 'ok' ? undefined : 'database down', authFailures: [] };
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
    // A simulated clock: on a loaded machine a real one could stall past a slot and skip it (seen at load 19).
    let now = 5_000_000;
    const t0 = now;
    const clock = { now: () => now, sleep: async (ms: number) => void (now += ms) };
    await runSamples(fakeConfig(3, 3), { eventTime: undefined, log: (r) => logs.push(r) }, async (_c, o) => {
      starts.push(now - t0);
      deadlines.push(o.deadline!.at - t0);
      expect(o.context).toMatchObject({ samples: 3 });
      now += 40;
      return fakeResult();
    }, clock);
    expect(starts).toEqual([0, 1000, 2000]);
    deadlines.forEach((d, i) => expect(d).toBeLessThanOrEqual((i + 1) * 1000));
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

describe('runSamples waiting for a slot', () => {
  it('never starts a sample before its slot, even when a timer fires early', async () => {
    let now = 1_000_000;
    const t0 = now;
    // Node timers may fire a millisecond early as Date.now() sees it.
    const clock = { now: () => now, sleep: async (ms: number) => void (now += Math.max(1, ms - 1)) };
    const offsets: number[] = [];
    await runSamples(fakeConfig(4, 60), { log: () => {}, eventTime: new Date(t0).toISOString() }, async (_c, o) => {
      offsets.push(o.context!.sample_offset_ms as number);
      now += 100;
      return fakeResult();
    }, clock);
    expect(offsets).toHaveLength(4);
    offsets.forEach((offset, i) => expect(offset, `sample ${i + 1}`).toBeGreaterThanOrEqual(i * 15_000));
  });
});

/**
 * The whole schedule on a simulated clock: each fake sample takes the time it
 * is told, or is cut at its deadline (plus a few ms to close, as a real one).
 */
describe('runSamples schedule (k = 4, 60 s period, 15 s slots)', () => {
  type Step = { ms: number; fails?: 'tick' | 'bug' };
  async function schedule(steps: Step[], invocationEndMs = Infinity) {
    let now = 1_000_000;
    const t0 = now;
    const clock = { now: () => now, sleep: async (ms: number) => void (now += ms) };
    const ran: { sample: number; startMs: number; cut: boolean }[] = [];
    const logs: LogRecord[] = [];
    const tick = async (_c: Config, o: TickOptions) => {
      const step = steps[ran.length] ?? { ms: 1_000 };
      const cut = now + step.ms > o.deadline!.at;
      ran.push({ sample: o.context!.sample as number, startMs: now - t0, cut });
      now = cut ? o.deadline!.at + 10 : now + step.ms;
      if (step.fails === 'tick') throw new TickError('tick failed', fakeResult('db_failed'));
      if (step.fails === 'bug') throw new TypeError('a bug');
      return fakeResult();
    };
    const deadline = { at: t0 + invocationEndMs, label: 'invocation', remainingMs: () => t0 + invocationEndMs - now };
    const outcome = await runSamples(fakeConfig(4, 60), { log: (r) => logs.push(r), invocationDeadline: deadline }, tick, clock).then(
      () => 'ok',
      (error: Error) => error.message,
    );
    return { ran, summary: logs.at(-1)!, outcome };
  }

  it('runs every slot on time when each sample is quick', async () => {
    const { ran, summary } = await schedule([]);
    expect(ran.map((r) => [r.sample, r.startMs])).toEqual([[1, 0], [2, 15_000], [3, 30_000], [4, 45_000]]);
    expect(summary).toMatchObject({ level: 'info', samples_taken: 4, samples_skipped: 0 });
  });

  it('a slow first sample (the cold start) that still fits its slot costs nothing', async () => {
    const { ran } = await schedule([{ ms: 14_900 }, { ms: 500 }]);
    expect(ran.map((r) => r.sample)).toEqual([1, 2, 3, 4]);
  });

  it('a sample cut at its slot end costs the next slot only, never the rest of the period', async () => {
    const { ran, summary, outcome } = await schedule([{ ms: 40_000 }]);
    expect(ran.map((r) => [r.sample, r.cut])).toEqual([[1, true], [3, false], [4, false]]);
    expect(summary).toMatchObject({ level: 'warn', samples_taken: 3, samples_skipped: 1 });
    expect(summary).not.toHaveProperty('stopped_early');
    expect(outcome).toBe('ok');
  });

  it('a cut sample in the middle costs only the slot after it', async () => {
    const { ran } = await schedule([{ ms: 500 }, { ms: 20_000 }]);
    expect(ran.map((r) => r.sample)).toEqual([1, 2, 4]);
  });

  it('failed samples, a failed tick or a bug, do not stop the later ones; the invocation then fails', async () => {
    const tickFailed = await schedule([{ ms: 500, fails: 'tick' }, { ms: 500 }]);
    expect(tickFailed.ran.map((r) => r.sample)).toEqual([1, 2, 3, 4]);
    expect(tickFailed.outcome).toMatch(/1 of 4 samples failed/);
    const bug = await schedule([{ ms: 500 }, { ms: 500, fails: 'bug' }]);
    expect(bug.ran.map((r) => r.sample)).toEqual([1, 2, 3, 4]);
    expect(bug.summary).toMatchObject({ samples_taken: 4, samples_failed: 1 });
    expect(bug.outcome).toBe('a bug');
  });

  it('stops when the Lambda deadline leaves no room for another sample', async () => {
    const { ran, summary } = await schedule([], 40_000);
    expect(ran.map((r) => r.sample)).toEqual([1, 2, 3]);
    expect(summary).toMatchObject({ stopped_early: 'invocation_deadline' });
  });
});
