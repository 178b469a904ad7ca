/**
 * The dashboard as a file: several environments in one Prometheus
 * (PUSHGATEWAY_GROUPING=env=prod, env=staging), so every panel follows the
 * `env` variable and no aggregation adds environments together; a stat panel
 * reads only freshness-gated series and shows "stale" rather than a frozen
 * value; no panel names a scrape job; every recorded series it reads exists on
 * both rule paths; and docs/metrics.md lists exactly its variables. (That the
 * expressions return data, and no number for a stale group, from a real
 * Prometheus is test/integration/prometheus.test.ts and remote-write.test.ts.)
 */

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

interface Target {
  expr?: string;
  legendFormat?: string;
  instant?: boolean;
  range?: boolean;
}
interface Panel {
  title: string;
  type: string;
  targets?: Target[];
  panels?: Panel[];
  fieldConfig?: { defaults: { mappings?: { type: string; options: Record<string, unknown> }[] } };
}
interface Variable {
  name: string;
  label?: string;
  type: string;
  query: unknown;
  definition?: string;
  current?: { text?: string | string[] };
  [key: string]: unknown;
}

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
const dashboard = JSON.parse(read('monitoring/grafana-dashboard.json')) as { panels: Panel[]; templating: { list: Variable[] } };
const allPanels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const exprs = allPanels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr ?? '' })));
const statPanels = allPanels.filter((p) => p.type === 'stat');

/** Series that are not per group: the thresholds (no labels) and the Pushgateway's own scrape. */
const NOT_PER_GROUP = /^(xyn_threshold:|xyn:pushgateway_up$)/;

/** Each `metric{matchers}` selector of the collector's series, raw or recorded (the thresholds and the Pushgateway's own `up` are not per environment). */
function collectorSelectors(expr: string): { metric: string; matchers: string }[] {
  return [...expr.matchAll(/\b((?:xyn[_:]|push_time_seconds|push_failure_time_seconds)[\w:]*)(\{[^}]*\})?/g)]
    .map((m) => ({ metric: m[1]!, matchers: m[2] ?? '' }))
    .filter((s) => !NOT_PER_GROUP.test(s.metric));
}

describe('the dashboard with several environments', () => {
  it('has an env variable: several or all, where All also matches groups without an env label', () => {
    const env = dashboard.templating.list.find((v) => v.name === 'env');
    expect(env).toMatchObject({
      type: 'query',
      multi: true,
      includeAll: true,
      allValue: '.*',
      datasource: { type: 'prometheus', uid: '${datasource}' },
      query: { query: 'label_values(xyn_collector_up{job="$job"}, env)' },
    });
    const names = dashboard.templating.list.map((v) => v.name);
    // env's query reads $job, so it must come after it.
    expect(names.indexOf('env')).toBeGreaterThan(names.indexOf('job'));
  });

  it('every selector of a collector series follows $job and $env', () => {
    const selectors = exprs.flatMap(({ panel, expr }) => collectorSelectors(expr).map((s) => ({ panel, ...s })));
    expect(selectors.length).toBeGreaterThanOrEqual(30);
    const ignoring = selectors.filter((s) => !s.matchers.includes('job="$job"') || !s.matchers.includes('env=~"$env"'));
    expect(ignoring).toEqual([]);
  });

  it('no aggregation adds environments together', () => {
    const aggregations = exprs.flatMap(({ panel, expr }) =>
      [...expr.matchAll(/\b(sum|avg|max|min|count|topk|bottomk|quantile)\s*(?:by\s*\(([^)]*)\))?\s*\(/g)].map((m) => ({ panel, expr, by: m[2] })),
    );
    const mixing = aggregations.filter((a) => a.by === undefined || !a.by.split(',').map((l) => l.trim()).includes('env'));
    expect(mixing).toEqual([]);
  });

  it('a panel with a legend names the environment', () => {
    const targets = allPanels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr ?? '', legendFormat: t.legendFormat })));
    const unnamed = targets.filter((t) => t.legendFormat && collectorSelectors(t.expr).length > 0 && !t.legendFormat.includes('{{env}}'));
    expect(unnamed).toEqual([]);
  });
});

/** The stale marker every stat panel falls back to: the groups with an age that the gate does not pass, as NaN. */
const STALE = '(xyn:push_age_seconds{job="$job", env=~"$env"} unless xyn:push_fresh{job="$job", env=~"$env"}) * NaN';

