/**
 * Docs that tell the truth, checked against the code where a check can:
 * the README's configuration tables against the variables lib/ and
 * functions/ actually read (the code is the source of truth, so a variable
 * added or removed on either side is named), docs/failure-modes.md's
 * alert table against monitoring/alerts.yml, every alert's runbook_url
 * against the sections of docs/runbooks.md, and every link between the docs
 * against the headings it points at.
 */

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
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

/** The rule files whose alerts link to a runbook (the remote-write path loads alerts.yml too). */
const RULE_FILES = ['monitoring/alerts.yml', 'monitoring/rules-remote-write.yml'];

interface AlertRule {
  file: string;
  name: string;
  severity: string | undefined;
  duration: string | undefined;
  runbookUrls: string[];
}

/** The alert rules of a rule file, in its fixed layout (one `- alert:` block each; an alertname may have several rules). */
function alertRules(file: string): AlertRule[] {
  const source = read(file);
  const starts = [...source.matchAll(/^\s+- alert: (\w+)$/gm)];
  return starts.map((match, i) => {
    const text = source.slice(match.index, starts[i + 1]?.index ?? source.length);
    return {
      file,
      name: match[1]!,
      severity: /^\s+severity: (\w+)$/m.exec(text)?.[1],
      duration: /^\s+for: (\w+)$/m.exec(text)?.[1],
      runbookUrls: [...text.matchAll(/^\s+runbook_url: (\S+)$/gm)].map((m) => m[1]!),
    };
  });
}

/** Markdown with its fenced code blocks blanked, every offset kept (a `# comment` in a shell block is not a heading). */
const withoutCode = (markdown: string) => markdown.replace(/^\s*```[\s\S]*?^\s*```/gm, (block) => block.replace(/[^\n]/g, ' '));

