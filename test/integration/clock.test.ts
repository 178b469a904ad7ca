/**
 * Durations are measured on the monotonic clock (lib/core/clock.ts): a wall
 * clock that steps back in the middle of a tick (NTP) must not make
 * xyn_collector_duration_seconds or the log line's durations negative (issue 25).
 */

import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../lib/config/parse';
import type { LogRecord } from '../../lib/core/log';
import { runTick, TickError } from '../../lib/runtime/tick';
import { freePort } from '../../scripts/support/net';
import { sample } from '../support/pushgateway';

afterEach(() => vi.restoreAllMocks());

describe('a wall clock that steps back during a tick', () => {
  it('leaves every duration the tick reports at zero or more', async () => {
    // A closed port: the read fails at once, so the tick pushes (here: dry-runs) xyn_collector_up 0 and its duration.
    const config = parseConfig({ DATABASE_URL: `postgresql://u:p@127.0.0.1:${await freePort()}/db`, PUSH_DRY_RUN: 'true' }, { requireSink: false });
    const real = Date.now.bind(Date);
    const started = real();
    let calls = 0;
    // Every read of the wall clock is a minute earlier than the last.
    vi.spyOn(Date, 'now').mockImplementation(() => started - 60_000 * ++calls);
    const records: LogRecord[] = [];
    const error = await runTick(config, { log: (r) => records.push(r) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TickError);
    expect(calls, 'the clock was read').toBeGreaterThan(0);
    const result = (error as TickError).result;
    expect(result.durationMs).toBeGreaterThanOrEqual(0);
    expect(result.dbMs).toBeGreaterThanOrEqual(0);
    expect(sample(result.exposition, 'xyn_collector_duration_seconds')).toBeGreaterThanOrEqual(0);
    expect(records[0]).toMatchObject({ msg: 'tick failed' });
    expect(records[0]!.duration_ms as number).toBeGreaterThanOrEqual(0);
    expect(records[0]!.db_ms as number).toBeGreaterThanOrEqual(0);
  });
});