describe('the stat panels with a frozen group', () => {
  it('there are the six of the top row', () => {
    expect(statPanels.map((p) => p.title)).toEqual(['Ready runs', 'Oldest due run', 'Expired leases', 'Collector', 'Last push', 'Workers alive']);
  });

  it.each(statPanels.map((p) => [p.title, p] as const))('%s: one instant query of a freshness-gated series, else the stale marker', (_title, panel) => {
    expect(panel.targets).toHaveLength(1);
    const target = panel.targets![0]!;
    // An instant query: a range query reduced to its last non-null point would show the value from before the gate closed.
    expect(target).toMatchObject({ instant: true, range: false });
    const match = /^(xyn:[\w:]+)\{job="\$job", env=~"\$env"\} or (.+)$/.exec(target.expr ?? '');
    expect(match, target.expr).not.toBeNull();
    const [, series, fallback] = match!;
    expect(series === 'xyn:push_fresh' || series!.endsWith(':fresh'), `${series} is gated`).toBe(true);
    expect(fallback).toBe(STALE);
  });

  it.each(statPanels.map((p) => [p.title, p] as const))('%s: shows NaN (the stale marker; null too, as newer Grafana reduces NaN to null) as "stale"', (_title, panel) => {
    const special = (panel.fieldConfig?.defaults.mappings ?? []).filter((m) => m.type === 'special');
    expect(special).toEqual([{ type: 'special', options: { match: 'null+nan', result: expect.objectContaining({ text: 'stale' }) } }]);
  });

  it('the gate and the marker are exact complements on every group: xyn:push_fresh is xyn:push_age_seconds within the limit, on both rule paths', () => {
    for (const file of ['monitoring/rules.yml', 'monitoring/rules-remote-write.yml']) {
      expect(read(file), file).toContain('- record: xyn:push_fresh\n        expr: xyn:push_age_seconds <= on() group_left() xyn_threshold:push_max_age_seconds\n');
    }
  });
});

/** The names a rule file records. */
const recorded = (file: string) => new Set([...read(file).matchAll(/^\s+- record: (\S+)$/gm)].map((m) => m[1]!));

