/**
 * The remote-write sink: the tick's registry as one Prometheus remote write
 * 1.0 request (protobuf WriteRequest, snappy block format, POST), for Mimir,
 * Cortex, Thanos Receive, Amazon Managed Service for Prometheus and
 * Prometheus's own receiver.
 *
 * The series are the ones the Pushgateway path shows: the same names, the
 * static labels plus an explicit job, never a per-invocation label. Every
 * sample carries the snapshot's database time, so the receiver knows how fresh
 * each value is and a silent collector's series simply stop (no frozen gauge).
 *
 * Each attempt is bounded by the tick's deadline and PUSH_TIMEOUT_MS; retried
 * with backoff on network errors, 429 and 5xx, never on other 4xx or a TLS
 * certificate error (lib/sinks/http.ts decides).
 */

import { BinaryWriter } from '@bufbuild/protobuf/wire';
import aws4 from 'aws4';
import type { MetricObjectWithValues, MetricValue, Registry } from 'prom-client';
import { compress } from 'snappyjs';
import { awsCredentials } from '../config/aws';
import type { Env } from '../config/read';
import type { RemoteWriteConfig } from '../config/types';
import type { Deadline } from '../core/deadline';
import { describeError } from '../core/redact';
import { authorizationHeader } from './auth';
import { SinkError } from './errors';
import { requestWithRetries } from './http';

export interface Label {
  name: string;
  value: string;
}

export interface TimeSeries {
  /** Sorted by name, __name__ among them, as the protocol requires. */
  labels: Label[];
  samples: { value: number; timestampMs: number }[];
}

/** prometheus.MetricMetadata.MetricType, as remote write 1.0 numbers it. */
export const METRIC_TYPE = { unknown: 0, counter: 1, gauge: 2, histogram: 3, summary: 5 } as const;

export interface MetricMetadata {
  type: number;
  metricFamilyName: string;
  help: string;
}

export interface WriteRequest {
  timeseries: TimeSeries[];
  metadata: MetricMetadata[];
}

/** The headers remote write 1.0 prescribes. */
export const REMOTE_WRITE_HEADERS = {
  'Content-Encoding': 'snappy',
  'Content-Type': 'application/x-protobuf',
  'X-Prometheus-Remote-Write-Version': '0.1.0',
} as const;

function byName(a: Label, b: Label): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * The registry's metrics (prom-client's JSON form) as a WriteRequest: one
 * series per value, `job` and the static labels on each, one timestamp for
 * all. Pure.
 */
export function toWriteRequest(
  metrics: MetricObjectWithValues<MetricValue<string>>[],
  identity: { job: string; labels: Record<string, string> },
  timestampMs: number,
): WriteRequest {
  const staticLabels = { ...identity.labels, job: identity.job };
  const timeseries: TimeSeries[] = [];
  for (const metric of metrics) {
    for (const value of metric.values) {
      const name = (value as { metricName?: string }).metricName ?? metric.name;
      const labels = Object.entries({ ...staticLabels, ...value.labels, __name__: name })
        .map(([labelName, labelValue]) => ({ name: labelName, value: String(labelValue) }))
        .sort(byName);
      timeseries.push({ labels, samples: [{ value: value.value, timestampMs }] });
    }
  }
  const metadata = metrics.map((metric) => ({
    type: METRIC_TYPE[String(metric.type) as keyof typeof METRIC_TYPE] ?? METRIC_TYPE.unknown,
    metricFamilyName: metric.name,
    help: metric.help,
  }));
  return { timeseries, metadata };
}

