/**
 * AWS in the environment: a region's shape, and the function's own role
 * credentials as Lambda puts them there. Read where they are used (a SigV4
 * signature for remote write, an RDS IAM token for the database), never kept
 * in the configuration: they are secrets, redacted from all output
 * (lib/runtime/handler.ts, environmentSecrets).
 */

import type { Env } from './read';

/** eu-west-1, us-gov-west-1, ap-southeast-2 … */
export const AWS_REGION_PATTERN = /^[a-z]{2}(-[a-z]+)+-\d$/;

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** The role's credentials; `forWhat` (e.g. "REMOTE_WRITE_SIGV4=true") says in the error who needed them. */
export function awsCredentials(env: Env, forWhat: string): AwsCredentials {
  const accessKeyId = env.AWS_ACCESS_KEY_ID?.trim();
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY?.trim();
  if (!accessKeyId || !secretAccessKey) {
    throw new Error(`${forWhat} but AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not in the environment (Lambda sets them from the role)`);
  }
  const sessionToken = env.AWS_SESSION_TOKEN?.trim();
  return { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
}