describe('the series the dashboard reads', () => {
  const readSeries = new Set(exprs.flatMap(({ expr }) => [...expr.matchAll(/\b(xyn(?:_threshold)?:[\w:]+)/g)].map((m) => m[1]!)));

  it('every recorded series is recorded by rules.yml and, but the Pushgateway scrape, by rules-remote-write.yml', () => {
    expect(readSeries.size).toBeGreaterThanOrEqual(9);
    const pushgateway = recorded('monitoring/rules.yml');
    const remoteWrite = recorded('monitoring/rules-remote-write.yml');
    expect([...readSeries].filter((s) => !pushgateway.has(s))).toEqual([]);
    expect([...readSeries].filter((s) => !remoteWrite.has(s))).toEqual(['xyn:pushgateway_up']);
  });

  it('the push age is the recorded one, and no panel computes an age from push_time_seconds or sample timestamps', () => {
    expect(exprs.find((e) => e.panel === 'Push age')?.expr).toBe('xyn:push_age_seconds{job="$job", env=~"$env"}');
    expect(exprs.filter(({ expr }) => /push_time_seconds|timestamp\(/.test(expr))).toEqual([]);
  });

  it('no panel names a scrape job: no job matcher but $job, no raw up', () => {
    const named = exprs.filter(({ expr }) => [...expr.matchAll(/\bjob=~?"([^"]*)"/g)].some((m) => m[1] !== '$job') || /\bup\{/.test(expr));
    expect(named).toEqual([]);
    // Nor does a description tell of one.
    expect(allPanels.filter((p) => /(?<![\w:])up\{job=/.test(JSON.stringify(p))).map((p) => p.title)).toEqual([]);
  });
});

interface DocVariable {
  name: string;
  label: string;
  query: string;
  default: string;
}

/** The rows of the variables table in the "## The dashboard" section: name, label, the first code span of the query, the default without backticks. */
function documentedVariables(markdown: string): DocVariable[] {
  const start = markdown.indexOf('\n## The dashboard\n');
  if (start < 0) throw new Error('docs/metrics.md has no "## The dashboard" section');
  const end = markdown.indexOf('\n## ', start + 1);
  const section = markdown.slice(start, end < 0 ? undefined : end);
  const header = section.indexOf('\n| variable | label | query | default |\n');
  if (header < 0) throw new Error('"## The dashboard" has no table "| variable | label | query | default |"');
  const rows = section.slice(header + 1).split('\n').slice(2);
  return rows
    .slice(0, rows.findIndex((line) => !line.startsWith('|')))
    .map((line) => line.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim()))
    .map(([name = '', label = '', query = '', fallback = '']) => ({
      name: name.replace(/`/g, ''),
      label,
      query: /`([^`]+)`/.exec(query)?.[1] ?? query,
      default: fallback.replace(/`/g, ''),
    }));
}

/** What the JSON says of each variable, in the table's terms (a datasource variable's query is its plugin type). */
function jsonVariables(list: Variable[]): DocVariable[] {
  return list.map((v) => {
    const current = Array.isArray(v.current?.text) ? v.current.text.join(', ') : (v.current?.text ?? '');
    return {
      name: v.name,
      label: v.label ?? '',
      query: typeof v.query === 'string' ? v.query : String((v.query as { query?: string }).query),
      default: current,
    };
  });
}

/** Every difference between the doc's table and the JSON's variables, one line each; [] when they agree. */
function variableDifferences(markdown: string, list: Variable[]): string[] {
  const documented = documentedVariables(markdown);
  const inJson = jsonVariables(list);
  const differences: string[] = [];
  const names = (vs: DocVariable[]) => vs.map((v) => v.name).join(', ');
  if (names(documented) !== names(inJson)) differences.push(`variables: doc ${names(documented)}, JSON ${names(inJson)}`);
  for (const json of inJson) {
    const doc = documented.find((d) => d.name === json.name);
    if (!doc) continue;
    if (doc.label !== json.label) differences.push(`${json.name} label: doc ${doc.label}, JSON ${json.label}`);
    if (doc.query !== json.query) differences.push(`${json.name} query: doc ${doc.query}, JSON ${json.query}`);
    // A datasource variable has no stored default (it picks Grafana's default datasource).
    if (json.default !== '' && doc.default !== json.default) differences.push(`${json.name} default: doc ${doc.default}, JSON ${json.default}`);
  }
  // The query definition Grafana shows in its editor must be the query it runs.
  for (const v of list) {
    if (v.type === 'query' && v.definition !== (v.query as { query?: string }).query) differences.push(`${v.name}: definition ${v.definition} is not its query`);
  }
  return differences;
}

describe('docs/metrics.md and the dashboard JSON', () => {
  const docs = read('docs/metrics.md');

  it('the doc lists the variables of the JSON, with the same labels, queries and defaults', () => {
    expect(documentedVariables(docs).map((v) => v.name)).toEqual(['datasource', 'job', 'env']);
    expect(variableDifferences(docs, dashboard.templating.list)).toEqual([]);
  });

  it('the doc\'s table of stat panels names each panel and the series it reads', () => {
    const start = docs.indexOf('\n| panel | reads | shows |\n');
    expect(start, 'docs/metrics.md has the table "| panel | reads | shows |"').toBeGreaterThan(-1);
    const rows = docs.slice(start + 1).split('\n').slice(2);
    const documented = rows.slice(0, rows.findIndex((line) => !line.startsWith('|'))).map((line) => {
      const [panel = '', reads = ''] = line.split('|').slice(1, -1).map((c) => c.trim());
      return [panel, /`([^`]+)`/.exec(reads)?.[1]];
    });
    const inJson = statPanels.map((p) => [p.title, /^(xyn:[\w:]+)\{/.exec(p.targets![0]!.expr!)?.[1]]);
    expect(documented).toEqual(inJson);
  });

  it('a query, a label, a default or a variable that differs is named', () => {
    const envQuery = 'label_values(xyn_collector_up{job="$job"}, env)';
    expect(docs).toContain(`\`${envQuery}\``);
    // The doc's old query, from before the env variable moved off push_time_seconds.
    expect(variableDifferences(docs.replace(envQuery, 'label_values(push_time_seconds{job="$job"}, env)'), dashboard.templating.list)).toEqual([
      `env query: doc label_values(push_time_seconds{job="$job"}, env), JSON ${envQuery}`,
    ]);
    expect(variableDifferences(docs.replace('| `job` | Job |', '| `job` | Collector job |'), dashboard.templating.list)).toEqual(['job label: doc Collector job, JSON Job']);
    expect(variableDifferences(docs.replace('| `xyn_metrics` |', '| `metrics` |'), dashboard.templating.list)).toEqual(['job default: doc metrics, JSON xyn_metrics']);
    const extra: Variable = { name: 'pushgateway_job', label: 'Pushgateway job', type: 'constant', query: 'pushgateway' };
    expect(variableDifferences(docs, [...dashboard.templating.list, extra])).toEqual([
      'variables: doc datasource, job, env, JSON datasource, job, env, pushgateway_job',
    ]);
    const edited = dashboard.templating.list.map((v) => (v.name === 'job' ? { ...v, definition: 'label_values(up, job)' } : v));
    expect(variableDifferences(docs, edited)).toEqual(['job: definition label_values(up, job) is not its query']);
  });
});
