/**
 * Database faults against the real services: each case is one invocation of
 * the real handler that must end in time with one line naming the cause, leave
 * the group marked failed (xyn_collector_up 0, no queue gauge), and be followed
 * by a correct tick once the fault is gone. The cases live in
 * test/support/fault-cases.ts so the security suite replays them with secrets.
 */

import { afterAll, beforeAll, describe, it } from 'vitest';
import { DATABASE_CASES, prepareFaultTables, runFaultCase, type FaultContext } from '../support/fault-cases';
import { baseEnv, seedKnownQueue, startStack, startSwitchableProxy } from '../support/faults';

let ctx: FaultContext;

beforeAll(async () => {
  const stack = await startStack('faultdb');
  const proxy = await startSwitchableProxy(stack.gateway.url);
  const job = 'xyn_faults_db';
  ctx = { stack, job, proxy, env: { ...baseEnv(stack, job), PUSHGATEWAY_URL: proxy.url } };
  await seedKnownQueue(stack.db);
  await prepareFaultTables(ctx);
});
afterAll(async () => {
  await ctx?.proxy.close();
  await ctx?.stack.close();
});

describe('database faults: in time, one clear line, marked failed, then recovered', () => {
  for (const c of DATABASE_CASES) {
    it(c.name, async () => {
      await runFaultCase(c, ctx);
    });
  }
});
