/** URL settings: parsed with one error naming the variable; a value is echoed only when it cannot hold a secret. */

import { ConfigError } from './errors';

/** A value without "scheme://" is never echoed: it may be a pasted password or token. */
export function requireScheme(name: string, raw: string, example: string): void {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(raw)) {
    throw new ConfigError(`${name} has no scheme; it must look like ${example}`);
  }
}

/** Node's URL parser rejects ports above 65535 with a generic error; say which part is wrong. */
export function checkPortText(name: string, raw: string): void {
  const match = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?(?:\[[^\]]*\]|[^:/?#]*):(\d*)(?:[/?#]|$)/i.exec(raw);
  if (match && match[1] !== undefined && match[1] !== '') {
    const port = Number(match[1]);
    if (port < 1 || port > 65535) throw new ConfigError(`${name} has a port out of range: ${match[1]}`);
  }
}

export function parseUrl(name: string, raw: string, protocols: string[]): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(
      `${name} is not a valid URL (expected ${protocols[0]}//host:port; characters such as / @ # ? in a password must be percent-encoded)`,
    );
  }
  if (!protocols.includes(url.protocol)) {
    throw new ConfigError(
      `${name} must start with ${protocols.map((p) => `${p}//`).join(' or ')}, got "${url.protocol}//"`,
    );
  }
  if (!url.hostname) throw new ConfigError(`${name} has no host`);
  if (url.port !== '') {
    const port = Number(url.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new ConfigError(`${name} has a port out of range: ${url.port}`);
    }
  }
  return url;
}

/** Secrets travel in HTTP headers: no control characters, no surrounding blanks. */
export function checkSecretText(name: string, value: string): void {
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(value)) throw new ConfigError(`${name} contains a control character (a stray newline?)`);
}

/** A URL fit for logs: no userinfo, no query (which may carry a password). */
export function displayUrl(raw: string): string {
  try {
    const url = new URL(raw);
    url.username = '';
    url.password = '';
    url.search = '';
    url.hash = '';
    return url.toString().replace(/\/+$/, '');
  } catch {
    return '<invalid url>';
  }
}
