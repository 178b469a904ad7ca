/** What Lambda hands a scheduled function: an EventBridge event and a context. */

import type { Context, ScheduledEvent } from 'aws-lambda';
import { randomUUID } from 'node:crypto';
import { collect } from '../../functions/collect';

export function scheduledEvent(time: Date = new Date()): ScheduledEvent {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    account: '123456789012',
    time: time.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    region: 'eu-west-1',
    resources: ['arn:aws:events:eu-west-1:123456789012:rule/xyn-metrics-dev-collect'],
    detail: {},
  };
}

export function lambdaContext(timeoutMs = 30_000): Context {
  const started = Date.now();
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: 'xyn-metrics-dev-collect',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:xyn-metrics-dev-collect',
    memoryLimitInMB: '256',
    awsRequestId: randomUUID(),
    logGroupName: '/aws/lambda/xyn-metrics-dev-collect',
    logStreamName: 'test',
    getRemainingTimeInMillis: () => Math.max(0, timeoutMs - (Date.now() - started)),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

/** Run `fn` with process.env extended by `vars` (undefined deletes), then restore. */
export async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = { ...process.env };
  for (const [k, v] of Object.entries(vars)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    return await fn();
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

/** Capture everything written to stdout/stderr while `fn` runs (and still return its outcome). */
export async function captureOutput<T>(fn: () => Promise<T>): Promise<{ output: string; result?: T; error?: unknown }> {
  let output = '';
  // The functions themselves, not bound copies: restoring a bound copy would wrap write in one more
  // bound function per call, a chain that grows (and is retained) for as long as the process lives.
  const out = process.stdout.write;
  const err = process.stderr.write;
  const grab = (chunk: unknown) => {
    output += typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString();
    return true;
  };
  process.stdout.write = grab as typeof process.stdout.write;
  process.stderr.write = grab as typeof process.stderr.write;
  try {
    const result = await fn();
    return { output, result };
  } catch (error) {
    return { output, error };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

/** Invoke the collect handler as Lambda does (a scheduled event, a context) with `env`, capturing its output. */
export function invokeCollect(env: Record<string, string | undefined>, event: Partial<ScheduledEvent> | undefined = scheduledEvent(), timeoutMs = 30_000) {
  return withEnv(env, () => captureOutput(() => collect(event, lambdaContext(timeoutMs))));
}
