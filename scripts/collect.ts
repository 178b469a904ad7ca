/**
 * `npm run collect`: one tick through exactly the handler's code path
 * (runTick) against DATABASE_URL, pushing to PUSHGATEWAY_URL when set, then
 * the exposition text on stdout. A non-Neon host is bridged automatically.
 * Exit 0 on success; on failure one line on stderr and exit 1 (2 for config).
 */

import { ConfigError, isNeonHost, parseConfig } from '../lib/config';
import { bridgeTarget, startBridge, type Bridge } from '../lib/bridge';
import { describeError } from '../lib/redact';
import { runTick, TickError } from '../lib/tick';
import type { LogRecord } from '../lib/log';

async function main(): Promise<number> {
  let config;
  try {
    config = parseConfig(process.env, { requirePushgateway: false });
  } catch (error) {
    process.stderr.write(`xyn-metrics: ${error instanceof ConfigError ? error.message : describeError(error, [])}\n`);
    return 2;
  }

  let bridge: Bridge | undefined;
  if (config.databaseWsProxy === undefined && !isNeonHost(config.databaseHost)) {
    bridge = await startBridge({ allow: [bridgeTarget(config.databaseUrl)] });
    config = { ...config, databaseWsProxy: bridge.proxy };
  }

  // The JSON log line goes to stderr so stdout is exactly the exposition text.
  const log = (record: LogRecord) => process.stderr.write(`${JSON.stringify(record)}\n`);
  try {
    const result = await runTick(config, { log });
    process.stdout.write(result.exposition);
    return 0;
  } catch (error) {
    if (error instanceof TickError) {
      process.stdout.write(error.result.exposition);
      process.stderr.write(`xyn-metrics: ${error.result.error}\n`);
    } else {
      process.stderr.write(`xyn-metrics: ${describeError(error, config.secrets)}\n`);
    }
    return 1;
  } finally {
    await bridge?.close();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`xyn-metrics: ${describeError(error, [])}\n`);
    process.exit(1);
  },
);
