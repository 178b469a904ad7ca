/**
 * Docs that tell the truth, checked against the code where a check can:
 * the README's configuration tables against the variables lib/ and
 * functions/ actually read (the code is the source of truth, so a variable
 * added or removed on either side is named), and docs/failure-modes.md's
 * alert table against monitoring/alerts.yml.
 */

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { setting, SETTING_NAMES } from '../../lib/config/settings';
import { BEGIN, END, settingsTable } from '../../scripts/docs/settings-table';
import { buildRegistry } from '../../lib/metrics/registry';

const ROOT = join(import.meta.dirname, '..', '..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const sources = (dir: string) =>
  readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => read(join(dir, f)));

/** Variables of the process environment that are not this project's configuration. */
const NOT_OURS = /^(AWS_|LAMBDA_|NODE_)/;

/** Every variable the code reads: `text(env, 'NAME')`-style calls and `env.NAME` / `env['NAME']`. */
function variablesInCode(): Set<string> {
  const names = new Set<string>();
  for (const source of [...sources('lib'), ...sources('functions')]) {
    for (const m of source.matchAll(/\w\(\s*env,\s*'([A-Z][A-Z0-9_]+)'/g)) names.add(m[1]!);
    for (const m of source.matchAll(/\benv(?:\?)?\.([A-Z][A-Z0-9_]+)\b|\benv\[\s*'([A-Z][A-Z0-9_]+)'\s*\]/g)) names.add((m[1] ?? m[2])!);
  }
  return new Set([...names].filter((n) => !NOT_OURS.test(n)));
}

interface Row {
  names: string[];
  defaults: string;
  meaning: string;
}

/** The rows of every table in the README's "## Configuration" section (its "###" subsections included). */
function readmeConfigurationRows(): Row[] {
  const readme = read('README.md');
  const start = readme.indexOf('\n## Configuration\n');
  expect(start, 'README has a "## Configuration" section').toBeGreaterThan(-1);
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end === -1 ? undefined : end);
  return section
    .split('\n')
    .filter((line) => /^\| `[A-Z]/.test(line))
    .map((line) => {
      const [names = '', defaults = '', meaning = ''] = line.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim());
      return { names: [...names.matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((m) => m[1]!), defaults, meaning };
    });
}

describe('README configuration table', () => {
  it('is the settings table, as npm run docs writes it', () => {
    const readme = read('README.md');
    expect(readme.slice(readme.indexOf(BEGIN), readme.indexOf(END) + END.length), 'run npm run docs').toBe(settingsTable());
  });
});

describe('README configuration tables', () => {
  const rows = readmeConfigurationRows();
  const documented = new Set(rows.flatMap((r) => r.names));
  const inCode = variablesInCode();

  it('finds the tables and the variables', () => {
    expect(rows.length).toBeGreaterThan(10);
    expect(inCode.size).toBeGreaterThan(10);
  });

  it('document every variable the code reads', () => {
    expect([...inCode].filter((n) => !documented.has(n)).sort(), 'read by lib/ or functions/ but missing from the README').toEqual([]);
  });

  it('document only settings of the settings table (lib/config/settings.ts)', () => {
    const gone = [...documented].filter((n) => !(SETTING_NAMES as string[]).includes(n) && !/_SSM_PARAMETER$|^X_/.test(n));
    expect(gone.sort(), 'in the README but not in the settings table').toEqual([]);
  });

  it('every variable the code reads is in the settings table', () => {
    expect([...inCode].filter((n) => !(SETTING_NAMES as string[]).includes(n)).sort()).toEqual([]);
  });

  it('give the defaults the code uses', () => {
    const defaults = SETTING_NAMES.filter((n) => setting(n).scope === 'run').map((n) => [n, setting(n).default] as const).filter(([, v]) => v !== undefined);
    const wrong = defaults
      .map(([name, value]) => ({ name, value: String(value), row: rows.find((r) => r.names.includes(name)) }))
      .filter(({ value, row }) => !row || !row.defaults.includes(`\`${value}\``))
      .map(({ name, value, row }) => `${name}: code ${value}, README ${row?.defaults ?? '(no row)'}`);
    expect(wrong).toEqual([]);
  });

  it('has no line that Markdown would read as a quotation or a list by accident', () => {
    const accidental = read('README.md')
      .split('\n')
      .filter((line) => /^> ?\d/.test(line));
    expect(accidental).toEqual([]);
  });
});

