/** The Authorization header of both sinks' basic and bearer auth (SigV4 signs in lib/sinks/remote-write.ts). */

import type { HttpAuth } from '../config/types';

export function authorizationHeader(auth: HttpAuth | undefined): Record<string, string> {
  if (auth?.kind === 'basic') return { Authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` };
  if (auth?.kind === 'bearer') return { Authorization: `Bearer ${auth.token}` };
  return {};
}
