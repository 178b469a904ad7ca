/**
 * What the extras' integration tests (flow, heartbeat, blueprints, degrade) start: a database of
 * their own, a Pushgateway, the bridge for the Neon driver and a wire tap that counts round trips.
 * Started together; a start that fails stops what it had started, so nothing is left behind.
 */

import { startBridge, type Bridge } from '../../scripts/bridge/bridge';
import { createTestDatabase, type TestDatabase } from './postgres';
import { startPushgateway, type TestPushgateway } from './pushgateway';
import { startWireTap, type WireTap } from './wire';

export interface ExtrasStack {
  db: TestDatabase;
  gateway: TestPushgateway;
  bridge: Bridge;
  tap: WireTap;
}

export async function startExtrasStack(name: string): Promise<ExtrasStack> {
  // allSettled, not all: a start that fails must not leave the others still starting, unowned.
  const [db, gateway, bridge] = await Promise.allSettled([createTestDatabase(name), startPushgateway(), startBridge()]);
  const started: Partial<ExtrasStack> = { db: valueOf(db), gateway: valueOf(gateway), bridge: valueOf(bridge) };
  try {
    for (const result of [db, gateway, bridge]) if (result.status === 'rejected') throw result.reason;
    started.tap = await startWireTap(started.db!.url);
    return started as ExtrasStack;
  } catch (error) {
    await stopExtrasStack(started);
    throw error;
  }
}

function valueOf<T>(result: PromiseSettledResult<T>): T | undefined {
  return result.status === 'fulfilled' ? result.value : undefined;
}

/** Stops whatever of the stack is there, the tap first and the database last. */
export async function stopExtrasStack(stack: Partial<ExtrasStack>): Promise<void> {
  await stack.tap?.close();
  await stack.bridge?.close();
  await stack.gateway?.stop();
  await stack.db?.close();
}