describe('README on a failed database read', () => {
  it('names exactly the metrics the tick then pushes', async () => {
    const text = await buildRegistry(undefined, { up: false, durationSeconds: 0.5 }).metrics();
    const pushed = [...text.matchAll(/^# TYPE (\w+)/gm)].map((m) => m[1]!).sort();
    const readme = read('README.md');
    const sentence = readme.slice(readme.indexOf('When the database cannot be read'), readme.indexOf('(the PUT replaces the group'));
    const named = [...sentence.matchAll(/`(xyn_\w+)/g)].map((m) => m[1]!).sort();
    expect(named).toEqual(pushed);
  });
});

describe('docs/failure-modes.md', () => {
  it('its alert table names every alert of monitoring/alerts.yml, and no other', () => {
    const alerts = [...new Set([...read('monitoring/alerts.yml').matchAll(/^\s+- alert: (\w+)/gm)].map((m) => m[1]!))].sort();
    const doc = read('docs/failure-modes.md');
    const table = doc.slice(doc.indexOf('\n## Alerts\n'), doc.indexOf('\n## ', doc.indexOf('\n## Alerts\n') + 1));
    const named = [...new Set([...table.matchAll(/^\| (.*?) \|/gm)].flatMap((m) => [...m[1]!.matchAll(/`(Xyn\w+)`/g)].map((n) => n[1]!)))].sort();
    expect(named).toEqual(alerts);
  });

  it('names the alert that an HTTP 400 on push raises', () => {
    const row = read('docs/failure-modes.md')
      .split('\n')
      .find((line) => line.startsWith('| HTTP 400 |'));
    expect(row).toContain('`XynPushRejected`');
  });
});

describe('every name the docs use exists (issue 24)', () => {
  const docs = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  if (readdirSync(ROOT).includes('CONTRIBUTING.md')) docs.push('CONTRIBUTING.md');
  const text = docs.map((d) => `\n<!-- ${d} -->\n${read(d)}`).join('\n');
  const code = [...sources('lib'), ...sources('functions'), ...sources('scripts'), ...sources('test/support'), read('vitest.config.ts')].join('\n');
  /** Variables of the platform, of the test harness and of the tools (and CloudFormation stack statuses): not the collector's settings. */
  const OTHER_VARIABLES = /^(AWS_|NODE_|LAMBDA_|TEST_|PG_BIN|CHAOS_|SOAK_|BENCH_|XYN_TEST_RUN$|PUSHGATEWAY_BIN$|PROMETHEUS_BIN$|PROMTOOL_BIN$|X_SSM_PARAMETER$|(CREATE|UPDATE|DELETE|ROLLBACK)_[A-Z_]+$)/;

  it('every setting-like name is a setting, a secret\'s X_SSM_PARAMETER, another program\'s variable, or a constant of the code', () => {
    const names = new Set([...text.matchAll(/`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?==|`)/g)].map((m) => m[1]!));
    const unknown = [...names].filter((name) => {
      if ((SETTING_NAMES as string[]).includes(name)) return false;
      const base = name.replace(/_SSM_PARAMETER$/, '');
      if (base !== name && (SETTING_NAMES as string[]).includes(base) && setting(base as never).secret) return false;
      if (OTHER_VARIABLES.test(name)) return false;
      return !new RegExp(`\\b(?:const|let)\\s+${name}\\b`).test(code);
    });
    expect(unknown.sort(), 'named in the docs, known to nothing').toEqual([]);
  });

  it('every metric they name is in the metric table', async () => {
    const { METRICS } = await import('../../lib/metrics/definitions');
    const metrics = new Set(Object.values(METRICS).map((m) => m.name));
    // xyn_metrics is the default job; xyn_pusher a user name in an example; xyn_threshold:… a recorded series.
    const named = [...new Set([...text.matchAll(/\bxyn_[a-z_]*[a-z](?![a-z_:])/g)].map((m) => m[0]))];
    expect(named.filter((n) => !metrics.has(n) && !['xyn_metrics', 'xyn_pusher'].includes(n)).sort()).toEqual([]);
  });

  it('every alert they name is in the alert rules', () => {
    const alerts = new Set(
      ['monitoring/alerts.yml', 'monitoring/rules-remote-write.yml'].flatMap((f) => [...read(f).matchAll(/^\s+- alert: (\w+)/gm)].map((m) => m[1]!)),
    );
    const named = [...new Set([...text.matchAll(/\bXyn[A-Z][A-Za-z]+/g)].map((m) => m[0]))];
    expect(named.filter((n) => !alerts.has(n)).sort()).toEqual([]);
  });
});
