/**
 * Where a tick's registry goes: the Pushgateway (PUT), remote write (POST), or
 * both. Both run at once under the tick's one deadline; a failing sink never
 * stops the other; each reports its own result, and the tick fails when any
 * sink failed.
 */

import type { Registry } from 'prom-client';
import type { SinksConfig } from '../config/types';
import type { Deadline } from '../core/deadline';
import { describeError } from '../core/redact';
import { SinkError, type SinkName } from './errors';
import { groupPath, pushToGateway } from './pushgateway';
import { remoteWriteTarget, writeToRemote } from './remote-write';

export interface SinkResult {
  sink: SinkName;
  /** Where the series went (no credentials). */
  target: string;
  attempts: number;
  /** Why it failed (redacted), when it did. */
  error: string | undefined;
  /** The sink answered 401/403: its credentials were refused (a rotated secret, refetched by the handler). */
  credentialsRefused: boolean;
}

/**
 * Time kept back from the database for the sinks: a database that hangs must
 * still leave time to send xyn_collector_up 0, or its old figures stay on display.
 */
export function sinkReserveMs(sinks: SinksConfig, deadline: Deadline): number {
  return sinks.pushgateway || sinks.remoteWrite ? Math.min(sinks.attemptTimeoutMs, deadline.remainingMs() / 3) : 0;
}

async function attempt(sink: SinkName, target: string, send: () => Promise<{ attempts: number }>, secrets: readonly string[]): Promise<SinkResult> {
  try {
    return { sink, target, attempts: (await send()).attempts, error: undefined, credentialsRefused: false };
  } catch (error) {
    const known = error instanceof SinkError ? error : undefined;
    return {
      sink,
      target,
      attempts: known?.attempts ?? 0,
      error: describeError(error, secrets),
      credentialsRefused: known?.status === 401 || known?.status === 403,
    };
  }
}

/**
 * Send `registry` to every configured sink; never throws. `timestampMs` stamps
 * the remote-write samples (the snapshot's database time); the Pushgateway
 * stamps its own push time.
 */
export async function sendToSinks(
  registry: Registry,
  sinks: SinksConfig,
  deadline: Deadline,
  timestampMs: number,
  secrets: readonly string[],
): Promise<SinkResult[]> {
  const options = { attemptTimeoutMs: sinks.attemptTimeoutMs, retries: sinks.retries };
  const sends: Promise<SinkResult>[] = [];
  if (sinks.pushgateway) {
    const gateway = sinks.pushgateway;
    sends.push(attempt('pushgateway', groupPath(gateway), () => pushToGateway(registry, gateway, deadline, options), secrets));
  }
  if (sinks.remoteWrite) {
    const remote = sinks.remoteWrite;
    sends.push(attempt('remote_write', remoteWriteTarget(remote), () => writeToRemote(registry, remote, deadline, { ...options, timestampMs }), secrets));
  }
  return Promise.all(sends);
}