/** GitHub's anchor for a heading's text (github-slugger): links as their text, lower case, punctuation dropped, each space a hyphen. */
function githubAnchor(heading: string): string {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** Every anchor a Markdown file has: its headings (a repeated one gets -1, -2, … as on GitHub) and explicit `<a name|id>`. */
function anchorsOf(markdown: string): Set<string> {
  const found = new Set<string>();
  const seen = new Map<string, number>();
  for (const match of withoutCode(markdown).matchAll(/^#{1,6} +(.+?)[ #]*$/gm)) {
    const anchor = githubAnchor(match[1]!);
    const repeats = seen.get(anchor) ?? 0;
    seen.set(anchor, repeats + 1);
    found.add(repeats === 0 ? anchor : `${anchor}-${repeats}`);
  }
  for (const match of markdown.matchAll(/<a (?:name|id)="([^"]+)"/g)) found.add(match[1]!);
  return found;
}

/** The `### Name` sections of a page: name -> the section's text (code included) up to the next heading of level 1 to 3. */
function sectionsOf(markdown: string): Map<string, string> {
  const masked = withoutCode(markdown);
  const headings = [...masked.matchAll(/^#{1,3} (.+)$/gm)];
  return new Map(
    headings
      .map((match, i) => [match, headings[i + 1]?.index ?? markdown.length] as const)
      .filter(([match]) => match[0].startsWith('### '))
      .map(([match, end]) => [match[1]!.trim(), markdown.slice(match.index + match[0].length, end)]),
  );
}

/** The rows of the Markdown table that starts with `header`: each row's cells, trimmed. */
function tableRows(markdown: string, header: string): string[][] {
  const start = markdown.indexOf(`${header}\n`);
  expect(start, `a table headed ${header}`).toBeGreaterThan(-1);
  const lines = markdown.slice(start).split('\n').slice(2);
  const rows = lines.slice(0, lines.findIndex((l) => !l.startsWith('|')));
  return rows.map((row) => row.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim()));
}

const RUNBOOK_PARTS = ['**What it means.**', '**First check.**', '**Likely causes', '**What to do.**', '**When it resolves.**'];
const ALERT_TABLE = '| alert | severity | fires when |';

describe('docs/runbooks.md', () => {
  const rules = RULE_FILES.flatMap(alertRules);
  const names = [...new Set(rules.map((r) => r.name))].sort();
  const page = read('docs/runbooks.md');
  const anchors = anchorsOf(page);
  const sections = sectionsOf(page);

  it('finds the alert rules and the sections', () => {
    expect(alertRules('monitoring/alerts.yml').length).toBeGreaterThan(10);
    expect(sections.size).toBeGreaterThan(10);
  });

  it('every runbook_url is docs/runbooks.md#<the anchor of the alert\'s own heading there>', () => {
    const wrong = rules
      .filter((r) => r.runbookUrls.length !== 1 || r.runbookUrls[0] !== `docs/runbooks.md#${githubAnchor(r.name)}` || !anchors.has(githubAnchor(r.name)))
      .map((r) => `${r.file} ${r.name} (${r.severity}): ${r.runbookUrls.join(', ') || 'no runbook_url'}`);
    expect(wrong).toEqual([]);
  });

  it('every alert has a section with the five parts, in order, and no section names another alert', () => {
    const incomplete = names.filter((name) => {
      const body = sections.get(name);
      if (body === undefined) return true;
      const at = RUNBOOK_PARTS.map((part) => body.indexOf(part));
      return at.some((i, k) => i === -1 || (k > 0 && i < at[k - 1]!));
    });
    expect(incomplete, `sections missing, or without ${RUNBOOK_PARTS.join(' ')}`).toEqual([]);
    expect([...sections.keys()].filter((h) => /^Xyn/.test(h) && !names.includes(h))).toEqual([]);
  });

  it('the first check of every section is something to run: a command or a query', () => {
    const none = names.filter((name) => {
      const body = sections.get(name) ?? '';
      const check = body.slice(body.indexOf('**First check.**'), body.indexOf('**Likely causes'));
      return !/^```(bash|sql|promql)$/m.test(check) && !/`(aws|curl|SELECT) [^`]+`/.test(check);
    });
    expect(none).toEqual([]);
  });

  it('names only panels, variables and the title the dashboard has (in *italics*)', () => {
    const dashboard = JSON.parse(read('monitoring/grafana-dashboard.json')) as { title: string; panels: { title: string }[]; templating: { list: { label?: string }[] } };
    const known = new Set([dashboard.title, ...dashboard.panels.map((p) => p.title), ...dashboard.templating.list.map((v) => v.label ?? '')]);
    // Emphasis that is not the dashboard's: Prometheus's own pages, and two words of the introduction.
    const OTHER = new Set(['Graph', 'Status → Targets', 'which', 'italics']);
    const prose = withoutCode(page).replace(/`[^`\n]*`/g, '');
    const named = [...new Set([...prose.matchAll(/(?<![*\w])\*([^*\n]+)\*(?![*\w])/g)].map((m) => m[1]!))];
    expect(named.length).toBeGreaterThan(5);
    expect(named.filter((n) => !known.has(n) && !OTHER.has(n)).sort(), 'not in monitoring/grafana-dashboard.json').toEqual([]);
  });

  // docs/metrics.md keeps the same table, its links pointing here.
  for (const doc of ['docs/runbooks.md', 'docs/metrics.md']) {
    it(`${doc}'s alert table lists every alert once, each with the severities and the \`for:\` of its rules`, () => {
      const rows = tableRows(read(doc), ALERT_TABLE);
      const listed = rows.map(([alert = '']) => /\[(Xyn\w+)\]\((?:runbooks\.md)?#(\w+)\)/.exec(alert));
      expect(listed.map((m) => m?.[1]).sort()).toEqual(names);
      expect(listed.filter((m) => m?.[2] !== githubAnchor(m?.[1] ?? '')).map((m) => m?.[1])).toEqual([]);
      const wrong = rules.filter((rule) => {
        const [, severity = '', firesWhen = ''] = rows.find(([alert = '']) => alert.includes(`[${rule.name}]`)) ?? [];
        const duration = rule.duration?.replace(/^(\d+)m$/, '$1 m');
        const named = duration === undefined || new RegExp(`(?<!\\d)${duration}\\b`).test(`${severity} ${firesWhen}`);
        return !severity.includes(rule.severity ?? '(none)') || !named;
      });
      expect(wrong.map((r) => `${r.name}: ${r.severity}, for ${r.duration ?? '-'}`)).toEqual([]);
    });
  }
});

describe('links between the docs', () => {
  const files = ['README.md', 'CONTRIBUTING.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

  it('every relative link names a file of the repository, and every #anchor a heading of its page', () => {
    const broken: string[] = [];
    for (const file of files) {
      for (const match of withoutCode(read(file)).matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = match[1]!;
        if (/^[a-z]+:/.test(target)) continue; // https:, mailto:
        const [path = '', anchor] = target.split('#');
        const linked = path === '' ? file : join(dirname(file), path);
        if (!existsSync(join(ROOT, linked))) broken.push(`${file}: ${target} (no such file)`);
        else if (anchor !== undefined && linked.endsWith('.md') && !anchorsOf(read(linked)).has(anchor)) broken.push(`${file}: ${target}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('sees the anchors GitHub makes', () => {
    expect(githubAnchor('Freshness gating: frozen gauges cannot lie')).toBe('freshness-gating-frozen-gauges-cannot-lie');
    expect(githubAnchor('3. Worker liveness (`xyn_workers_alive`)')).toBe('3-worker-liveness-xyn_workers_alive');
    expect(githubAnchor('XynCollectorSilent')).toBe('xyncollectorsilent');
    expect([...anchorsOf('## A\n\n```bash\n# not a heading\n```\n\n## A\n')]).toEqual(['a', 'a-1']);
  });
});
