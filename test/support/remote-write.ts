/**
 * The receiving side of remote write, for tests: a WriteRequest decoder (an
 * independent reading of prometheus/prompb, not the sink's encoder run
 * backwards), an AWS SigV4 verifier written from the specification (not the
 * signing library), and a loopback receiver that records what arrives and
 * answers with scripted statuses.
 */

import { createHash, createHmac } from 'node:crypto';
import http from 'node:http';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { uncompress } from 'snappyjs';

export interface DecodedSeries {
  labels: Record<string, string>;
  /** Label names in wire order (the protocol wants them sorted). */
  labelOrder: string[];
  samples: { value: number; timestampMs: number }[];
}

export interface DecodedMetadata {
  type: number;
  family: string;
  help: string;
}

export interface DecodedWriteRequest {
  series: DecodedSeries[];
  metadata: DecodedMetadata[];
}

function messages(reader: BinaryReader, end: number, onField: (field: number, wire: WireType, r: BinaryReader) => void): void {
  while (reader.pos < end) {
    const [field, wire] = reader.tag();
    onField(field, wire, reader);
  }
}

function sub(reader: BinaryReader, onField: (field: number, wire: WireType, r: BinaryReader) => void): void {
  const length = reader.uint32();
  messages(reader, reader.pos + length, onField);
}

/** A snappy-compressed prometheus.WriteRequest, decoded. */
export function decodeWriteRequest(body: Uint8Array): DecodedWriteRequest {
  const raw = uncompress(body);
  const reader = new BinaryReader(raw);
  const result: DecodedWriteRequest = { series: [], metadata: [] };
  messages(reader, raw.length, (field, wire, r) => {
    if (field === 1) {
      const series: DecodedSeries = { labels: {}, labelOrder: [], samples: [] };
      sub(r, (f, w, rr) => {
        if (f === 1) {
          let name = '';
          let value = '';
          sub(rr, (lf, lw, lr) => (lf === 1 ? (name = lr.string()) : lf === 2 ? (value = lr.string()) : lr.skip(lw)));
          series.labels[name] = value;
          series.labelOrder.push(name);
        } else if (f === 2) {
          const sample = { value: NaN, timestampMs: NaN };
          sub(rr, (sf, sw, sr) => (sf === 1 ? (sample.value = sr.double()) : sf === 2 ? (sample.timestampMs = Number(sr.int64())) : sr.skip(sw)));
          series.samples.push(sample);
        } else rr.skip(w);
      });
      result.series.push(series);
    } else if (field === 3) {
      const meta: DecodedMetadata = { type: 0, family: '', help: '' };
      sub(r, (f, w, rr) => {
        if (f === 1) meta.type = rr.int32();
        else if (f === 2) meta.family = rr.string();
        else if (f === 4) meta.help = rr.string();
        else rr.skip(w);
      });
      result.metadata.push(meta);
    } else r.skip(wire);
  });
  return result;
}

const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();

export interface SignedRequest {
  method: string;
  /** Path and query as sent, e.g. /workspaces/ws-1/api/v1/remote_write */
  path: string;
  /** Header names in lower case. */
  headers: Record<string, string>;
  body: Uint8Array;
}

/**
 * Verify an AWS Signature V4 Authorization header against the request and the
 * secret key (docs.aws.amazon.com, "Create a signed AWS API request"). Returns
 * the credential scope it names; throws saying what does not match.
 */
