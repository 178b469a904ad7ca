/** Host names the rules about transport and plain text turn on; also read at run time by the connection. */

/** Loopback only: where plain text never leaves the machine. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/** Neon's hosts, reached through the Neon driver's secure WebSocket. */
export function isNeonHost(host: string): boolean {
  return /(^|\.)neon\.(tech|build)$/i.test(host);
}

/**
 * A Unix-domain socket directory, as libpq takes it in a URL: the host
 * percent-encoded, postgresql://user@%2Fvar%2Frun%2Fpostgresql/db. Returns the
 * directory, or undefined for a network host.
 */
export function unixSocketDirectory(urlHostname: string): string | undefined {
  if (!/^%2f/i.test(urlHostname)) return undefined;
  try {
    return decodeURIComponent(urlHostname);
  } catch {
    return undefined;
  }
}
