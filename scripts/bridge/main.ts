/**
 * `npm run bridge`: run the WebSocket-to-TCP bridge on its own, for
 * `serverless offline` against a plain Postgres. Prints the DATABASE_WS_PROXY value.
 *   BRIDGE_PORT=8089 BRIDGE_ALLOW=127.0.0.1:5432 npm run bridge
 */

import { startBridge } from './bridge';

const port = Number(process.env.BRIDGE_PORT ?? 8089);
const allow = (process.env.BRIDGE_ALLOW ?? '127.0.0.1:5432,localhost:5432').split(',').map((s) => s.trim());

startBridge({ port, allow }).then(
  (bridge) => {
    process.stdout.write(`bridge listening; set DATABASE_WS_PROXY=${bridge.proxy} (relays to ${allow.join(', ')})\n`);
    const stop = () => void bridge.close().then(() => process.exit(0));
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  },
  (error: NodeJS.ErrnoException) => {
    process.stderr.write(
      error.code === 'EADDRINUSE' ? `port ${port} is already in use; set BRIDGE_PORT\n` : `bridge failed: ${error.message}\n`,
    );
    process.exit(1);
  },
);
