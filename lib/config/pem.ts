import { readFileSync } from 'node:fs';
import { ConfigError } from './errors';

/**
 * A CA bundle named by `what`, read once at parse: it must exist and hold a
 * PEM certificate now, not fail at the first connection or push.
 */
export function readPemFile(what: string, path: string): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code ?? 'unreadable';
    throw new ConfigError(`${what} cannot be read (${code}): ${path}`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new ConfigError(`${what} holds no PEM certificate (-----BEGIN CERTIFICATE-----): ${path}`);
  }
  return pem;
}
