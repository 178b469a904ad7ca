/**
 * A secret of any content against a real tick (real PostgreSQL through the
 * Neon driver): a one-character database password such as "1" or "e" used to
 * be masked inside the serialized log line, which turned `"db_ms":19` into
 * `"db_ms":***9` (a SyntaxError out of runTick) and keys into `"l***v***l"`.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type Bridge } from '../../scripts/bridge/bridge';
import { parseConfig } from '../../lib/config/parse';
import type { Config } from '../../lib/config/types';
import type { LogRecord } from '../../lib/core/log';
import { runSamples } from '../../lib/runtime/sampling';
import { runTick } from '../../lib/runtime/tick';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

let db: TestDatabase;
let bridge: Bridge;

beforeAll(async () => {
  db = await createTestDatabase('logredact');
  bridge = await startBridge();
  await db.query(`INSERT INTO ${db.table} (status, run_at) VALUES ('QUEUED', now() - interval '11 seconds')`);
});
afterAll(async () => {
  await bridge?.close();
  await db?.close();
});

/** A dry-run configuration whose secrets include `extra` (what a password "1" adds to the list). */
function configWithSecrets(extra: string[], env: Record<string, string> = {}): Config {
  const config = parseConfig(
    { DATABASE_URL: db.url, DATABASE_WS_PROXY: bridge.proxy, PUSH_DRY_RUN: 'true', RUNS_TABLE: db.table, ...env },
    { requireSink: false },
  );
  return { ...config, secrets: [...config.secrets, ...extra] };
}

describe('the log line with short secrets', () => {
  it.each([['1'], ['e'], ['"'], ['9']])('a tick logs its line intact with the secret %j', async (secret) => {
    const records: LogRecord[] = [];
    const result = await runTick(configWithSecrets([secret]), { log: (r) => records.push(r) });
    expect(result.outcome).toBe('ok');
    expect(records).toHaveLength(1);
    const [line] = records;
    expect(line).toMatchObject({ level: 'info', msg: 'tick', outcome: 'ok', pushed_to: 'dry-run', db_ms: result.dbMs, duration_ms: result.durationMs });
    expect((line!.figures as Record<string, unknown>).ready).toBe(1);
    expect(Object.keys(line!)).toContain('level');
  });

  it('under SAMPLES_PER_INVOCATION every sample still runs and logs', async () => {
    const records: LogRecord[] = [];
    const config = configWithSecrets(['1', 'e'], { SAMPLES_PER_INVOCATION: '2', SCHEDULE_PERIOD_SECONDS: '6' });
    await runSamples(config, { log: (r) => records.push(r) });
    expect(records.filter((r) => r.msg === 'tick')).toHaveLength(2);
    expect(records.at(-1)).toMatchObject({ msg: 'samples', samples_taken: 2, samples_failed: 0 });
  });
});
