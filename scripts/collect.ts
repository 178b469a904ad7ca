/**
 * `npm run collect`: one tick through exactly the handler's code path
 * (runTick) against DATABASE_URL, pushing to PUSHGATEWAY_URL when set, then
 * the exposition text on stdout. No bridge: a non-Neon host is reached as the
 * deployed function reaches it, over TCP with TLS as DATABASE_URL's sslmode says.
 * Exit 0 on success; on failure one line on stderr and exit 1 (2 for config).
 */

import { ConfigError } from '../lib/config/errors';
import { parseConfig } from '../lib/config/parse';
import { describeError } from '../lib/core/redact';
import { runTick, TickError } from '../lib/runtime/tick';
import type { LogRecord } from '../lib/core/log';

async function main(): Promise<number> {
  let config;
  try {
    config = parseConfig(process.env, { requireSink: false });
  } catch (error) {
    process.stderr.write(`xyn-metrics: ${error instanceof ConfigError ? error.message : describeError(error, [])}\n`);
    return 2;
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
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`xyn-metrics: ${describeError(error, [])}\n`);
    process.exit(1);
  },
);
