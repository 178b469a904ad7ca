/**
 * The remote-write rule file under the real promtool: it checks clean, its
 * unit tests (alerts-remote-write.test.yml) pass and fail when the freshness
 * logic is broken, its thresholds are rules.yml's, and it records every series
 * alerts.yml reads, so the one alerts.yml serves both paths.
 */

import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MONITORING_DIR, promtoolBinary, readMonitoringFile, runPromtool } from '../support/prometheus';

let rules: string;
let remoteRules: string;
let alerts: string;

const group = (text: string, name: string) => {
  const start = text.indexOf(`  - name: ${name}\n`);
  if (start < 0) throw new Error(`no group ${name}`);
  const next = text.indexOf('\n  - name: ', start + 1);
  return text.slice(start, next < 0 ? undefined : next + 1).trimEnd();
};
const recorded = (text: string) => new Set([...text.matchAll(/^\s+- record: (\S+)$/gm)].map((m) => m[1]!));

beforeAll(async () => {
  promtoolBinary();
  [rules, remoteRules, alerts] = (await Promise.all(['rules.yml', 'rules-remote-write.yml', 'alerts.yml'].map(readMonitoringFile))) as [string, string, string];
});

describe('remote-write rules under promtool', () => {
  it('promtool check rules and check config are clean', async () => {
    const result = await runPromtool(['check', 'config', 'monitoring/prometheus-remote-write.yml']);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/rules-remote-write\.yml\n\s+SUCCESS: 26 rules found/);
  });

  it.each(['alerts-remote-write.test.yml', 'rules-remote-write-days.test.yml'])('the promtool unit tests of %s pass', async (file) => {
    const result = await runPromtool(['test', 'rules', file], MONITORING_DIR);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain('SUCCESS');
  });

  it('has the thresholds of rules.yml, and records every xyn: series alerts.yml reads', () => {
    expect(group(remoteRules, 'xyn-thresholds')).toBe(group(rules, 'xyn-thresholds'));
    const read = new Set([...alerts.matchAll(/\b(xyn:[\w:]+)/g)].map((m) => m[1]!));
    const pushgatewayOnly = new Set(['xyn:push_failed_since_success_seconds', 'xyn:pushgateway_up']);
    for (const name of read) if (!pushgatewayOnly.has(name)) expect(recorded(remoteRules), name).toContain(name);
    // Everything rules.yml records, but the push-failure time the Pushgateway alone knows and its scrape.
    for (const name of recorded(rules)) if (!pushgatewayOnly.has(name)) expect(recorded(remoteRules), name).toContain(name);
    expect(remoteRules).not.toMatch(/push_time_seconds\{/);
  });

  describe('the unit tests can fail', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'xyn-promtool-rw-'));
      await cp(MONITORING_DIR, dir, { recursive: true });
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    async function testWith(mutated: string, tests = 'alerts-remote-write.test.yml') {
      expect(mutated).not.toBe(remoteRules);
      await writeFile(path.join(dir, 'rules-remote-write.yml'), mutated);
      const result = await runPromtool(['test', 'rules', tests], dir);
      expect(result.code).not.toBe(0);
      return result.stdout + result.stderr;
    }

    it('without the newest-tick gate, a failed read leaves the old backlog firing', async () => {
      const output = await testWith(remoteRules.replace(/ and \(timestamp\(xyn_queue_ready_depth\{job="xyn_metrics"\}\) >= xyn:collector_last_sample_seconds\)/, ''));
      expect(output).toMatch(/alertname: XynQueueBacklog, time: 11m/);
    });

    it('without the newest-tick gate on the flow figures, a failed read leaves the old failure ratio firing', async () => {
      const output = await testWith(remoteRules.replace(/ and \(timestamp\(xyn_runs_finished_in_window\{job="xyn_metrics"\}\) >= ignoring\(status\) group_left\(\) xyn:collector_last_sample_seconds\)/, ''));
      expect(output).toMatch(/alertname: XynRunsFailing, time: 16m/);
    });

    it('with the age taken from the visible sample only, silence is never reported', async () => {
      const output = await testWith(remoteRules.replace('max_over_time(xyn:collector_last_sample_seconds[1d])', 'xyn:collector_last_sample_seconds'));
      expect(output).toMatch(/alertname: XynCollectorSilent, time: 20m/);
    });

    it('with a one-day memory only, a series set silent for a day is never recorded as gone', async () => {
      const output = await testWith(remoteRules.replace('last_over_time(xyn:collector_up[1d]) unless', 'xyn:collector_up unless'), 'rules-remote-write-days.test.yml');
      expect(output).toMatch(/expr: "xyn:collector_up:gone", time: 1d6h/);
    });
  });
});
