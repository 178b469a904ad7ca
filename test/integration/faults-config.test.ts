/**
 * Bad configuration through the real handler: one clear line naming the
 * variable, and no I/O at all. The database proxy and the gateway are
 * tripwires (TCP listeners that count connections); a healthy-looking
 * configuration pointed at them proves they would notice.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONFIG_CASES } from '../support/fault-cases';
import { baseEnv, expectKnownQueue, expectOk, invokeCollect, seedKnownQueue, startStack, startTripwire } from '../support/faults';

let dbTripwire: Awaited<ReturnType<typeof startTripwire>>;
let gatewayTripwire: Awaited<ReturnType<typeof startTripwire>>;
let env: Record<string, string | undefined>;

beforeAll(async () => {
  dbTripwire = await startTripwire();
  gatewayTripwire = await startTripwire();
  env = {
    DATABASE_URL: 'postgresql://postgres:postgres@127.0.0.1:5432/postgres',
    DATABASE_WS_PROXY: `127.0.0.1:${dbTripwire.port}/v1`,
    PUSHGATEWAY_URL: gatewayTripwire.url,
    PUSHGATEWAY_JOB: 'xyn_faults_config',
    RUNS_TABLE: 'runs',
    TICK_TIMEOUT_MS: '3000',
    PUSH_TIMEOUT_MS: '300',
    PUSH_RETRIES: '0',
  };
});
afterAll(async () => {
  await dbTripwire?.close();
  await gatewayTripwire?.close();
});

describe('bad configuration: one line naming the variable, no I/O', () => {
  it('the tripwires see the I/O of a valid configuration (so they can catch any)', async () => {
    const run = await invokeCollect(env);
    expect(run.error).toBeInstanceOf(Error);
    expect(dbTripwire.connections()).toBeGreaterThan(0);
    expect(gatewayTripwire.connections()).toBeGreaterThan(0);
  });

  for (const c of CONFIG_CASES) {
    it(c.name, async () => {
      const seen = [dbTripwire.connections(), gatewayTripwire.connections()];
      const run = await invokeCollect({ ...env, ...c.env });

      expect(run.error).toBeInstanceOf(Error);
      const message = (run.error as Error).message;
      expect(message.split('\n')).toHaveLength(1);
      expect(message.startsWith('xyn-metrics configuration error: '), message).toBe(true);
      expect(message).toContain(c.variable);
      expect(message).toMatch(c.cause);
      expect(run.elapsedMs).toBeLessThan(1_000);

      const lines = run.output.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0]!)).toMatchObject({ level: 'error', msg: 'configuration error', error: expect.stringContaining(c.variable) });

      expect([dbTripwire.connections(), gatewayTripwire.connections()], 'no connection was made').toEqual(seen);
    });
  }
});

describe('empty optional variables', () => {
  it('count as unset: a tick with every optional variable set to "" runs on the defaults', async () => {
    const stack = await startStack('emptyvars');
    try {
      await seedKnownQueue(stack.db);
      const empty = Object.fromEntries(
        [
          'PUSHGATEWAY_USERNAME', 'PUSHGATEWAY_PASSWORD', 'PUSHGATEWAY_TOKEN', 'PUSHGATEWAY_CA_FILE', 'PUSHGATEWAY_GROUPING',
          'TICK_TIMEOUT_MS', 'DB_STATEMENT_TIMEOUT_MS', 'DB_LOCK_TIMEOUT_MS', 'PUSH_TIMEOUT_MS', 'PUSH_RETRIES',
          'MAX_EVENT_AGE_SECONDS', 'STATUS_ESTIMATE_ABOVE', 'PUSH_DRY_RUN', 'NODE_TLS_REJECT_UNAUTHORIZED',
        ].map((name) => [name, '']),
      );
      const run = await invokeCollect({ ...baseEnv(stack, 'xyn_metrics'), ...empty, PUSHGATEWAY_JOB: '' });
      expectOk(run);
      expectKnownQueue(await stack.gateway.scrape(), 'xyn_metrics');
    } finally {
      await stack.close();
    }
  });
});
