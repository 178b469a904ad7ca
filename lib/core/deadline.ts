/**
 * One deadline per tick. Socket timeouts are idle timeouts, not deadlines: a
 * peer that trickles bytes never trips them, and closing a WebSocket waits on
 * the peer. So everything a tick awaits is raced against the wall clock here,
 * and the loser is cut by the caller's onTimeout (which must free its sockets).
 *
 * Why not AbortSignal.timeout/any: their timer cannot be cleared (in a warm
 * Lambda container it would fire long after the tick), their TimeoutError
 * cannot say which step ran out of which bound, and the Neon driver's promises
 * take no signal to race. Waiting itself is node:timers/promises.
 */

import { setTimeout as delay } from 'node:timers/promises';

export class DeadlineError extends Error {
  override name = 'DeadlineError';
}

export interface Deadline {
  /** Epoch milliseconds at which the tick (or this phase of it) must be over. */
  readonly at: number;
  /** What this deadline is, for error messages: "tick deadline", … */
  readonly label: string;
  remainingMs(): number;
}

export function deadlineAt(at: number, label = 'tick deadline', now: () => number = Date.now): Deadline {
  return { at, label, remainingMs: () => Math.max(0, at - now()) };
}

export function deadlineIn(ms: number, now: () => number = Date.now): Deadline {
  return deadlineAt(now() + Math.max(0, ms), 'tick deadline', now);
}

/**
 * The tick's budget in ms: TICK_TIMEOUT_MS, lowered to what the Lambda has left
 * less `exitMarginMs`, so the tick ends (and logs its line) before Lambda kills
 * it. Outside Lambda (no context) it is TICK_TIMEOUT_MS. Never negative.
 */
export function tickBudgetMs(tickTimeoutMs: number, lambdaRemainingMs: number | undefined, exitMarginMs: number): number {
  const fromLambda =
    lambdaRemainingMs === undefined || !Number.isFinite(lambdaRemainingMs) ? Infinity : lambdaRemainingMs - exitMarginMs;
  return Math.max(0, Math.floor(Math.min(tickTimeoutMs, fromLambda)));
}

/**
 * A deadline `reserveMs` before `deadline` (but not before now): a phase that
 * must leave time for what follows, e.g. the database read leaves time to push
 * xyn_collector_up 0 when the database hangs.
 */
export function deadlineBefore(deadline: Deadline, reserveMs: number, kept: string, now: () => number = Date.now): Deadline {
  const reserve = Math.max(0, Math.round(reserveMs));
  return deadlineAt(Math.max(now(), deadline.at - reserve), `${deadline.label} less ${reserve} ms kept ${kept}`, now);
}

/**
 * Resolve with `work` unless the deadline (or `limitMs`, if sooner) passes first;
 * then `onTimeout` runs (to cut sockets) and a DeadlineError names `what` and
 * which bound ended it. The timer never outlives the call.
 */
export async function withDeadline<T>(
  what: string,
  deadline: Deadline,
  work: Promise<T>,
  onTimeout?: () => void,
  limitMs = Infinity,
  limitName = 'limit',
): Promise<T> {
  const remaining = deadline.remainingMs();
  const ms = Math.min(remaining, limitMs);
  const bound = limitMs < remaining ? limitName : deadline.label;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      try {
        onTimeout?.();
      } finally {
        reject(new DeadlineError(`${what} did not finish within ${Math.round(ms)} ms (${bound})`));
      }
    }, ms);
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
    // The losing promise may still reject later; it must not become unhandled.
    work.catch(() => {});
  }
}

/** Sleep, but never past the deadline. */
export function sleep(ms: number, deadline?: Deadline): Promise<void> {
  return delay(deadline ? Math.min(ms, deadline.remainingMs()) : ms);
}
