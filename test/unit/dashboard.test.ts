/**
 * Several environments in one Prometheus (PUSHGATEWAY_GROUPING=env=prod,
 * env=staging): every dashboard panel must follow the `env` variable, and no
 * aggregation may add environments together. (That the expressions return
 * data from a real Prometheus is test/integration/prometheus.test.ts.)
 */

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

interface Panel {
  title: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  [key: string]: unknown;
}

const dashboard = JSON.parse(readFileSync(new URL('../../monitoring/grafana-dashboard.json', import.meta.url), 'utf8')) as {
  panels: Panel[];
  templating: { list: Variable[] };
};
const exprs = dashboard.panels
  .flatMap((p) => [p, ...(p.panels ?? [])])
  .flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr ?? '' })));

/** Each `metric{matchers}` selector of the collector's series (the Pushgateway's own `up` is not per environment). */
function collectorSelectors(expr: string): { metric: string; matchers: string }[] {
  return [...expr.matchAll(/\b((?:xyn_|push_time_seconds|push_failure_time_seconds)\w*)(\{[^}]*\})?/g)].map((m) => ({
    metric: m[1]!,
    matchers: m[2] ?? '',
  }));
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
    expect(selectors.length).toBeGreaterThanOrEqual(18);
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
    const targets = dashboard.panels
      .flatMap((p) => [p, ...(p.panels ?? [])])
      .flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, ...(t as { expr: string; legendFormat?: string }) })));
    const unnamed = targets.filter((t) => t.legendFormat && collectorSelectors(t.expr).length > 0 && !t.legendFormat.includes('{{env}}'));
    expect(unnamed).toEqual([]);
  });
});
