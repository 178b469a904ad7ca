/**
 * Database faults against the real services: each case is one invocation of
 * the real handler that must end in time with one line naming the cause, leave
 * the group marked failed (xyn_collector_up 0, no queue gauge), and be followed
 * by a correct tick once the fault is gone. The cases live in
 * test/support/fault-cases.ts so the security suite replays them with secrets.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASE_CASES, prepareFaultTables, runFaultCase, type FaultContext } from '../support/fault-cases';
import { startChaosProxy } from '../support/chaos-proxy';
import { baseEnv, expectMarkedFailed, expectOk, invokeCollect, seedKnownQueue, startStack, startSwitchableProxy } from '../support/faults';

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

describe('a connection reset in the middle of the answer (found by the chaos soak)', () => {
  it('the dead WebSocket is torn down at once, not waited on for the close grace', async () => {
    const proxy = await startChaosProxy('database', { host: '127.0.0.1', port: ctx.stack.bridge.port });
    try {
      const env = { ...ctx.env, PUSHGATEWAY_URL: ctx.stack.gateway.url, DATABASE_WS_PROXY: `127.0.0.1:${proxy.port}/v1` };
      // A healthy tick first, to learn how many bytes a whole session brings back.
      await proxy.arm({ fault: { kind: 'healthy' }, scope: 'every' });
      expectOk(await invokeCollect(env));
      const whole = await proxy.disarm();
      // Then the same session reset 200 bytes before its end: inside the batch's answer.
      await proxy.arm({ fault: { kind: 'reset', afterBytes: whole.bytesDown - 200 }, scope: 'every' });
      const run = await invokeCollect(env);
      const report = await proxy.disarm();
      expect(report.affected, 'the reset took effect').toBe(1);
      const line = JSON.parse(run.output.trim().split('\n').at(-1)!) as Record<string, unknown>;
      expect(line, run.output).toMatchObject({ outcome: 'db_failed' });
      // A clean close would wait on a peer that is gone (the Neon driver's end(), CLOSE_GRACE_MS) and then be cut.
      expect(line).not.toHaveProperty('db_close');
      expectMarkedFailed(await ctx.stack.gateway.scrape(), ctx.job);
    } finally {
      await proxy.close();
    }
  });
});
