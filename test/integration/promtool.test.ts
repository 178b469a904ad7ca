/**
 * The monitoring rule files under the real promtool: they check clean, every
 * alert is unit-tested both firing and not firing, the unit tests pass (and
 * fail when the rules are broken), and every alert carries a summary and a
 * description with its value. (Its runbook link and section: test/unit/docs.test.ts.)
 */

import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MONITORING_DIR, promtoolBinary, readMonitoringFile, runPromtool } from '../support/prometheus';

let rules: string;
let alerts: string;
let tests: string;

beforeAll(async () => {
  promtoolBinary(); // throws (fails the file) when promtool is missing
  [rules, alerts, tests] = await Promise.all(['rules.yml', 'alerts.yml', 'alerts.test.yml'].map(readMonitoringFile)) as [string, string, string];
});

interface AlertBlock {
  name: string;
  text: string;
}

/** The alert rules of alerts.yml, each with its own lines (the file's fixed layout: `- alert:` blocks). */
function alertBlocks(source: string): AlertBlock[] {
  const starts = [...source.matchAll(/^\s+- alert: (\w+)$/gm)];
  return starts.map((match, i) => ({
    name: match[1]!,
    text: source.slice(match.index, starts[i + 1]?.index ?? source.length),
  }));
}

/** alertname -> how many test cases expect it firing / not firing. */
function testedCases(source: string): Map<string, { firing: number; quiet: number }> {
  const cases = new Map<string, { firing: number; quiet: number }>();
  // Inline `{..., alertname: X, exp_alerts: []}` or a block `alertname: X` / `exp_alerts:` (+ list or []).
  const pattern = /alertname: (\w+)(, exp_alerts: \[\]\})?\n(?:\s+exp_alerts:( \[\])?\n(\s+- exp_labels)?)?/g;
  for (const match of source.matchAll(pattern)) {
    const entry = cases.get(match[1]!) ?? { firing: 0, quiet: 0 };
    if (match[2] !== undefined || match[3] !== undefined) entry.quiet += 1;
    else if (match[4] !== undefined) entry.firing += 1;
    else throw new Error(`alerts.test.yml: cannot tell whether a case of ${match[1]} expects it firing`);
    cases.set(match[1]!, entry);
  }
  return cases;
}

describe('monitoring rules under promtool', () => {
  it('promtool check rules is clean', async () => {
    const result = await runPromtool(['check', 'rules', 'monitoring/rules.yml', 'monitoring/alerts.yml']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/rules\.yml\n\s+SUCCESS: 27 rules found/);
    expect(result.stdout).toMatch(/alerts\.yml\n\s+SUCCESS: 19 rules found/);
  });

  it('promtool check config accepts monitoring/prometheus.yml with its rule files', async () => {
    const result = await runPromtool(['check', 'config', 'monitoring/prometheus.yml']);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain('SUCCESS: 2 rule files found');
    expect(await readMonitoringFile('prometheus.yml')).toMatch(/^\s+honor_labels: true$/m);
  });

  // promtool runs ~6 s of CPU; the bound covers a loaded machine (runPromtool, test/support/prometheus.ts).
  it('the promtool unit tests pass', { timeout: 150_000 }, async () => {
    const result = await runPromtool(['test', 'rules', 'alerts.test.yml'], MONITORING_DIR);
    expect(result.stdout + result.stderr).toContain('SUCCESS');
    expect(result.code, result.stdout + result.stderr).toBe(0);
  });

  it('tests every alert both firing and not firing', () => {
    // 16 alerts; three of them (a blind collector) twice: a warning, then a critical one.
    const names = [...new Set(alertBlocks(alerts).map((a) => a.name))];
    expect(alertBlocks(alerts)).toHaveLength(19);
    expect(names).toHaveLength(16);
    const cases = testedCases(tests);
    for (const name of names) {
      expect(cases.get(name)?.firing ?? 0, `${name} firing cases`).toBeGreaterThan(0);
      expect(cases.get(name)?.quiet ?? 0, `${name} not-firing cases`).toBeGreaterThan(0);
    }
    // No test refers to an alert that does not exist.
    expect([...cases.keys()].filter((n) => !names.includes(n))).toEqual([]);
  });

  it('every alert has a severity, a summary and a description with its value', () => {
    for (const { name, text } of alertBlocks(alerts)) {
      expect(text, name).toMatch(/^\s+severity: (warning|critical)$/m);
      expect(text, name).toMatch(/^\s+summary: ".+"$/m);
      expect(/^\s+description: (.+)$/m.exec(text)?.[1], name).toContain('$value');
    }
  });

  it('queue alerts read only freshness-gated series', () => {
    const queueAlerts = ['XynQueueBacklog', 'XynOldestRunWaiting', 'XynExpiredLeases', 'XynNoActiveWorkers', 'XynNoWorkersAlive', 'XynBlueprintSlowRuns', 'XynCollectorFailing', 'XynWorkStalled', 'XynRunsFailing', 'XynQueueWaitHigh'];
    for (const { name, text } of alertBlocks(alerts).filter((a) => queueAlerts.includes(a.name))) {
      const expr = /^\s+expr: (.+)$/m.exec(text)![1]!;
      const series = [...expr.matchAll(/\b(xyn[\w:]*)/g)].map((m) => m[1]!);
      expect(series.length, name).toBeGreaterThan(0);
      for (const s of series) expect(s.endsWith(':fresh') || s.startsWith('xyn_threshold:'), `${name} reads ${s}`).toBe(true);
    }
    // The job names, the collector's and the Pushgateway's scrape job, are written in rules.yml only.
    expect(alerts).not.toContain('xyn_metrics"');
    expect(alerts).not.toMatch(/^\s+expr: .*\bjob=/m);
  });

  describe('the unit tests can fail', { timeout: 150_000 }, () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'xyn-promtool-'));
      await cp(MONITORING_DIR, dir, { recursive: true });
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    async function testWithRules(mutated: string) {
      await writeFile(path.join(dir, 'rules.yml'), mutated);
      return runPromtool(['test', 'rules', 'alerts.test.yml'], dir);
    }

    it('without the freshness gate, the frozen-gauge tests fail', async () => {
      const ungated = rules.replace(/ and xyn:push_fresh$/gm, '');
      expect(ungated).not.toBe(rules);
      const result = await testWithRules(ungated);
      expect(result.code).not.toBe(0);
      expect(result.stdout + result.stderr).toMatch(/FAILED[\s\S]*alertname: XynQueueBacklog, time: 30m/);
    });

    it('without the minimum volume, the too-few-runs test fails', async () => {
      const result = await testWithRules(rules.replace(' >= on() group_left() xyn_threshold:runs_finished_min', ''));
      expect(result.code).not.toBe(0);
      expect(result.stdout + result.stderr).toMatch(/alertname: XynRunsFailing, time: 20m/);
    });

    it('with another threshold, the threshold tests fail', async () => {
      const result = await testWithRules(rules.replace('expr: vector(100)', 'expr: vector(99)'));
      expect(result.code).not.toBe(0);
      expect(result.stdout + result.stderr).toMatch(/alertname: XynQueueBacklog, time: 20m/);
    });
  });
});
