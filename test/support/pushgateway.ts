/**
 * A real Prometheus Pushgateway per test file (the launcher npm start uses
 * too, scripts/support/pushgateway.ts), and reading its exposition text.
 * A missing binary fails the suite: CI installs Debian's prometheus-pushgateway.
 */

import { startPushgateway as launch, type Pushgateway } from '../../scripts/support/pushgateway';

export { pushgatewayBinary } from '../../scripts/support/pushgateway';
export type TestPushgateway = Pushgateway;

export function startPushgateway(extraArgs: string[] = []): Promise<TestPushgateway> {
  return launch({ extraArgs });
}

/** Samples of `name` in the exposition text whose labels include `labels`. */
export function samples(exposition: string, name: string, labels: Record<string, string> = {}): number[] {
  const out: number[] = [];
  for (const line of exposition.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries(
      [...(match[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) out.push(Number(match[4]));
  }
  return out;
}

/** The single value of `name{labels}`; throws if absent or ambiguous. */
export function sample(exposition: string, name: string, labels: Record<string, string> = {}): number {
  const values = samples(exposition, name, labels);
  if (values.length !== 1) throw new Error(`expected one ${name}${JSON.stringify(labels)}, found ${values.length}`);
  return values[0]!;
}
