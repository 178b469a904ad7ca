/**
 * Durations on the monotonic clock: Date.now() jumps with the wall clock (an
 * NTP step), which could make a duration negative or huge. Deadlines that
 * other processes must agree on (Lambda's) stay on wall time in deadline.ts.
 */

import { performance } from 'node:perf_hooks';

export type Stopwatch = () => number;

/** Milliseconds since the call, on the monotonic clock, never negative. */
export function startStopwatch(): Stopwatch {
  const started = performance.now();
  return () => Math.max(0, performance.now() - started);
}
