/**
 * Secrets never leave the process: every message that is logged or thrown
 * passes through redact() with the secrets the configuration holds.
 */

const MASK = '***';

function variants(secret: string): string[] {
  const forms = new Set([
    secret,
    encodeURIComponent(secret),
    JSON.stringify(secret).slice(1, -1),
    Buffer.from(secret).toString('base64'),
  ]);
  return [...forms].filter((s) => s.length > 0);
}

export function redact(message: string, secrets: readonly string[]): string {
  // Longest first: a secret that contains another must not be left half-masked.
  const forms = [...new Set(secrets.flatMap(variants))].sort((a, b) => b.length - a.length);
  let out = message;
  for (const form of forms) out = out.split(form).join(MASK);
  // Userinfo in any URL, whatever the configuration knew about.
  out = out.replace(/([a-z][a-z0-9+.-]*:\/\/[^:/@\s"']*):[^@/\s"']*@/gi, `$1:${MASK}@`);
  out = out.replace(/(authorization:\s*(?:basic|bearer)\s+)[^\s"',;]+/gi, `$1${MASK}`);
  out = out.replace(/\b((?:password|passwd|pwd|token|access_token|secret)=)[^&\s"',;]+/gi, `$1${MASK}`);
  return out;
}

/** The message of anything thrown, redacted, on one line. */
export function describeError(error: unknown, secrets: readonly string[]): string {
  let message: string;
  if (error instanceof AggregateError && error.errors.length > 0) {
    message = error.errors.map((e) => (e instanceof Error ? e.message : String(e))).join('; ');
  } else if (error instanceof Error) {
    message = error.message || error.name;
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && !message.includes(code)) message = `${message} (${code})`;
    // "fetch failed" and friends keep the real reason in `cause`.
    const cause = error.cause instanceof Error ? error.cause.message : undefined;
    if (cause && !message.includes(cause)) message = `${message}: ${cause}`;
  } else {
    message = String(error);
  }
  return redact(message.replace(/\s+/g, ' ').trim(), secrets);
}
