import { describe, expect, it } from 'vitest';
import { lateBySeconds } from '../../lib/runtime/late';

const now = Date.parse('2030-01-01T12:00:00Z');

describe('lateBySeconds', () => {
  it('lets an event within the bound through', () => {
    expect(lateBySeconds('2030-01-01T11:59:00Z', now, 90)).toBeUndefined();
    expect(lateBySeconds('2030-01-01T11:58:30Z', now, 90)).toBeUndefined();
  });

  it('returns the age of an event older than the bound', () => {
    expect(lateBySeconds('2030-01-01T11:58:29Z', now, 90)).toBe(91);
    expect(lateBySeconds('2030-01-01T06:00:00Z', now, 90)).toBe(6 * 3600);
  });

  it('never calls an event from the future late (clock skew between services)', () => {
    expect(lateBySeconds('2030-01-01T12:00:05Z', now, 90)).toBeUndefined();
  });

  it('reads the EventBridge Scheduler form of the time too', () => {
    // <aws.scheduler.scheduled-time> renders as e.g. 2022-03-22T18:59:43Z
    expect(lateBySeconds('2030-01-01T11:50:00Z', now, 90)).toBe(600);
    expect(lateBySeconds('2030-01-01T11:59:59.500Z', now, 90)).toBeUndefined();
  });

  it('lets a manual invoke (no time) through', () => {
    expect(lateBySeconds(undefined, now, 90)).toBeUndefined();
    expect(lateBySeconds('', now, 90)).toBeUndefined();
  });

  it('is off when MAX_EVENT_AGE_SECONDS is 0', () => {
    expect(lateBySeconds('2000-01-01T00:00:00Z', now, 0)).toBeUndefined();
  });

  it('refuses a time that is not a timestamp (an unrendered Scheduler placeholder) with one clear error', () => {
    expect(() => lateBySeconds('<aws.scheduler.scheduled-time>', now, 90)).toThrow(
      'the event\'s time "<aws.scheduler.scheduled-time>" is not a timestamp; the schedule must deliver its scheduled time in "time"',
    );
  });
});
