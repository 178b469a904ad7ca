import { describe, expect, it } from 'vitest';
import type { RemoteWriteConfig } from '../../lib/config/types';
import { buildRegistry } from '../../lib/metrics/registry';
import { encodeWriteRequest, METRIC_TYPE, REMOTE_WRITE_HEADERS, remoteWriteBody, requestHeaders, toWriteRequest } from '../../lib/sinks/remote-write';
import type { QueueSnapshot } from '../../lib/source/snapshot';
import { decodeWriteRequest, verifySigV4 } from '../support/remote-write';

const SNAPSHOT: QueueSnapshot = {
  statuses: [
    { status: 'QUEUED', count: 5, estimated: false },
    { status: 'RUNNING', count: 2, estimated: false },
  ],
  ready: 4,
  future: 1,
  oldestReadySeconds: 42.5,
  oldestDueSeconds: 40,
  expiredLeases: 0,
  activeLeases: 2,
  runningWithoutLease: 0,
  dbNowSeconds: 1_790_000_000.123,
};

const CONFIG: RemoteWriteConfig = {
  url: 'https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1234/api/v1/remote_write',
  auth: undefined,
  job: 'xyn_metrics',
  labels: { env: 'prod' },
  ca: undefined,
};

const registry = () => buildRegistry(SNAPSHOT, { up: true, durationSeconds: 0.05 });
const TS = Math.round(SNAPSHOT.dbNowSeconds * 1000);

describe('remote write: the WriteRequest', () => {
  it('carries every series of the registry with the same names, job and static labels, one timestamp', async () => {
    const reg = registry();
    const decoded = decodeWriteRequest(await remoteWriteBody(reg, CONFIG, TS));
    // Same series as the exposition text, name for name and label for label.
    const exposition = (await reg.metrics()).split('\n').filter((l) => l && !l.startsWith('#'));
    expect(decoded.series).toHaveLength(exposition.length);
    const ready = decoded.series.find((s) => s.labels.__name__ === 'xyn_queue_ready_depth');
    expect(ready).toEqual({
      labels: { __name__: 'xyn_queue_ready_depth', env: 'prod', job: 'xyn_metrics' },
      labelOrder: ['__name__', 'env', 'job'],
      samples: [{ value: 4, timestampMs: TS }],
    });
    const queued = decoded.series.find((s) => s.labels.__name__ === 'xyn_queue_depth' && s.labels.status === 'QUEUED');
    expect(queued?.labelOrder).toEqual(['__name__', 'env', 'job', 'status']);
    expect(queued?.samples).toEqual([{ value: 5, timestampMs: TS }]);
    for (const series of decoded.series) {
      expect(series.labels.instance, 'no per-invocation label').toBeUndefined();
      expect(series.labels.job).toBe('xyn_metrics');
      expect(series.samples).toEqual([{ value: expect.any(Number), timestampMs: TS }]);
      expect([...series.labelOrder].sort(), 'labels sorted by name').toEqual(series.labelOrder);
    }
    expect(decoded.series.find((s) => s.labels.__name__ === 'xyn_queue_oldest_ready_seconds')?.samples[0]?.value).toBe(42.5);
  });

  it('carries metadata from the help text and type', async () => {
    const decoded = decodeWriteRequest(await remoteWriteBody(registry(), CONFIG, TS));
    const up = decoded.metadata.find((m) => m.family === 'xyn_collector_up');
    expect(up).toEqual({ type: METRIC_TYPE.gauge, family: 'xyn_collector_up', help: expect.stringContaining('Whether the last collector tick read the database') });
    expect(decoded.metadata.map((m) => m.family).sort()).toEqual([...new Set(decoded.series.map((s) => s.labels.__name__))].sort());
  });

  it('a failed read sends xyn_collector_up 0 and no queue gauge', async () => {
    const failed = buildRegistry(undefined, { up: false, durationSeconds: 1 });
    const decoded = decodeWriteRequest(await remoteWriteBody(failed, CONFIG, TS));
    expect(decoded.series.map((s) => s.labels.__name__).sort()).toEqual(['xyn_collector_duration_seconds', 'xyn_collector_up']);
    expect(decoded.series.find((s) => s.labels.__name__ === 'xyn_collector_up')?.samples).toEqual([{ value: 0, timestampMs: TS }]);
  });

  it('encodes an empty request as zero bytes and a timestamp beyond 2^32 ms exactly', () => {
    expect(encodeWriteRequest({ timeseries: [], metadata: [] })).toHaveLength(0);
    const metrics = [{ name: 'm', help: 'h', type: 'gauge', aggregator: 'sum', values: [{ value: -1.5, labels: {} }] }];
    const request = toWriteRequest(metrics as never, { job: 'j', labels: {} }, 1_790_000_000_123);
    expect(request.timeseries[0]).toEqual({ labels: [{ name: '__name__', value: 'm' }, { name: 'job', value: 'j' }], samples: [{ value: -1.5, timestampMs: 1_790_000_000_123 }] });
  });
});

