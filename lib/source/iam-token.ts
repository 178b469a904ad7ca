/**
 * An RDS IAM authentication token, made as AWS's own RDS Signer
 * (@aws-sdk/rds-signer) makes it, with the SigV4 signer the bundle already
 * carries (aws4): a presigned GET for
 *   https://<host>:<port>/?Action=connect&DBUser=<user>
 * for service rds-db in the database's region, valid X-Amz-Expires=900 s,
 * signed header `host` = "<host>:<port>" (the port always written), with the
 * role's session token in X-Amz-Security-Token; the token is that URL without
 * "https://". It is a credential for 15 minutes: never logged, redacted from
 * every error (lib/source/connection.ts).
 */

import aws4 from 'aws4';
import type { AwsCredentials } from '../config/aws';
import type { DatabaseIam } from '../config/types';

/** How long a token is good for: RDS's limit, and what the RDS Signer asks for. */
export const IAM_TOKEN_EXPIRES_SECONDS = 900;

/** SigV4's timestamp: 20240102T030405Z. */
function amzDate(now: Date): string {
  return now.toISOString().replace(/[:-]|\.\d{3}/g, '');
}

export function rdsAuthToken(target: DatabaseIam, credentials: AwsCredentials, now: Date = new Date()): string {
  // An IPv6 literal is written in brackets in a host:port.
  const host = `${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
  const query = new URLSearchParams({ Action: 'connect', DBUser: target.user, 'X-Amz-Date': amzDate(now), 'X-Amz-Expires': String(IAM_TOKEN_EXPIRES_SECONDS) });
  const signed = aws4.sign(
    {
      service: 'rds-db',
      region: target.region,
      method: 'GET',
      host,
      path: `/?${query.toString()}`,
      headers: { Host: host },
      signQuery: true,
    },
    credentials,
  );
  return `${host}${signed.path}`;
}

/** The token's signature, redacted on its own too: a message that cut the token short may still hold it. */
export function tokenSignature(token: string): string | undefined {
  return /[?&]X-Amz-Signature=([0-9a-f]{64})/.exec(token)?.[1];
}
