import { describe, expect, it } from 'vitest';
import { deadlineAt, deadlineBefore, DeadlineError, deadlineIn, sleep, tickBudgetMs, withDeadline } from '../../lib/core/deadline';

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('tickBudgetMs', () => {
  it('is TICK_TIMEOUT_MS outside Lambda', () => {
    expect(tickBudgetMs(25_000, undefined, 1_500)).toBe(25_000);
  });

  it("is lowered to Lambda's remaining time less the exit margin", () => {
    expect(tickBudgetMs(25_000, 30_000, 1_500)).toBe(25_000);
    expect(tickBudgetMs(25_000, 10_000, 1_500)).toBe(8_500);
  });

  it('is never negative, even when Lambda has less than the margin left', () => {
    expect(tickBudgetMs(25_000, 1_000, 1_500)).toBe(0);
    expect(tickBudgetMs(25_000, 0, 1_500)).toBe(0);
  });

  it('ignores a remaining time that is not a number', () => {
    expect(tickBudgetMs(25_000, Number.NaN, 1_500)).toBe(25_000);
  });
});

describe('deadlines', () => {
  it('count down and stop at 0', () => {
    const c = clock();
    const d = deadlineIn(1_000, c.now);
    expect(d.remainingMs()).toBe(1_000);
    c.advance(400);
    expect(d.remainingMs()).toBe(600);
    c.advance(5_000);
    expect(d.remainingMs()).toBe(0);
    expect(d.label).toBe('tick deadline');
  });

  it('a phase deadline keeps time back for what follows, and says so', () => {
    const c = clock();
    const tick = deadlineIn(3_000, c.now);
    const db = deadlineBefore(tick, 1_000, 'for the push', c.now);
    expect(db.remainingMs()).toBe(2_000);
    expect(db.label).toBe('tick deadline less 1000 ms kept for the push');
  });

  it('a phase deadline is never in the past', () => {
    const c = clock();
    const tick = deadlineIn(500, c.now);
    expect(deadlineBefore(tick, 1_000, 'for the push', c.now).at).toBe(c.now());
  });
});

describe('withDeadline', () => {
  it('returns the work when it finishes in time, and leaves no timer', async () => {
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    await expect(withDeadline('quick', deadlineIn(1_000), Promise.resolve(42))).resolves.toBe(42);
    expect(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length).toBe(before);
  });

  it('passes through the work’s own failure', async () => {
    await expect(withDeadline('failing', deadlineIn(1_000), Promise.reject(new Error('boom')))).rejects.toThrow('boom');
  });

  it('cuts work that outlives the deadline, runs the cleanup and names the step and the bound', async () => {
    let cut = false;
    const started = Date.now();
    const hang = new Promise<never>(() => {});
    // A clock that stands still, so the bound the message names is exactly 80 ms however loaded the machine
    // (a real one moved a millisecond between deadlineIn and withDeadline: "within 79 ms", seen at load 10).
    const still = () => started;
    const error = await withDeadline('database connect', deadlineIn(80, still), hang, () => (cut = true)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeadlineError);
    expect((error as Error).message).toBe('database connect did not finish within 80 ms (tick deadline)');
    expect(cut).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(75);
    expect(Date.now() - started).toBeLessThan(500);
  });

  it('a per-step limit sooner than the deadline is named as such', async () => {
    const error = await withDeadline('push attempt 1', deadlineIn(5_000), new Promise(() => {}), undefined, 50, 'PUSH_TIMEOUT_MS').catch(
      (e: unknown) => e,
    );
    expect((error as Error).message).toBe('push attempt 1 did not finish within 50 ms (PUSH_TIMEOUT_MS)');
  });

  it('a phase deadline names itself', async () => {
    const phase = deadlineBefore(deadlineIn(1_060), 1_000, 'for the push');
    const error = await withDeadline('database query', phase, new Promise(() => {})).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/^database query did not finish within \d+ ms \(tick deadline less 1000 ms kept for the push\)$/);
  });

  it('an expired deadline fails at once', async () => {
    const started = Date.now();
    await expect(withDeadline('close', deadlineAt(Date.now() - 1), new Promise(() => {}))).rejects.toThrow(
      'close did not finish within 0 ms (tick deadline)',
    );
    expect(Date.now() - started).toBeLessThan(100);
  });

  it('a late rejection of the losing work is not an unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const late = new Promise((_, reject) => setTimeout(() => reject(new Error('late')), 40));
      await expect(withDeadline('step', deadlineIn(10), late)).rejects.toBeInstanceOf(DeadlineError);
      await sleep(80);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});

describe('sleep', () => {
  it('never sleeps past the deadline', async () => {
    const started = Date.now();
    await sleep(2_000, deadlineIn(50));
    expect(Date.now() - started).toBeLessThan(500);
  });
});