/** prometheus.WriteRequest in protobuf wire format (remote write 1.0: prometheus/prompb/remote.proto). */
export function encodeWriteRequest(request: WriteRequest): Uint8Array {
  const writer = new BinaryWriter();
  for (const series of request.timeseries) {
    writer.uint32((1 << 3) | 2).fork(); // WriteRequest.timeseries = 1
    for (const label of series.labels) {
      writer.uint32((1 << 3) | 2).fork(); // TimeSeries.labels = 1
      writer.uint32((1 << 3) | 2).string(label.name); // Label.name = 1
      writer.uint32((2 << 3) | 2).string(label.value); // Label.value = 2
      writer.join();
    }
    for (const sample of series.samples) {
      writer.uint32((2 << 3) | 2).fork(); // TimeSeries.samples = 2
      writer.uint32((1 << 3) | 1).double(sample.value); // Sample.value = 1 (double)
      writer.uint32((2 << 3) | 0).int64(Math.round(sample.timestampMs)); // Sample.timestamp = 2 (int64 ms)
      writer.join();
    }
    writer.join();
  }
  for (const meta of request.metadata) {
    writer.uint32((3 << 3) | 2).fork(); // WriteRequest.metadata = 3
    writer.uint32((1 << 3) | 0).int32(meta.type); // MetricMetadata.type = 1
    writer.uint32((2 << 3) | 2).string(meta.metricFamilyName); // metric_family_name = 2
    writer.uint32((4 << 3) | 2).string(meta.help); // help = 4
    writer.join();
  }
  return writer.finish();
}

/** The request body: the encoded WriteRequest in snappy's block format (not the framed stream format). */
export async function remoteWriteBody(registry: Registry, config: RemoteWriteConfig, timestampMs: number): Promise<Uint8Array> {
  const metrics = await registry.getMetricsAsJSON();
  return compress(encodeWriteRequest(toWriteRequest(metrics, config, timestampMs)));
}

/** Who needs the role's credentials, for the error when they are missing. */
const SIGV4_NEEDS = 'REMOTE_WRITE_SIGV4=true';

/**
 * The request's headers: the protocol's, plus Authorization (basic, bearer or
 * an AWS SigV4 signature for service `aps` over this very body and time).
 */
export function requestHeaders(
  config: RemoteWriteConfig,
  body: Uint8Array,
  env: Env,
  now: Date = new Date(),
): Record<string, string> {
  const auth = config.auth;
  if (auth?.kind !== 'sigv4') return { ...REMOTE_WRITE_HEADERS, ...authorizationHeader(auth) };
  const url = new URL(config.url);
  const signed = aws4.sign(
    {
      service: 'aps',
      region: auth.region,
      method: 'POST',
      host: url.host,
      path: `${url.pathname}${url.search}`,
      headers: { ...REMOTE_WRITE_HEADERS, 'X-Amz-Date': now.toISOString().replace(/[:-]|\.\d{3}/g, '') },
      body: Buffer.from(body),
    },
    awsCredentials(env, SIGV4_NEEDS),
  );
  return Object.fromEntries(Object.entries(signed.headers ?? {}).map(([k, v]) => [k, String(v)]));
}

/** Where the series go, for logs: no credentials, no query. */
export function remoteWriteTarget(config: RemoteWriteConfig): string {
  const url = new URL(config.url);
  return `${url.origin}${url.pathname}`;
}

export interface RemoteWriteOptions {
  attemptTimeoutMs: number;
  retries: number;
  /** The samples' timestamp: the snapshot's database time (epoch ms). */
  timestampMs: number;
  /** Where SigV4 credentials come from; process.env by default. */
  env?: Env;
}

export async function writeToRemote(
  registry: Registry,
  config: RemoteWriteConfig,
  deadline: Deadline,
  options: RemoteWriteOptions,
): Promise<{ attempts: number }> {
  const body = await remoteWriteBody(registry, config, options.timestampMs);
  const ca = config.ca;
  const env = options.env ?? process.env;
  if (config.auth?.kind === 'sigv4') {
    // No credentials to sign with: no attempt could help, so none is made.
    try {
      awsCredentials(env, SIGV4_NEEDS);
    } catch (error) {
      throw new SinkError('remote_write', `remote write to ${remoteWriteTarget(config)}: ${(error as Error).message}`, { status: undefined, attempts: 0 });
    }
  }
  // Signed per attempt: a SigV4 signature is only good for a few minutes.
  const request = () => ({ method: 'POST' as const, url: config.url, headers: requestHeaders(config, body, env), body, ...(ca ? { ca } : {}) });
  const sent = await requestWithRetries('remote write', request, deadline, options);
  if (sent.error === undefined) return { attempts: sent.attempts };
  const reason = describeError(sent.error, []);
  throw new SinkError('remote_write', `remote write to ${remoteWriteTarget(config)} failed after ${sent.attempts} attempt${sent.attempts === 1 ? '' : 's'}: ${reason}`, sent);
}
