/**
 * The Alertmanager example of docs/metrics.md, as an operator would copy it:
 * valid to Alertmanager's own amtool, and routing a blind collector's pages
 * (the critical XynCollectorFailing, XynCollectorSilent, XynMetricsAbsent) to
 * the pager, their warnings to the team (issue 24).
 */

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = path.join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(path.join(tmpdir(), 'xyn-alertmanager-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The YAML block of the "Alertmanager setup" section. */
function exampleConfig(): string {
  const doc = readFileSync(path.join(ROOT, 'docs/metrics.md'), 'utf8');
  const section = doc.slice(doc.indexOf('\n## Alertmanager setup\n'), doc.indexOf('\n## ', doc.indexOf('\n## Alertmanager setup\n') + 1));
  const block = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
  expect(block, 'docs/metrics.md "Alertmanager setup" has a yaml block').toBeDefined();
  return block!;
}

const amtool = (...args: string[]) => execFileSync('amtool', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

describe('the Alertmanager example', () => {
  const file = path.join(dir, 'alertmanager.yml');
  // The receivers read their secrets from files; amtool checks that they exist.
  const config = exampleConfig().replace(/\/etc\/alertmanager\//g, `${dir}/`);
  writeFileSync(file, config);
  for (const name of ['slack-webhook-url', 'pagerduty-routing-key']) writeFileSync(path.join(dir, name), 'https://hooks.example/x\n');

  it('is a valid Alertmanager configuration', () => {
    expect(amtool('check-config', file)).toMatch(/SUCCESS/);
  });

  it('pages a blind collector, and warns the team first', () => {
    for (const alertname of ['XynCollectorFailing', 'XynCollectorSilent', 'XynMetricsAbsent']) {
      const route = (severity: string) => amtool('config', 'routes', 'test', `--config.file=${file}`, `alertname=${alertname}`, `severity=${severity}`, 'job=xyn_metrics', 'env=prod').trim();
      expect(route('critical'), alertname).toBe('pager');
      expect(route('warning'), alertname).toBe('team');
    }
  });

  it('inhibits a warning once the page of the same alert fires', () => {
    expect(config).toMatch(/- source_matchers: \['severity="critical"'\]\n\s+target_matchers: \['severity="warning"'\]\n\s+equal: \[alertname, job, env\]/);
  });
});
