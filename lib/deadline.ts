/**
 * One deadline per tick. Socket timeouts are idle timeouts, not deadlines: a
 * peer that trickles bytes never trips them. So everything a tick awaits is
 * raced against the wall clock here, and the loser is cleaned up by the caller.
 */

export class DeadlineError extends Error {
  override name = 'DeadlineError';
}

export interface Deadline {
  /** Epoch milliseconds at which the tick must be over. */
  readonly at: number;
  remainingMs(): number;
}

export function deadlineIn(ms: number, now: () => number = Date.now): Deadline {
  const at = now() + ms;
  return { at, remainingMs: () => Math.max(0, at - now()) };
}

/**
 * Resolve with `work` unless the deadline (or `limitMs`, if sooner) passes first;
 * then `onTimeout` runs (to abort sockets) and a DeadlineError names `what`.
 */
export async function withDeadline<T>(
  what: string,
  deadline: Deadline,
  work: Promise<T>,
  onTimeout?: () => void,
  limitMs = Infinity,
): Promise<T> {
  const ms = Math.min(deadline.remainingMs(), limitMs);
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      try {
        onTimeout?.();
      } finally {
        reject(new DeadlineError(`${what} did not finish within ${Math.round(ms)} ms`));
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

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