describe('remote write: headers and auth', () => {
  const body = new Uint8Array([1, 2, 3]);

  it('sends the protocol headers, and basic or bearer auth', () => {
    expect(requestHeaders(CONFIG, body, {})).toEqual(REMOTE_WRITE_HEADERS);
    expect(REMOTE_WRITE_HEADERS).toEqual({
      'Content-Encoding': 'snappy',
      'Content-Type': 'application/x-protobuf',
      'X-Prometheus-Remote-Write-Version': '0.1.0',
    });
    expect(requestHeaders({ ...CONFIG, auth: { kind: 'bearer', token: 'tok' } }, body, {}).Authorization).toBe('Bearer tok');
    expect(requestHeaders({ ...CONFIG, auth: { kind: 'basic', username: 'u', password: 'p' } }, body, {}).Authorization).toBe(`Basic ${Buffer.from('u:p').toString('base64')}`);
  });

  it('the test verifier reproduces the AWS SigV4 test-suite vector post-vanilla', () => {
    // aws-sig-v4-test-suite/post-vanilla: POST / with Host and X-Amz-Date, empty body.
    expect(
      verifySigV4(
        {
          method: 'POST',
          path: '/',
          headers: {
            host: 'example.amazonaws.com',
            'x-amz-date': '20150830T123600Z',
            authorization:
              'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b',
          },
          body: new Uint8Array(),
        },
        'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
      ),
    ).toMatchObject({ accessKeyId: 'AKIDEXAMPLE', region: 'us-east-1', service: 'service' });
  });

  it('signs with SigV4 for service aps: the role credentials, the session token, the body and the protocol headers', () => {
    const env = { AWS_ACCESS_KEY_ID: 'ASIAEXAMPLE', AWS_SECRET_ACCESS_KEY: 'secret/Key+EXAMPLE', AWS_SESSION_TOKEN: 'session-token-EXAMPLE' };
    const config: RemoteWriteConfig = { ...CONFIG, auth: { kind: 'sigv4', region: 'eu-west-1' } };
    const now = new Date('2026-12-01T04:05:06.789Z');
    const headers = requestHeaders(config, body, env, now);
    expect(headers).toMatchObject({ ...REMOTE_WRITE_HEADERS, 'X-Amz-Date': '20261201T040506Z', 'X-Amz-Security-Token': 'session-token-EXAMPLE' });
    const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
    const signed = { method: 'POST', path: '/workspaces/ws-1234/api/v1/remote_write', headers: lower, body };
    expect(verifySigV4(signed, env.AWS_SECRET_ACCESS_KEY)).toEqual({ accessKeyId: 'ASIAEXAMPLE', date: '20261201', region: 'eu-west-1', service: 'aps' });
    const signedNames = /SignedHeaders=([^,]+)/.exec(headers.Authorization!)![1]!.split(';');
    expect(signedNames).toEqual(expect.arrayContaining(['content-encoding', 'content-type', 'host', 'x-amz-date', 'x-amz-security-token']));
    // A changed body or a wrong key no longer verifies.
    expect(() => verifySigV4({ ...signed, body: new Uint8Array([1, 2, 4]) }, env.AWS_SECRET_ACCESS_KEY)).toThrow(/signature mismatch/);
    expect(() => verifySigV4(signed, 'another-key')).toThrow(/signature mismatch/);
  });

  it('without role credentials, SigV4 says which variables are missing', () => {
    const config: RemoteWriteConfig = { ...CONFIG, auth: { kind: 'sigv4', region: 'eu-west-1' } };
    expect(() => requestHeaders(config, body, {})).toThrow(/AWS_ACCESS_KEY_ID\/AWS_SECRET_ACCESS_KEY/);
  });
});