export function verifySigV4(request: SignedRequest, secretAccessKey: string): { accessKeyId: string; date: string; region: string; service: string } {
  const match = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(
    request.headers.authorization ?? '',
  );
  if (!match) throw new Error(`no SigV4 Authorization header: ${request.headers.authorization ?? '(none)'}`);
  const [, accessKeyId, date, region, service, signedHeaders, signature] = match as unknown as string[];
  const amzDate = request.headers['x-amz-date'];
  if (!amzDate?.startsWith(date!)) throw new Error(`X-Amz-Date ${amzDate} does not match the credential date ${date}`);
  const names = signedHeaders!.split(';');
  if (!names.includes('host')) throw new Error('host is not signed');
  const [pathname, query = ''] = request.path.split('?');
  const canonicalQuery = query
    .split('&')
    .filter(Boolean)
    .map((pair) => pair.split('='))
    .sort(([a], [b]) => (a! < b! ? -1 : a! > b! ? 1 : 0))
    .map(([k, v = '']) => `${k}=${v}`)
    .join('&');
  const canonicalRequest = [
    request.method,
    pathname,
    canonicalQuery,
    ...names.map((name) => `${name}:${(request.headers[name] ?? '').trim().replace(/\s+/g, ' ')}`),
    '',
    signedHeaders,
    sha256(request.body),
  ].join('\n');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonicalRequest)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${secretAccessKey}`, date!), region!), service!), 'aws4_request');
  const expected = createHmac('sha256', key).update(stringToSign).digest('hex');
  if (expected !== signature) throw new Error(`signature mismatch: expected ${expected}, got ${signature}`);
  return { accessKeyId: accessKeyId!, date: date!, region: region!, service: service! };
}

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
}

export interface TestReceiver {
  url: string;
  requests: ReceivedRequest[];
  /** Statuses to answer with, in order (0: never answer); 204 once they run out. */
  script: number[];
  stop(): Promise<void>;
}

/** A loopback remote-write receiver that records every request. */
export async function startReceiver(path = '/api/v1/write'): Promise<TestReceiver> {
  const requests: ReceivedRequest[] = [];
  const held: http.IncomingMessage[] = [];
  const receiver: Partial<TestReceiver> = { requests, script: [] };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : (v ?? '')]));
      requests.push({ method: req.method ?? '', path: req.url ?? '', headers, body: Buffer.concat(chunks) });
      const status = receiver.script!.shift() ?? 204;
      // 0: never answer (a hung receiver); the socket is destroyed at stop.
      if (status === 0) return void held.push(req);
      res.writeHead(status, { 'Content-Type': 'text/plain' }).end(status >= 300 ? `scripted ${status}` : '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  receiver.url = `http://127.0.0.1:${port}${path}`;
  receiver.stop = () =>
    new Promise((resolve) => {
      for (const req of held) req.socket.destroy();
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return receiver as TestReceiver;
}

/**
 * Mimir's default ingestion limits (pkg/util/validation/limits.go):
 * -validation.max-length-label-name 1024, -validation.max-length-label-value
 * 2048 (also the metric name), -validation.max-label-names-per-series 30,
 * -validation.max-metadata-length 1024 (metric name and HELP). Lengths are
 * Go string lengths: bytes of UTF-8. A write breaking any of them is refused
 * whole with a 400, which the collector does not retry.
 */
export const MIMIR_DEFAULT_LIMITS = { labelNameLength: 1024, labelValueLength: 2048, labelsPerSeries: 30, metadataLength: 1024 } as const;

/** Every way the request breaks Mimir's default limits (empty: it would be accepted). */
export function mimirLimitViolations(request: DecodedWriteRequest): string[] {
  const bytes = (s: string) => Buffer.byteLength(s, 'utf8');
  const out: string[] = [];
  for (const series of request.series) {
    const name = series.labels.__name__ ?? '?';
    if (series.labelOrder.length > MIMIR_DEFAULT_LIMITS.labelsPerSeries) out.push(`${name}: ${series.labelOrder.length} labels`);
    for (const [label, value] of Object.entries(series.labels)) {
      if (bytes(label) > MIMIR_DEFAULT_LIMITS.labelNameLength) out.push(`${name}: label name of ${bytes(label)} bytes`);
      if (bytes(value) > MIMIR_DEFAULT_LIMITS.labelValueLength) out.push(`${name}: ${label} value of ${bytes(value)} bytes`);
    }
  }
  for (const meta of request.metadata) {
    for (const text of [meta.family, meta.help]) if (bytes(text) > MIMIR_DEFAULT_LIMITS.metadataLength) out.push(`${meta.family}: metadata of ${bytes(text)} bytes`);
  }
  return out;
}
