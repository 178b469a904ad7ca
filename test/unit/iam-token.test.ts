/**
 * The RDS IAM token is AWS's: for the same credentials, time, host, port and
 * user it carries the very signature @aws-sdk/rds-signer's presign makes
 * (@smithy/signature-v4, the SDK's signer, with the Signer's own request:
 * GET https://host:port/?Action=connect&DBUser=user, header host=host:port,
 * expiresIn 900). So a token RDS accepts from the SDK it accepts from here.
 */

import { createHash, createHmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { describe, expect, it } from 'vitest';
import { IAM_TOKEN_EXPIRES_SECONDS, rdsAuthToken, tokenSignature } from '../../lib/source/iam-token';

const CREDENTIALS = { accessKeyId: 'AKIDXYNMETRICSTEST01', secretAccessKey: 'xyn-metrics-test-secret-access-key-000000', sessionToken: 'IQoJb3JpZ2luX2VjE/+token==' };
const NOW = new Date('2024-05-06T07:08:09.123Z');

const bytes = (data: string | ArrayBuffer | ArrayBufferView): string | Buffer =>
  typeof data === 'string' ? data : ArrayBuffer.isView(data) ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : Buffer.from(data);

/** The SDK's hash constructor shape, over node:crypto. */
class Sha256 {
  private readonly hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = secret ? createHmac('sha256', bytes(secret)) : createHash('sha256');
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
}

/** What @aws-sdk/rds-signer's getAuthToken presigns, as query parameters. */
async function sdkQuery(hostname: string, port: number, username: string, region: string, credentials: typeof CREDENTIALS | Omit<typeof CREDENTIALS, 'sessionToken'>) {
  const signer = new SignatureV4({ service: 'rds-db', region, credentials, sha256: Sha256 });
  const presigned = await signer.presign(
    { method: 'GET', protocol: 'https:', hostname, port, path: '/', query: { Action: 'connect', DBUser: username }, headers: { host: `${hostname}:${port}` } },
    { expiresIn: 900, signingDate: NOW },
  );
  return presigned.query as Record<string, string>;
}

function tokenQuery(token: string): Record<string, string> {
  return Object.fromEntries(new URL(`https://${token}`).searchParams);
}

describe('rdsAuthToken', () => {
  it.each([
    ['an RDS instance', 'db-1.abcdefghijkl.eu-west-1.rds.amazonaws.com', 5432, 'xyn_metrics', 'eu-west-1'],
    ['another port and region', 'cluster-x.cluster-abc.us-east-2.rds.amazonaws.com', 6543, 'reader', 'us-east-2'],
    ['a user that needs encoding', 'db.internal.example', 5432, 'xyn metrics$1', 'eu-central-1'],
  ])('%s: the SDK\'s own signature, parameters and host', async (_name, host, port, user, region) => {
    const token = rdsAuthToken({ host, port, user, region }, CREDENTIALS, NOW);
    expect(token.startsWith(`${host}:${port}/?`), token.slice(0, 80)).toBe(true);
    expect(token).not.toMatch(/^https?:/);
    expect(tokenQuery(token)).toEqual(await sdkQuery(host, port, user, region, CREDENTIALS));
    expect(tokenQuery(token)).toMatchObject({ Action: 'connect', DBUser: user, 'X-Amz-Expires': String(IAM_TOKEN_EXPIRES_SECONDS), 'X-Amz-Date': '20240506T070809Z' });
  });

  it('without a session token (long-lived keys) the SDK\'s signature too, and no X-Amz-Security-Token', async () => {
    const keys = { accessKeyId: CREDENTIALS.accessKeyId, secretAccessKey: CREDENTIALS.secretAccessKey };
    const token = rdsAuthToken({ host: 'db.example', port: 5432, user: 'u', region: 'eu-west-1' }, keys, NOW);
    expect(tokenQuery(token)).toEqual(await sdkQuery('db.example', 5432, 'u', 'eu-west-1', keys));
    expect(token).not.toContain('X-Amz-Security-Token');
  });

  it('changes with the secret key (a check that can fail), and names its signature', async () => {
    const target = { host: 'db.example', port: 5432, user: 'u', region: 'eu-west-1' };
    const token = rdsAuthToken(target, CREDENTIALS, NOW);
    const other = rdsAuthToken(target, { ...CREDENTIALS, secretAccessKey: 'another-secret' }, NOW);
    expect(tokenSignature(token)).toMatch(/^[0-9a-f]{64}$/);
    expect(tokenSignature(other)).not.toBe(tokenSignature(token));
    expect(tokenSignature(token)).toBe(tokenQuery(token)['X-Amz-Signature']);
  });
});
