/**
 * The event-age policy of the scheduled handler: a scheduled event delivered
 * late (Lambda retries and queues async events for hours) must not overwrite
 * fresher figures.
 */

/**
 * The event's age in seconds when it is older than `maxAgeSeconds`, else
 * undefined. No time (a manual invoke) is never late; a time that is not a
 * timestamp is a misconfigured schedule input and throws rather than pass unchecked.
 */
export function lateBySeconds(eventTime: string | undefined, nowMs: number, maxAgeSeconds: number): number | undefined {
  if (!eventTime || maxAgeSeconds <= 0) return undefined;
  const scheduled = Date.parse(eventTime);
  if (Number.isNaN(scheduled)) {
    throw new Error(`the event's time "${eventTime.slice(0, 60)}" is not a timestamp; the schedule must deliver its scheduled time in "time"`);
  }
  const age = (nowMs - scheduled) / 1000;
  return age > maxAgeSeconds ? age : undefined;
}
