/**
 * Pushgateway faults against a real Pushgateway (behind a loopback proxy the
 * test switches to refuse, hang or answer 500): each tick ends in time with
 * one line naming the cause; the group keeps its old push time (so the
 * collector-silent and freshness-gated alerts see it) or is absent, never a
 * fresh-looking copy of old values; the next tick, fault gone, is correct.
 */

import { afterAll, beforeAll, describe, it } from 'vitest';
import { PUSHGATEWAY_CASES, runFaultCase, type FaultContext } from '../support/fault-cases';
import { baseEnv, seedKnownQueue, startStack, startSwitchableProxy } from '../support/faults';

let ctx: FaultContext;

beforeAll(async () => {
  const stack = await startStack('faultpg');
  const proxy = await startSwitchableProxy(stack.gateway.url);
  const job = 'xyn_faults_push';
  ctx = { stack, job, proxy, env: { ...baseEnv(stack, job), PUSHGATEWAY_URL: proxy.url } };
  await seedKnownQueue(stack.db);
});
afterAll(async () => {
  await ctx?.proxy.close();
  await ctx?.stack.close();
});

describe('Pushgateway faults: in time, one clear line, never stale-as-current, then recovered', () => {
  for (const c of PUSHGATEWAY_CASES) {
    it(c.name, async () => {
      await runFaultCase(c, ctx);
    });
  }

});
